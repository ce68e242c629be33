"""``dida explain`` writes the contrast, feature-scale and en-face maps, and their figures, from the run's own d."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from cli_helpers import FAST, make_package, one_line
from cli_helpers import bscans as _bscans
from cli_helpers import run as _run

from DiDALib.io.results import load_results
from DiDALib.maps.contrast import contrast_result
from DiDALib.maps.enface import enface_map
from DiDALib.maps.labels import encode_labels
from DiDALib.maps.mixing import mixed_image
from DiDALib.maps.scale import feature_scale


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("model") / "pkg")


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("in") / "vol.nrrd"
    img = sitk.GetImageFromArray(_bscans(4, 24, 30))
    img.SetSpacing((0.012, 0.004, 0.1))
    sitk.WriteImage(img, str(path))
    return path


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_maps_are_written_and_match_the_saved_d(tmp_path, capsys, package, volume):
    out = tmp_path / "out"
    code, _, err = _run(capsys, "explain", volume, "--model", package, "--out", out, "--bscans", "0,2,3",
                        "--contrast", "drusen:normal", "--contrast", "top", "--view", "classes,contrast,scale", *FAST)
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    ex = load_results(out / "dida_results.npz")
    names = list(ex.class_names)
    pairs = [tuple(c["classes"]) for c in run["contrasts"]]
    assert pairs[0] == ("drusen", "normal") and len(pairs) == len(set(pairs)) >= 2
    # The contrast labelmap is the contrast's Mixed Image at the run's contrast scale, B-scan by B-scan.
    files = run["contrasts"][0]["files"]
    labels = _array(out / files["label"])
    for i in (0, 2, 3):
        m = mixed_image(contrast_result(ex.results[i], "drusen", "normal"), 0, ex.weights, run["contrast_scale"],
                        ex.bscan_shape)
        np.testing.assert_array_equal(labels[i], encode_labels(m.positive, m.negative))
    assert not labels[1].any()  # B-scan 1 was not explained
    for name in run["classes_shown"]:
        k = names.index(name)
        cf = run["class_files"][name]
        scale = _array(out / cf["scale"])
        np.testing.assert_array_equal(scale[2], feature_scale(ex.results[2], k, ex.bscan_shape).grid)
        enface = sitk.ReadImage(str(out / cf["enface"]))
        assert enface.GetNumberOfComponentsPerPixel() == 2 and enface.GetSpacing() == pytest.approx((0.012, 0.1))
        e = sitk.GetArrayFromImage(enface)  # (B-scans, A-scans, [for, against])
        expected = enface_map(ex.results, k, 4, ex.bscan_shape, ex.weights)
        np.testing.assert_allclose(e[..., 0], expected.positive, equal_nan=True)
        assert np.isnan(e[1]).all() and not np.isnan(e[0]).any()
    table = (out / "DiDA-Scale.ctbl").read_text().splitlines()
    assert table[1].startswith("0 none") and any(line.startswith("3 3x3_cells_0.12x0.032mm") for line in table)
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"dida_enface.png", "dida_view_bscan002.png", "dida_contrast_bscan002.png",
            "dida_scale_bscan002.png"} <= figures
    assert set(run["files"]) >= {f"figures/{f}" for f in figures} | {files["label"], files["net"]}


def test_contrast_none_and_view_choices(tmp_path, capsys, package, volume):
    out = tmp_path / "out"
    code, _, err = _run(capsys, "explain", volume, "--model", package, "--out", out, "--contrast", "none",
                        "--view", "contrast", *FAST)
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["contrasts"] == [] and not list(out.glob("DiDA-contrast_*"))
    assert {p.name for p in (out / "figures").iterdir()} == {"dida_enface.png"}  # no class view, no contrast pairs


@pytest.mark.parametrize("args, match", [
    (["--contrast", "drusen:nope"], "nope"),
    (["--contrast", "drusen"], "A:B"),
    (["--contrast", "none", "--contrast", "top"], "none"),
    (["--view", "classes,fancy"], "--view"),
    (["--view", ""], "--view"),
])
def test_bad_map_options_fail_with_one_line_and_write_nothing(tmp_path, capsys, package, volume, args, match):
    out = tmp_path / "out"
    code, _, err = _run(capsys, "explain", volume, "--model", package, "--out", out, *args, *FAST)
    assert code == 2 and one_line(err) and match in err, err
    assert not out.exists()


def test_contrast_file_names_never_meet_class_files_or_each_other():
    from DiDALib.io.map_files import contrast_files
    from DiDALib.io.results import class_files

    names = ["x_vs_y", "z", "x", "y_vs_z", "contrast_x_vs_y"]
    pairs = [(0, 1), (2, 3), (1, 2)]
    files = [f for d in contrast_files(names, pairs) for f in d.values()]
    assert len({f.casefold() for f in files}) == len(files) == 6  # x_vs_y:z and x:y_vs_z would share a name
    assert files[0] == "DiDA-contrast_x_vs_y_vs_z_label.nrrd" and files[2].startswith("DiDA-contrast_x_vs_y_vs_z-")
    class_names = {f for d in class_files(names).values() for f in d.values()}
    assert not class_names & set(files)


def test_a_heyex_volume_gets_its_enface_map_on_the_fundus(tmp_path, capsys, package):
    vol = Path(__file__).resolve().parents[1] / "Data" / "oct" / "heyex_synthetic_10x40x50.vol"
    out = tmp_path / "out"
    code, _, err = _run(capsys, "explain", vol, "--model", package, "--out", out, "--bscans", "2-5", *FAST)
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["enface_on_fundus"] == "figures/dida_enface_fundus.png"
    assert (out / "figures" / "dida_enface_fundus.png").is_file()


def test_a_volume_without_a_fundus_says_why(tmp_path, capsys, package, volume):
    out = tmp_path / "out"
    assert _run(capsys, "explain", volume, "--model", package, "--out", out, *FAST)[0] == 0
    assert json.loads((out / "run.json").read_text())["enface_on_fundus"] == "not drawn: the file has no fundus image"


def test_every_map_is_written_for_the_evidence_schedule(tmp_path, capsys, package, volume):
    """``--grids evidence`` (shifted grids): the contrast, scale and en-face files and every figure are written and
    are the maps of the saved shifted-grid d; the scale colour table lists the schedule's three sizes."""
    out = tmp_path / "out"
    code, _, err = _run(capsys, "explain", volume, "--model", package, "--out", out, "--bscans", "1,3", "--grids",
                        "evidence", "--view", "classes,contrast,scale", "--device", "cpu", "--quiet")
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    ex = load_results(out / "dida_results.npz")
    assert run["grid_schedule"] == "evidence" and len(ex.results[1].grids) == 12
    assert len(run["contrasts"]) == 2
    for c in run["contrasts"]:
        labels = _array(out / c["files"]["label"])
        m = mixed_image(contrast_result(ex.results[3], *c["classes"]), 0, ex.weights, run["contrast_scale"],
                        ex.bscan_shape)
        np.testing.assert_array_equal(labels[3], encode_labels(m.positive, m.negative))
    for name in run["classes_shown"]:
        k = list(ex.class_names).index(name)
        cf = run["class_files"][name]
        scale = _array(out / cf["scale"])
        np.testing.assert_array_equal(scale[1], feature_scale(ex.results[1], k, ex.bscan_shape).grid)
        assert set(np.unique(scale[1])) <= {0, 7, 11, 15}
        e = sitk.GetArrayFromImage(sitk.ReadImage(str(out / cf["enface"])))
        np.testing.assert_allclose(e[..., 1], enface_map(ex.results, k, 4, ex.bscan_shape, ex.weights).negative,
                                   equal_nan=True)
    table = (out / "DiDA-Scale.ctbl").read_text().splitlines()
    assert [line.split()[0] for line in table[1:]] == ["0", "7", "11", "15"]
    figures = {f"figures/{p.name}" for p in (out / "figures").iterdir()}
    assert figures == {"figures/dida_enface.png"} | {f"figures/dida_{kind}_bscan{i:03d}.png"
                                                     for kind in ("view", "contrast", "scale") for i in (1, 3)}
    assert set(run["files"]) >= figures | {"report.html", "DiDA-Scale.ctbl"}


