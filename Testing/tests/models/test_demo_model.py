"""The bundled models and the demo: the default model is the Kermany OCT package (real B-scans, a research
demonstration), the phantom model stays for the tests and benchmarks that need known lesions, and ``dida demo``
explains the real B-scans shipped with DiDA (``--phantom``: a synthetic volume)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from cli_helpers import make_package, one_line, run

from DiDALib.cli.demo import real_samples, sample_truth, samples_path
from DiDALib.models.package import demo_model_path, load_model_package, phantom_model_path
from DiDALib.models.preprocess import preprocess_bscan

ROOT = Path(__file__).resolve().parents[3]
KERMANY = ROOT / "Resources" / "Models" / "kermany-oct"
CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")


def test_the_default_model_is_the_kermany_package_and_the_phantom_model_stays():
    assert demo_model_path() == KERMANY
    assert phantom_model_path() == ROOT / "Resources" / "DemoModel"
    package = load_model_package(demo_model_path())
    spec = package.spec
    assert spec.demo and spec.classes == CLASSES and spec.channels == 1
    assert (KERMANY / spec.weights).suffix == ".safetensors"
    assert (KERMANY / spec.weights).stat().st_size < 5 * 2**20, "weights of a few MB at most"
    card = (KERMANY / "MODEL_CARD.md").read_text(encoding="utf-8")
    for words in ("CC BY 4.0", "Kermany", "NOT for clinical use", "train.py", "split.csv"):
        assert words in card, words
    assert load_model_package(phantom_model_path()).spec.classes[0] == "normal"


def test_the_environment_names_other_packages(tmp_path, monkeypatch):
    tiny = make_package(tmp_path / "tiny", CLASSES)
    monkeypatch.setenv("DIDA_DEMO_MODEL", str(tiny))
    monkeypatch.setenv("DIDA_PHANTOM_MODEL", str(tiny))
    assert demo_model_path() == tiny and phantom_model_path() == tiny


def test_the_split_keeps_every_patient_on_one_side():
    with open(KERMANY / "split.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len({r["path"] for r in rows}) == len(rows) == 799
    sides = {}
    for r in rows:
        assert r["patient"] == Path(r["path"]).name.split("-")[1], "the patient is the number, whatever the class"
        sides.setdefault(r["patient"], set()).add(r["part"])
    assert all(len(s) == 1 for s in sides.values())
    for c in CLASSES:
        assert sum(r["class"] == c and r["part"] == "validation" for r in rows) >= 20


def test_the_shipped_bscans_are_validation_patients_the_model_classifies_as_labelled():
    """The samples are read as ``dida explain`` reads a folder, come from patients the model never trained on, and
    the model ranks each one's diagnosis first: the shipped weights and the preprocessing agree with the training."""
    with open(KERMANY / "split.csv", newline="", encoding="utf-8") as f:
        part = {r["patient"]: r["part"] for r in csv.DictReader(f)}
    volume, truths = real_samples()
    names = volume.metadata["files"]
    assert sorted(truths) == sorted(CLASSES), "one B-scan per class"
    assert all(part[name.split("-")[1]] == "validation" for name in names)
    assert sum(p.stat().st_size for p in samples_path().iterdir()) < 2**20
    readme = (samples_path() / "README.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in readme and "Kermany" in readme and all(n in readme for n in names)
    package = load_model_package(demo_model_path())
    x = torch.stack([preprocess_bscan(b, package.spec)[0] for b in volume.bscans])
    with torch.inference_mode():
        predicted = [package.spec.classes[k] for k in package.model(x).argmax(1)]
    assert predicted == truths


def test_sample_truth_reads_kermany_names():
    assert sample_truth("DRUSEN-1047803-1.jpeg") == "DRUSEN" and sample_truth("b-scan.png") == ""


@pytest.mark.parametrize("phantom", [False, True])
def test_dida_demo_explains_the_real_bscans_or_the_phantom_volume(tmp_path, capsys, monkeypatch, phantom):
    """Wiring only (a tiny model stands in for the bundled ones, to keep it quick): the real B-scans with their
    diagnoses by default, the phantom volume with ``--phantom``, each with its own model."""
    tiny = make_package(tmp_path / "tiny", CLASSES)
    monkeypatch.setenv("DIDA_PHANTOM_MODEL" if phantom else "DIDA_DEMO_MODEL", str(tiny))
    out = tmp_path / "out"
    extra = ["--phantom", "--bscans", "2"] if phantom else []
    code, stdout, err = run(capsys, "demo", "--out", out, "--device", "cpu", "--quiet", *extra)
    assert code == 0, err
    record = json.loads((out / "run.json").read_text())
    assert record["model"] == str(tiny)
    if phantom:
        assert record["input_format"] == "phantom" and record["bscans"] == [0, 1]
    else:
        assert record["input_format"] == "image-folder" and len(record["bscans"]) == 4
        assert "CC BY 4.0" in stdout
        page = (out / "report.html").read_text(encoding="utf-8")
        assert all(re.search(f'"truth": ?"{c}"', page) for c in CLASSES)


def test_dida_demo_without_its_bscans_says_how_to_go_on(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("DiDALib.cli.demo.SAMPLES", ("Samples", "missing"))
    code, _, err = run(capsys, "demo", "--out", tmp_path / "out", "--quiet")
    assert code == 2 and one_line(err) and "--phantom" in err
    assert not (tmp_path / "out").exists()


def test_images_per_second_times_the_model_in_eval_mode(tmp_path):
    from DiDALib.models.speed import images_per_second

    package = load_model_package(make_package(tmp_path / "tiny", CLASSES))
    package.model.train()
    calls = []
    package.model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    ips = images_per_second(package.model, package.spec, rounds=2, seconds=0.05)
    assert ips > 0 and not package.model.training
    assert calls and all(shape == (8, 1, 32, 32) for shape in calls)
