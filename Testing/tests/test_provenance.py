"""No figure without its provenance: a package marked ``demo`` stamps "Demonstration model - not for clinical use"
into every PNG figure and page it makes, ``dida explain`` warns in one line when a demo package explains anything
but the phantom, and a known diagnosis reads as the file's label, never as the model's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run as _run
from PIL import Image

from DiDALib.io.run_maps import MapChoices
from DiDALib.models.package import demo_model_path
from DiDALib.reports import figures

QUICK = ["--grids", "3", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    """Two real-looking B-scans (a folder of PNGs: a volume of two, so the en-face figure is drawn too)."""
    folder = tmp_path_factory.mktemp("scans")
    rng = np.random.default_rng(7)
    for k in range(2):
        b = rng.random((48, 64)) * 0.3
        b[20:28] += 0.6
        Image.fromarray((np.clip(b, 0, 1) * 255).astype(np.uint8)).save(folder / f"b{k}.png")
    return folder


def _demo_copy(folder: Path, demo: bool) -> Path:
    shutil.copytree(demo_model_path(), folder)
    data = json.loads((folder / "model.json").read_text())
    data["demo"] = demo
    (folder / "model.json").write_text(json.dumps(data))
    return folder


def _notice_rows(path: Path) -> int:
    """Rows of a figure's bottom band in the notice's colour."""
    img = np.asarray(Image.open(path).convert("RGB"))
    return int((img[-60:] == np.array(figures.NOTICE_COLOUR, np.uint8)).all(axis=-1).any(axis=1).sum())


def test_a_demo_package_explaining_a_real_scan_warns_in_one_line(tmp_path, capsys, scans):
    image = scans / "b0.png"
    for model, expected in ((None, 1), (_demo_copy(tmp_path / "elsewhere", True), 1),
                            (_demo_copy(tmp_path / "own", False), 0)):
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        args = ["explain", image, "--out", out, *QUICK, "--no-figures", "--no-report"]
        code, _, err = _run(capsys, *args, *(["--model", model] if model else []))
        assert code == 0, err
        lines = [ln for ln in err.splitlines() if "demonstration model" in ln]
        assert len(lines) == expected, err  # keyed on the package's 'demo' field, not on its folder
        if expected:
            assert lines[0].startswith("dida: warning:") and "not for clinical use" in lines[0]


def test_every_png_figure_and_page_of_a_demo_package_carries_the_notice(tmp_path, capsys, scans, drawn):
    views = ["--view", "classes,contrast,scale"]
    code, _, err = _run(capsys, "explain", scans, "--out", tmp_path / "demo", *QUICK, *views)
    assert code == 0, err
    pngs = sorted((tmp_path / "demo" / "figures").glob("*.png"))
    assert {p.name for p in pngs} >= {"dida_view_bscan000.png", "dida_contrast_bscan000.png",
                                      "dida_scale_bscan000.png", "dida_enface.png"}
    for path in pngs:
        assert _notice_rows(path) >= 10, path.name  # a band drawn into the image itself
    assert drawn.count(figures.DEMO_NOTICE) == len(pngs)
    assert figures.DEMO_NOTICE == "Demonstration model - not for clinical use"
    assert figures.DEMO_NOTICE in (tmp_path / "demo" / "report.html").read_text()
    # the same model without the 'demo' mark: no notice anywhere
    code, _, err = _run(capsys, "explain", scans, "--out", tmp_path / "own", "--model",
                        _demo_copy(tmp_path / "pkg", False), *QUICK, *views)
    assert code == 0, err
    assert all(_notice_rows(p) == 0 for p in (tmp_path / "own" / "figures").glob("*.png"))
    assert figures.DEMO_NOTICE not in (tmp_path / "own" / "report.html").read_text()


def test_a_known_diagnosis_reads_as_the_files_label(tmp_path, drawn):
    """The demo's phantom knows each B-scan's diagnosis: the figures and the page say it is the input's label."""
    from DiDALib.cli.demo import demo_volume
    from DiDALib.cli.explain import run_explain
    from DiDALib.models.package import load_model_package
    from DiDALib.pipeline import ExplainSettings

    volume, truths = demo_volume(2)
    run_explain(volume, load_model_package(demo_model_path()), ExplainSettings(grids=(3,), device="cpu"), [0],
                tmp_path / "d", truths=truths, quiet=True, maps=MapChoices(views=("classes", "scale")))
    headers = [t for t in drawn if t.startswith("B-scan 0")]
    assert headers and all(" · label (file): " in t for t in headers) and not any("diagnosis" in t for t in drawn)
    page = (tmp_path / "d" / "report.html").read_text()
    assert "label (file): " in page and "diagnosis: " not in page
