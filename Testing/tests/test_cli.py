"""The ``dida`` command end to end: every input format, every output, and a clear one-line error for bad input
with nothing written."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from cli_helpers import CLASSES, FAST, changed_package, make_package, one_line
from cli_helpers import bscans as _bscans
from cli_helpers import outputs as _outputs
from cli_helpers import run as _run
from oct_samples import write_sample

from DiDALib import cli
from DiDALib.io import run_folder  # the writer of a run's folder (write_scores is patched there)
from DiDALib.io.results import load_results
from DiDALib.maps.labels import LEVELS, decode_labels, label_color

timm = pytest.importorskip("timm")
DATA = Path(__file__).resolve().parents[1] / "Data" / "oct"


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("model") / "pkg")


KINDS = {
    "png-folder": "pngs",
    "jpeg-folder": "jpegs",
    "tiff-folder": "tiffs",
    "multipage-tiff": "stack.tif",
    "rgb-png": "bscan.png",
    "nrrd": "vol.nrrd",
    "nifti": "vol.nii.gz",
    "metaimage": "vol.mha",
    "dicom-opt": "oct.dcm",
    "dicom-series": "dicoms",
    "heyex-vol": "small.vol",
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_explain_each_format(tmp_path, capsys, package, kind):
    source = write_sample(kind, tmp_path / KINDS[kind], _bscans())
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "explain", source, "--model", package, "--out", out, *FAST)
    assert code == 0, err
    n = 1 if kind == "rgb-png" else 3
    files = _outputs(out)
    assert {"volume.nrrd", "scores.csv", "dida_results.npz", "run.json", "DiDA-RedBlue.ctbl"} <= files
    assert len([f for f in files if f.startswith("DiDA_") and f.endswith("_label.nrrd")]) == 3  # top 3 classes
    assert len([f for f in files if f.startswith("figures/dida_view_")]) == n
    assert f"wrote {len(files)} file(s)" in stdout
    vol = sitk.ReadImage(str(out / "volume.nrrd"))
    assert vol.GetSize() == (30, 24, n)


def test_shared_vendor_files_as_they_are(tmp_path, capsys, package):
    for name, n in (("spectralis_linescan_real.vol", 1), ("heyex_synthetic_10x40x50.vol", 10), ("heyex_xml", 10)):
        out = tmp_path / name
        code, _, err = _run(capsys, "explain", DATA / name, "--model", package, "--out", out, "--bscans", "center",
                            "--no-figures", *FAST)
        assert code == 0, err
        run = json.loads((out / "run.json").read_text())
        assert run["bscans"] == [n // 2]
        vol = sitk.ReadImage(str(out / "volume.nrrd"))
        label = sitk.ReadImage(str(next(out.glob("DiDA_*_label.nrrd"))))
        assert label.GetSize() == vol.GetSize() and label.GetSpacing() == pytest.approx(vol.GetSpacing())
        if n == 10:
            assert vol.GetSpacing() == pytest.approx((0.011819, 0.003872, 0.0314444), rel=1e-4)


def test_outputs_hold_the_results(tmp_path, capsys, package):
    source = write_sample("nrrd", tmp_path / "v.nrrd", _bscans(4))
    out = tmp_path / "out"
    code, _, err = _run(capsys, "explain", source, "--model", package, "--out", out, "--bscans", "1,3",
                        "--classes", "drusen,normal", "--grids", "3,2", "--weights", "2,1", "--device", "cpu",
                        "--quiet")
    assert code == 0, err
    with open(out / "scores.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["bscan", "score_mode", *CLASSES] and [r[0] for r in rows[1:]] == ["1", "3"]
    ex = load_results(out / "dida_results.npz")
    assert ex.indices == [1, 3] and ex.class_names == CLASSES
    assert ex.weights == (1.0, 2.0)  # given for grids 3,2 and stored coarse to fine
    assert {r[1] for r in rows[1:]} == {ex.results[1].score}
    np.testing.assert_allclose(ex.scores(), np.array([[float(v) for v in r[2:]] for r in rows[1:]]), rtol=1e-5)
    scale = json.loads((out / "run.json").read_text())["saturation_scale"]
    assert scale == pytest.approx(ex.scale())
    for name in ("drusen", "normal"):
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"DiDA_{name}_label.nrrd")))
        net = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"DiDA_{name}_net.nrrd")))
        assert labels.shape == net.shape == (4, 24, 30)
        assert not labels[[0, 2]].any() and not net[[0, 2]].any()  # B-scans not explained stay empty
        m = ex.mixed(3, CLASSES.index(name), scale)
        pos, neg = decode_labels(labels[3])
        assert np.abs(pos - m.positive).max() <= 0.5 / (LEVELS - 1) + 1e-6
        assert np.abs(neg - m.negative).max() <= 0.5 / (LEVELS - 1) + 1e-6
        np.testing.assert_allclose(net[3], m.net, atol=1e-6)
    assert not (out / "DiDA_wet_amd_label.nrrd").exists()


def test_colour_table_loads_in_slicer_with_red_for_and_blue_against(tmp_path, capsys, package):
    slicer = pytest.importorskip("slicer")
    source = write_sample("nrrd", tmp_path / "v.nrrd", _bscans(1))
    out = tmp_path / "out"
    assert _run(capsys, "explain", source, "--model", package, "--out", out, *FAST)[0] == 0
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode")
    storage = slicer.vtkMRMLColorTableStorageNode()
    storage.SetFileName(str(out / "DiDA-RedBlue.ctbl"))
    assert storage.ReadData(node)
    assert node.GetNumberOfColors() == LEVELS * LEVELS
    rgba = [0.0] * 4
    for label in (0, 1, 15 * LEVELS, 7 * LEVELS + 3, LEVELS * LEVELS - 1):
        node.GetColor(label, rgba)
        np.testing.assert_allclose(rgba, label_color(label), atol=1 / 255)
    node.GetColor(15 * LEVELS, rgba)
    assert rgba[0] == 1 and rgba[2] == 0 and rgba[3] == 1  # strongest "for": opaque red
    node.GetColor(15, rgba)
    assert rgba[2] == 1 and rgba[0] == 0  # strongest "against": blue
    node.GetColor(0, rgba)
    assert rgba[3] == 0  # no evidence: transparent


def test_force_replaces_only_a_dida_result(tmp_path, capsys, package):
    source = write_sample("nrrd", tmp_path / "v.nrrd", _bscans(1))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for force in ([], ["--force"]):  # a folder of someone else's files is never replaced, with --force or without
        code, _, err = _run(capsys, "explain", source, "--model", package, "--out", out, *FAST, *force)
        assert code == cli.EXIT_BAD_INPUT and "--force" in err and one_line(err), err
        assert _outputs(out) == {"keep.txt"} and (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    assert _run(capsys, "explain", source, "--model", package, "--out", out, *FAST)[0] == 0  # an empty folder is fine
    first = json.loads((out / "run.json").read_text())
    assert _run(capsys, "explain", source, "--model", package, "--out", out, "--grids", "3", "--device", "cpu",
                "--quiet", "--force")[0] == 0
    assert json.loads((out / "run.json").read_text())["grids"] == [3] != first["grids"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "v.nrrd"]  # no staging folders or locks left


def _bad_package(tmp_path, package, **change) -> Path:
    return changed_package(tmp_path / "badpkg", package, **change)


@pytest.mark.parametrize(
    "args,match",
    [
        (["--grids", "0,3"], "grid size 0"),
        (["--grids", "2,99"], "grid size 99"),
        (["--grids", "2,x"], "whole numbers"),
        (["--weights", "1,2,3"], "one per grid"),
        (["--bscans", "7"], "do not exist"),
        (["--bscans", "2-1"], "indices and ranges"),
        (["--classes", "drusen,cataract"], "cataract"),
        (["--fill", "grey"], "fill"),
        (["--fill", "3"], "within \\[0, 1\\]"),
        (["--device", "cuda"], "CUDA"),
        (["--point", "5"], "ROW,COL"),
        (["--bscans", ""], "--bscans is empty"),
        (["--bscans", ","], "selects no B-scan"),
        (["--grids", "0"], "at least 1"),
        (["--max-memory", "lots"], "--max-memory"),
    ],
)
def test_bad_options_fail_with_one_line_and_write_nothing(tmp_path, capsys, package, args, match):
    import torch

    if args == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("a GPU is present, so CUDA is not a bad choice here")
    source = write_sample("nrrd", tmp_path / "v.nrrd", _bscans(3))
    out = tmp_path / "out"
    opts = list(FAST)
    for i in range(0, len(args), 2):  # the case's own value replaces the default
        if args[i] in opts:
            del opts[opts.index(args[i]) : opts.index(args[i]) + 2]
    code, _, err = _run(capsys, "explain", source, "--model", package, "--out", out, *opts, *args)
    assert code == cli.EXIT_BAD_INPUT
    assert err.startswith("dida: error: ") and one_line(err), err
    assert re.search(match, err), err
    assert "1..0" not in err  # --grids 0 once blamed a 0 x 0 region
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["v.nrrd"]


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda d: d / "absent.vol", "no such file"),
        (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "notes.txt"),
        (lambda d: (d / "fake.vol").write_bytes(b"HSF-OCT-103" + b"\0" * 50) and d / "fake.vol", "fake.vol"),
    ],
)
def test_bad_input_files(tmp_path, capsys, package, make, match):
    source = make(tmp_path)
    out = tmp_path / "out"
    code, _, err = _run(capsys, "explain", source, "--model", package, "--out", out, *FAST)
    assert code == cli.EXIT_BAD_INPUT and match in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_model_packages(tmp_path, capsys, package):
    source = write_sample("nrrd", tmp_path / "v.nrrd", _bscans(1))
    cases = [
        (_bad_package(tmp_path / "a", package, classes=["a", "b"]), "2 classes"),
        (_bad_package(tmp_path / "b", package, architecture="timm:nope_net"), "not a timm model"),
        (tmp_path / "nowhere", "no such model package"),
    ]
    for pkg, match in cases:
        code, _, err = _run(capsys, "explain", source, "--model", pkg, "--out", tmp_path / "out", *FAST)
        assert code == cli.EXIT_BAD_INPUT and match in err, err
        assert not (tmp_path / "out").exists()


def test_cancelled_run_writes_nothing(tmp_path, capsys, package, monkeypatch):
    source = write_sample("nrrd", tmp_path / "v.nrrd", _bscans(3))
    from DiDALib.engine import core as engine

    calls = {"n": 0}
    real = engine.DiDAEngine.scores

    def interrupted(self, x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(engine.DiDAEngine, "scores", interrupted)
    code, _, err = _run(capsys, "explain", source, "--model", package, "--out", tmp_path / "out", *FAST)
    assert code == cli.EXIT_CANCELLED and "no output" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nrrd"]


def test_interrupted_writing_leaves_no_partial_output(tmp_path, capsys, package, monkeypatch):
    source = write_sample("nrrd", tmp_path / "v.nrrd", _bscans(2))

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_folder, "write_scores", broken)
    code, _, err = _run(capsys, "explain", source, "--model", package, "--out", tmp_path / "out", *FAST)
    assert code == cli.EXIT_CANCELLED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nrrd"]  # the staged folder was removed


def test_parse_bscans():
    assert cli.parse_bscans("all", 4) == [0, 1, 2, 3]
    assert cli.parse_bscans("center", 5) == [2]
    assert cli.parse_bscans("0,3, 1-2,3", 5) == [0, 1, 2, 3]
