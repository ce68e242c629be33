"""Unrelated B-scans are explained as such: a folder of images of different sizes (refused before), or any input
with ``--images``, gives one result per image at its own size, a score table with the file names, and no volume
maps (no geometry, en-face map or score plot across "B-scans" of different patients); a one-B-scan volume gets no
en-face figure or empty plot either."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import FAST, PAGE, make_package
from cli_helpers import run as _run
from PIL import Image

from DiDALib.io.results import load_results


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("model") / "pkg")


def _png(path: Path, depth: int, width: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    b = rng.random((depth, width)) * 0.3
    b[depth // 2 : depth // 2 + 4] += 0.6
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(b, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory) -> Path:
    """Three B-scans of three patients, as a folder of Kermany images looks: each its own size."""
    folder = tmp_path_factory.mktemp("kermany")
    for name, (depth, width), seed in (("CNV-1.jpeg", (40, 60), 0), ("DME-7.png", (32, 48), 1),
                                       ("NORMAL-3.png", (36, 36), 2)):
        _png(folder / name, depth, width, seed)
    return folder


def _no_volume_maps(folder: Path) -> None:
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert not [f for f in files if "enface" in f], files


def test_a_folder_of_different_sizes_is_explained_image_by_image(tmp_path, capsys, package, mixed_sizes):
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "explain", mixed_sizes, "--model", package, "--out", out, *PAGE)
    assert code == 0, err
    assert "independent B-scans" in err  # said once why: the images differ in size
    run = json.loads((out / "run.json").read_text())
    assert run["input_kind"] == "independent B-scans" and "spacing_mm" not in run and "spacing_pixels" not in run
    images = run["images"]
    assert [i["file"] for i in images] == ["CNV-1.jpeg", "DME-7.png", "NORMAL-3.png"]
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == ["CNV-1.jpeg", "DME-7.png", "NORMAL-3.png"]
    assert {r["score_mode"] for r in rows} == {run["score"]}
    for entry, row, shape in zip(images, rows, ((40, 60), (32, 48), (36, 36))):
        folder = out / entry["folder"]
        ex = load_results(folder / "dida_results.npz")
        assert ex.bscan_shape == shape and ex.indices == [0]  # each at its own size
        assert float(row[ex.class_names[0]]) == pytest.approx(float(ex.scores()[0, 0]), rel=1e-5)
        assert (folder / "figures" / "dida_view_bscan000.png").is_file() and (folder / "report.html").is_file()
        page = (folder / "report.html").read_text()
        assert 'id="plot"' not in page and 'id="enface"' not in page  # no score plot, no en-face section
    _no_volume_maps(out)
    assert "open" in stdout and "report.html" in stdout
    code, _, err = _run(capsys, "view", out)  # the whole folder is no one result: the message says which to open
    assert code == 2 and "dida view" in err and images[0]["folder"] in err
    code, _, err = _run(capsys, "view", out / images[1]["folder"], "--out", tmp_path / "one.html")
    assert code == 0, err


def test_images_flag_takes_equal_sizes_as_independent_too(tmp_path, capsys, package):
    folder = tmp_path / "same"
    for k in range(2):
        _png(folder / f"patient{k}.png", 24, 30, k)
    code, _, err = _run(capsys, "explain", folder, "--model", package, "--out", tmp_path / "vol", *FAST)
    assert code == 0 and "--images" in err  # a volume, with the hint for unrelated images
    assert json.loads((tmp_path / "vol" / "run.json").read_text()).get("input_kind") != "independent B-scans"
    code, _, err = _run(capsys, "explain", folder, "--images", "--model", package, "--out", tmp_path / "ind", *FAST)
    assert code == 0, err
    run = json.loads((tmp_path / "ind" / "run.json").read_text())
    assert run["input_kind"] == "independent B-scans" and len(run["images"]) == 2
    _no_volume_maps(tmp_path / "ind")


def test_one_bscan_gets_no_enface_figure_or_score_plot(tmp_path, capsys, package):
    image = _png(tmp_path / "one.png", 24, 30, 5)
    code, _, err = _run(capsys, "explain", image, "--model", package, "--out", tmp_path / "out", *PAGE)
    assert code == 0, err
    _no_volume_maps(tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    assert 'id="plot"' not in page and 'id="enface"' not in page


def test_explain_independent_is_one_result_per_image_at_its_own_size(package):
    """The pipeline-level function (also for dida audit): any sizes, one score mode for all, in input order."""
    from DiDALib.independent import explain_independent
    from DiDALib.models.package import load_model_package
    from DiDALib.pipeline import ExplainSettings, VolumeExplainer

    rng = np.random.default_rng(0)
    images = [rng.random(shape, dtype=np.float32) for shape in ((20, 30), (33, 17), (20, 30))]
    explainer = VolumeExplainer(load_model_package(package), ExplainSettings(grids=(2, 3), device="cpu",
                                                                             score="auto"))
    got = list(explain_independent(explainer, images))
    assert [e.bscan_shape for e in got] == [(20, 30), (33, 17), (20, 30)]
    assert len({e.results[0].score for e in got}) == 1 and all(e.indices == [0] for e in got)
    alone = VolumeExplainer(load_model_package(package), ExplainSettings(grids=(2, 3), device="cpu",
                                                                         score=got[0].results[0].score))
    ref = alone.explain_all(images[1][None])
    np.testing.assert_allclose(got[1].results[0].deltas[3], ref.results[0].deltas[3], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("where", ["file", "folder"])
def test_images_are_bounded_by_max_memory_before_decoding(tmp_path, capsys, package, where):
    """Each unrelated image is read when it is explained, and reading one page of a TIFF decodes every page: its
    decoded size is checked against --max-memory from the header, before anything else, as for a volume."""
    from bombs import tiff_bomb

    (tmp_path / "in").mkdir()
    bomb = tiff_bomb(tmp_path / "in" / "c.tif", pages=100)  # 1.6 GiB of zeros in a small file
    if where == "folder":  # with B-scans of other sizes, as a hostile folder would mix them
        _png(tmp_path / "in" / "a.png", 24, 30, 0)
        _png(tmp_path / "in" / "b.png", 28, 36, 1)
    code, _, err = _run(capsys, "explain", tmp_path / "in" if where == "folder" else bomb, "--images", "--model",
                        package, "--out", tmp_path / "out", *FAST, "--max-memory", "1G")
    assert code == 2 and "decoded pixels" in err and "--max-memory" in err, err
    assert not (tmp_path / "out").exists()
