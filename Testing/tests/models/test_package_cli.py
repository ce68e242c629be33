"""``dida package`` end to end: one third-party model of each kind packaged from its published files, then
explained; DiDA's deltas equal those of the same network run as a plain ``nn.Module`` (relative difference
<= 1e-4, float32). Bad flags and failed checks write nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from third_party import CLASSES, bscans, third_party  # noqa: F401 (fixture)

from DiDALib import cli
from DiDALib.engine.core import DiDAEngine
from DiDALib.io.results import load_results
from DiDALib.models.package import load_model_package
from DiDALib.models.preprocess import preprocess_bscan
from DiDALib.pipeline import ExplainSettings, VolumeExplainer

GRIDS = (2, 3, 4)


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("bscans")
    paths = []
    for k, b in enumerate(bscans(3, seed=1)):
        paths.append(folder / f"b{k}.png")
        Image.fromarray((b * 255).round().astype(np.uint8)).save(paths[-1])
    return paths


def _style(third_party, kind: str) -> tuple[list, torch.nn.Module, int]:
    """(weights file and flags, the plain nn.Module it came from, its channels) of one third-party style."""
    common = ["--classes", ",".join(CLASSES), "--input-size", "48,48"]
    if kind == "python":
        flags = [third_party.state_dict, "--architecture", f"python:{third_party.code}:OCTResNet", "--trust-code",
                 "--normalisation", "none"]
        return flags + common, third_party.net, 1
    if kind == "torchvision":
        flags = [third_party.torchvision_state, "--architecture", "torchvision:squeezenet1_1", "--head",
                 "classifier.1", "--normalisation", "imagenet"]
        return flags + common, third_party.torchvision, 3
    path = getattr(third_party, kind.replace("-", "_"))
    arch = "onnx" if kind.startswith("onnx") else "torch-export"
    return [path, "--architecture", arch, "--mean", "0.3", "--std", "0.2"] + common, third_party.net, 1


def _relative(a: dict, b: dict) -> float:
    worst = max(float(np.abs(b[n]).max()) for n in b)
    return max(float(np.abs(a[n] - b[n]).max()) for n in b) / worst


@pytest.mark.parametrize("kind", ["python", "torchvision", "onnx", "export", "onnx-fixed", "export-fixed"])
def test_each_third_party_style_packages_and_explains_like_the_plain_module(tmp_path, capsys, third_party, images,
                                                                         kind):
    flags, plain, channels = _style(third_party, kind)
    out = tmp_path / "pkg"
    code, stdout, err = _run(capsys, "package", *flags, "--check", *images, "--out", out)
    assert code == 0, err
    pkg = load_model_package(out, trust_code=True)
    assert pkg.spec.channels == channels and (out / "model.json").is_file()
    # --check prints every image's top classes with their probabilities, as the plain network ranks them
    for path in images:
        b = np.asarray(Image.open(path), dtype=np.float32) / 255.0
        x, _ = preprocess_bscan(b, pkg.spec)
        with torch.inference_mode():
            p = torch.softmax(plain(x[None]), dim=1)[0].numpy()
        top = int(np.argmax(p))
        assert re.search(rf"{re.escape(str(path))}: {CLASSES[top]} {p[top]:.3f}", stdout), stdout
    # DiDA on the package equals DiDA on the plain module, for every grid and class
    b = bscans(1, seed=2)[0]
    for score in ("logits", "log-odds"):
        explainer = VolumeExplainer(pkg, ExplainSettings(grids=GRIDS, device="cpu", score=score, fill="black"))
        got = explainer.explain_bscan(b)
        x, region = preprocess_bscan(b, pkg.spec)
        reference = DiDAEngine(plain, device="cpu", score=score, fill=pkg.spec.fill_value(0.0)).explain(
            x, grids=GRIDS, region=region)
        assert _relative(got.deltas, reference.deltas) <= 1e-4
        np.testing.assert_allclose(got.base_scores, reference.base_scores, rtol=1e-4, atol=1e-5)


def test_explain_a_python_package_needs_trust_and_then_matches(tmp_path, capsys, third_party, images):
    flags, plain, _ = _style(third_party, "python")
    assert _run(capsys, "package", *flags, "--out", tmp_path / "pkg")[0] == 0
    run = ["explain", images[0], "--model", tmp_path / "pkg", "--grids", "2,3", "--score", "logits", "--fill",
           "black", "--device", "cpu", "--quiet", "--no-figures"]
    code, _, err = _run(capsys, *run, "--out", tmp_path / "refused")
    assert code == 2 and "oct_resnet.py" in err and "--trust-code" in err and "Traceback" not in err
    assert not (tmp_path / "refused").exists()
    code, _, err = _run(capsys, *run, "--trust-code", "--out", tmp_path / "r")
    assert code == 0, err
    result = load_results(tmp_path / "r" / "dida_results.npz").results[0]
    spec = load_model_package(tmp_path / "pkg", trust_code=True).spec
    x, region = preprocess_bscan(np.asarray(Image.open(images[0]), dtype=np.float32) / 255.0, spec)
    reference = DiDAEngine(plain, device="cpu", score="logits", fill=spec.fill_value(0.0)).explain(
        x, grids=(2, 3), region=region)
    assert _relative(result.deltas, reference.deltas) <= 1e-4


def test_examples_catch_a_wrong_class_order(tmp_path, capsys, third_party, images):
    flags, plain, _ = _style(third_party, "export")
    pkg = load_model_package(_packaged(tmp_path / "probe", capsys, flags))
    b = np.asarray(Image.open(images[0]), dtype=np.float32) / 255.0
    with torch.inference_mode():
        top = CLASSES[int(plain(preprocess_bscan(b, pkg.spec)[0][None]).argmax())]
    good = _packaged(tmp_path / "good", capsys, flags, "--example", f"{images[0]}={top}")
    recorded = json.loads((good / "model.json").read_text())["examples"]
    assert recorded == [{"image": f"examples/00_{images[0].name}", "top": top}]
    assert (good / recorded[0]["image"]).is_file()
    # The same weights with the class list reversed: the example now ranks another class first
    i = flags.index("--classes")
    reversed_flags = flags[: i + 1] + [",".join(reversed(CLASSES))] + flags[i + 2 :]
    code, _, err = _run(capsys, "package", *reversed_flags, "--example", f"{images[0]}={top}", "--out",
                        tmp_path / "bad")
    assert code == 2 and "should be" in err and "order of 'classes'" in err and not (tmp_path / "bad").exists()
    # and a package edited afterwards fails to load, loudly
    data = json.loads((good / "model.json").read_text())
    data["classes"] = list(reversed(CLASSES))
    (good / "model.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="example B-scan.*another top class"):
        load_model_package(good)


def _packaged(out: Path, capsys, flags, *more) -> Path:
    code, _, err = _run(capsys, "package", *flags, *more, "--out", out)
    assert code == 0, err
    return out


@pytest.mark.parametrize("change,match", [
    (["--architecture-args", "{nope"], "not valid JSON"),
    (["--example", "nothing-here.png=CNV"], "not a file"),
    (["--example", "NO_EQUALS"], "IMAGE=CLASS"),
    (["--normalisation", "none", "--mean", "0.5"], "sets the mean and std itself"),
    (["--classes", "CNV"], "at least two"),
    (["--input-size", "48"], "input_size"),
    (["--check", "missing.png"], "no such file"),
    (["--architecture", "torch-export", "--input-size", "40,40"], "fails on a"),
])  # fmt: skip
def test_bad_flags_write_nothing(tmp_path, capsys, third_party, change, match):
    flags, _, _ = _style(third_party, "export")
    for k in range(0, len(change), 2):
        if change[k] in flags:
            i = flags.index(change[k])
            del flags[i : i + 2]
    code, _, err = _run(capsys, "package", *flags, *change, "--out", tmp_path / "pkg")
    assert code == 2 and re.search(match, err), err
    assert "Traceback" not in err and not (tmp_path / "pkg").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pkg")]  # no staging debris


def test_existing_folder_needs_force_and_force_replaces_only_a_package_dida_wrote(tmp_path, capsys, third_party):
    flags, _, _ = _style(third_party, "export")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "mine.txt").write_text("keep me")
    for extra in ([], ["--force"]):  # a folder of other files is never replaced, with or without --force
        code, _, err = _run(capsys, "package", *flags, "--out", tmp_path / "mine", *extra)
        assert code == 2 and (tmp_path / "mine" / "mine.txt").read_text() == "keep me", err
    assert _run(capsys, "package", *flags, "--out", tmp_path / "pkg")[0] == 0
    run = json.loads((tmp_path / "pkg" / "run.json").read_text())
    assert run["command"] == "dida package" and "model.json" in run["files"]
    code, _, err = _run(capsys, "package", *flags, "--out", tmp_path / "pkg")
    assert code == 2 and "--force" in err
    assert _run(capsys, "package", *flags, "--out", tmp_path / "pkg", "--force")[0] == 0
    assert (tmp_path / "pkg" / "model.json").is_file()


def test_python_package_without_trust_writes_nothing(tmp_path, capsys, third_party):
    flags, _, _ = _style(third_party, "python")
    flags.remove("--trust-code")
    code, _, err = _run(capsys, "package", *flags, "--out", tmp_path / "pkg")
    assert code == 2 and "oct_resnet.py" in err and "--trust-code" in err and not (tmp_path / "pkg").exists()