def test_classes_topn_limits_every_figure_and_the_top_contrasts_to_the_shown_classes(tmp_path, capsys, package,
                                                                                     volume):
    """--classes top2 printed two classes but the figure drew three panels and a contrast with the third class
    was written: every figure and the 'top' contrasts now show only the classes shown."""
    from PIL import Image

    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "explain", volume, "--model", package, "--out", out, "--bscans", "1",
                             "--classes", "top2", "--view", "classes,contrast,scale", *FAST[:-1])
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    shown = run["classes_shown"]
    assert len(shown) == 2 and f"classes shown: {', '.join(shown)}" in stdout
    panel, gap = 480, 6
    for name in ("dida_view_bscan001.png", "dida_scale_bscan001.png"):
        width = Image.open(out / "figures" / name).width
        assert width == 3 * panel + 2 * gap, (name, width)  # the B-scan and the two shown classes
    assert [c["classes"] for c in run["contrasts"]] == [shown]  # top vs second only
    assert Image.open(out / "figures" / "dida_contrast_bscan001.png").width == 2 * panel + gap
    assert not [f for f in run["files"] if f.startswith("DiDA-contrast_") and not all(c in f for c in shown)]
    names = list(load_results(out / "dida_results.npz").class_names)
    page = (out / "report.html").read_text()  # the page's panels start with the shown classes too
    assert f'"shown":[{",".join(str(names.index(c)) for c in shown)}]' in page
