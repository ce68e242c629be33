"""``dida view`` and the page's content without a browser: the page is written into a result by the folder rules
(listed in run.json, replacing only its own file, refusing what DiDA did not write), or to a new file elsewhere;
``dida explain`` writes it inside its all-or-nothing output; and what the page carries is the run's own numbers,
coloured by the one colour rule."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import FAST, PAGE, make_package, one_line, outputs, write_volume
from cli_helpers import run as _run

from DiDALib import cli
from DiDALib.io.output_dir import foreign_files
from DiDALib.io.results import load_results
from DiDALib.maps.labels import label_color
from DiDALib.maps.mixing import cell_map, mixed_image
from DiDALib.maps.scale import feature_scale
from DiDALib.maps.scale_colours import scale_rgba
from DiDALib.reports import page_data as pd
from DiDALib.reports.html import content_policy


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("model") / "pkg")


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    return write_volume(tmp_path_factory.mktemp("in") / "vol.nrrd")


@pytest.fixture(scope="module")
def first_result(tmp_path_factory, package, volume) -> Path:
    out = tmp_path_factory.mktemp("result") / "out"
    assert cli.main([str(a) for a in ("explain", volume, "--model", package, "--out", out, "--bscans", "0,2,3",
                                      *FAST)]) == 0
    assert not (out / "report.html").exists()
    return out


@pytest.fixture
def result(tmp_path, first_result) -> Path:
    """A result of B-scans 0, 2 and 3 of four (one left out), without its page: a copy for each test."""
    return Path(shutil.copytree(first_result, tmp_path / "out"))


def page_json(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="dida-data">(.*?)</script>', text, re.DOTALL)[1])


def test_explain_writes_the_page_inside_its_run(tmp_path, capsys, package, volume):
    out = tmp_path / "out"
    code, _, err = _run(capsys, "explain", volume, "--model", package, "--out", out, *PAGE)
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    assert "report.html" in run["files"] and foreign_files(out) == []
    text = (out / "report.html").read_text(encoding="utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)[1]
    assert policy == content_policy() and "default-src 'none'" in policy
    assert "http:" not in text and "https:" not in text  # no address of anything else, anywhere
    assert "not for clinical use" not in text  # the tiny model is no demonstration model


def test_view_adds_the_page_to_a_result_and_replaces_only_its_own(result, capsys):
    before = outputs(result)
    code, stdout, err = _run(capsys, "view", result)
    assert code == 0, err
    assert outputs(result) == before | {"report.html"} and "report.html" in stdout
    run = json.loads((result / "run.json").read_text())
    assert "report.html" in run["files"] and foreign_files(result) == []  # still a result --force may replace
    data = page_json(result / "report.html")
    assert [b["index"] for b in data["bscans"]] == [0, 2, 3] and data["n_bscans"] == 4
    # DiDA's own page, as it wrote it: replaced, nothing else changes.
    code, _, err = _run(capsys, "view", result)
    assert code == 0, err
    assert outputs(result) == before | {"report.html"}
    # A page someone changed since is no longer DiDA's, even though run.json lists it: refused, untouched.
    (result / "report.html").write_text("old page")
    code, _, err = _run(capsys, "view", result)
    assert code == 2 and one_line(err) and "changed since dida wrote it" in err
    assert (result / "report.html").read_text() == "old page"
    # A report.html that run.json does not list is not DiDA's: refused, untouched.
    run = json.loads((result / "run.json").read_text())
    run["files"].remove("report.html")
    (result / "run.json").write_text(json.dumps(run))
    code, _, err = _run(capsys, "view", result)
    assert code == 2 and one_line(err) and "not written by dida" in err
    assert (result / "report.html").read_text() == "old page"


def test_view_writes_elsewhere_only_as_a_new_file(result, tmp_path, capsys):
    before = {p: p.read_bytes() for p in result.rglob("*") if p.is_file()}
    code, _, err = _run(capsys, "view", result, "--out", tmp_path / "page.html")
    assert code == 0, err
    assert {p: p.read_bytes() for p in result.rglob("*") if p.is_file()} == before
    assert page_json(tmp_path / "page.html")["format"] == "dida-page/1"
    for out, why in ((tmp_path / "page.html", "exists"), (result / "figures" / "p.html", "inside the results")):
        code, _, err = _run(capsys, "view", result, "--out", out)
        assert code == 2 and one_line(err) and why in err, err
    assert {p: p.read_bytes() for p in result.rglob("*") if p.is_file()} == before


def test_view_refuses_what_is_no_result(result, tmp_path, capsys):
    cases = [(tmp_path / "missing", "not a folder"), (result / "figures", "no run.json")]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "run.json").write_text('{"format": "something else"}')
    cases.append((tmp_path / "other", "not the record of a DiDA run"))
    for folder, why in cases:
        code, _, err = _run(capsys, "view", folder)
        assert code == 2 and one_line(err) and why in err, err
    (result / "volume.nrrd").rename(tmp_path / "volume.nrrd")
    code, _, err = _run(capsys, "view", result)
    assert code == 2 and one_line(err) and "no volume.nrrd" in err
    assert not (result / "report.html").exists()


def test_the_page_carries_the_runs_numbers_and_the_one_colour_rule(result, capsys):
    assert _run(capsys, "view", result)[0] == 0
    data = page_json(result / "report.html")
    ex = load_results(result / "dida_results.npz")
    shape = tuple(data["panel"])
    assert shape == pd.panel_shape(ex.bscan_shape, 480)
    grids = list(ex.results[0].grids)
    # d of every grid, class and B-scan: the npz's float32, bit for bit.
    for i, n in enumerate(grids):
        d = np.frombuffer(pd.base64.b64decode(data["d"][i]), "<f4").reshape(3, len(data["classes"]), -1)
        want = np.stack([ex.results[i].deltas[n][data["classes"]].reshape(len(data["classes"]), -1)
                         for i in ex.indices])
        np.testing.assert_array_equal(d, want)
    # Each atom holds one cell of every grid: the cell tables and the atom indices give back every cell map.
    atoms = pd.panel_atoms(ex.results[0], shape)
    rows = np.frombuffer(pd.base64.b64decode(data["atoms"]["rows"]), "<u2")
    cols = np.frombuffer(pd.base64.b64decode(data["atoms"]["cols"]), "<u2")
    for i, n in enumerate(grids):
        cells = np.frombuffer(pd.base64.b64decode(data["cells"][i]), "<u2").reshape(atoms.row_at.size, -1)
        np.testing.assert_array_equal(cells[rows][:, cols], cell_map(ex.results[0], n, shape))
    # Stored per atom, the Mixed Image and the feature scale come back pixel for pixel.
    r = ex.results[2]
    m = mixed_image(r, 1, ex.weights, ex.scale(), shape)
    p = atoms.sample(pd.quantise(m.positive))
    np.testing.assert_array_equal(p[atoms.rows][:, atoms.cols], pd.quantise(m.positive))
    fs = feature_scale(r, 1, shape)
    blue = pd.scale_channel(fs, float(fs.strength.max()))
    np.testing.assert_array_equal(atoms.sample(blue)[atoms.rows][:, atoms.cols], blue)
    # The colour tables are the one colour rule: at 16 levels they are Slicer's labelmap table.
    lut16 = pd.evidence_lut(16).reshape(-1, 4)
    for label in (0, 1, 17, 16 * 15, 255, 16 * 7 + 3):
        assert tuple(lut16[label]) == tuple(round(255 * v) for v in label_color(label))
    lut = np.frombuffer(pd.base64.b64decode(data["lut"]), np.uint8).reshape(-1, 4)
    np.testing.assert_array_equal(lut, pd.evidence_lut().reshape(-1, 4))
    slut = pd.scale_lut(grids).reshape(-1, 4)
    levels = pd.scale_levels(len(grids))
    for i, n in enumerate(grids, start=1):
        s = levels - 1
        want = np.rint(scale_rgba(np.array([n]), np.array([1.0]), grids, 1.0)[0] * 255)
        np.testing.assert_array_equal(slut[i * levels + s], want)
    assert not slut[0].any()


def test_names_cannot_break_out_of_the_page(tmp_path, capsys, volume):
    hostile = ("</script><script>alert(1)</script>", "a&b <i>", "normal")
    package = make_package(tmp_path / "pkg", classes=hostile)
    out = tmp_path / "out"
    code, _, err = _run(capsys, "explain", volume, "--model", package, "--out", out, "--bscans", "1", *PAGE)
    assert code == 0, err
    text = (out / "report.html").read_text(encoding="utf-8")
    assert text.count("<script") == 2 and "alert(1)</script>" not in text
    assert page_json(out / "report.html")["class_names"] == list(hostile)


def test_view_puts_the_square_where_asked(result, tmp_path, capsys):
    code, _, err = _run(capsys, "view", result, "--point", "5,6", "--out", tmp_path / "p.html")
    assert code == 0, err
    assert [b["point"] for b in page_json(tmp_path / "p.html")["bscans"]] == [[5, 6]] * 3
    for bad in ("5", "24,3", "x,y"):
        code, _, err = _run(capsys, "view", result, "--point", bad, "--out", tmp_path / "q.html")
        assert code == 2 and one_line(err) and "--point" in err, err
    assert not (tmp_path / "q.html").exists()
