"""Every bad input gets exit code 2 and one line naming the field or option and the fix, never a traceback, a
hang or native-library noise: odd input files, model packages that lie, models that break mid-run, and runs too
large for the machine's memory."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from bombs import png_bomb
from cli_helpers import FAST, bscans, changed_package, make_package, make_torchscript_package, one_line, run
from oct_samples import write_sample

from DiDALib import cli

pytest.importorskip("timm")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("model") / "pkg")


def _refused(capsys, tmp_path, source, *args, match: str, model=None) -> str:
    out = tmp_path / "out"
    code, _, err = run(capsys, "explain", source, *(["--model", model] if model else []), "--out", out, *FAST, *args)
    assert code == cli.EXIT_BAD_INPUT, err
    assert err.startswith("dida: error: ") and one_line(err), err
    assert match in err, err
    assert not out.exists()
    return err


def _changed(tmp_path: Path, package: Path, **fields) -> Path:
    return changed_package(tmp_path / "changed", package, **fields)


# -- input files --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [10000, 14000])  # over Pillow's limit (a warning), and over twice it (an error)
def test_decompression_bomb_png(tmp_path, capsys, package, side):
    source = png_bomb(tmp_path / "bomb.png", side, side)
    _refused(capsys, tmp_path, source, match="decompression bomb", model=package)


@pytest.mark.parametrize("name,content", [("bad.mha", b"garbage"), ("bad.nii.gz", b"garbagegarbage"),
                                          ("hdr.mhd", b"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\n"
                                                      b"ElementType = MET_UCHAR\nElementDataFile = missing.raw\n")])
def test_itk_errors_without_native_chatter(tmp_path, capfd, package, name, content):
    (tmp_path / name).write_bytes(content)
    code = cli.main(["explain", str(tmp_path / name), "--model", str(package), "--out", str(tmp_path / "out"), *FAST])
    out, err = capfd.readouterr()  # what native code wrote to the file descriptors, too
    assert code == cli.EXIT_BAD_INPUT and one_line(err) and err.startswith("dida: error:"), err
    assert "Reason: Success" not in err and "0x" not in err, err


def test_folder_with_a_vol_and_pngs_is_ambiguous(tmp_path, capsys, package):
    folder = write_sample("png-folder", tmp_path / "exam", bscans(2))
    write_sample("heyex-vol", folder / "scan.vol", bscans(3))
    err = _refused(capsys, tmp_path, folder, match="scan.vol", model=package)
    assert "B1.png" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_fifo_as_input_is_refused_not_waited_on(tmp_path, capsys, package):
    fifo = tmp_path / "scan.vol"
    os.mkfifo(fifo)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("code", cli.main(
        ["explain", str(fifo), "--model", str(package), "--out", str(tmp_path / "out"), *FAST])), daemon=True)
    worker.start()
    worker.join(timeout=60)
    blocked = worker.is_alive()
    if blocked:  # release the reader, so that the failing test does not hang the suite
        with open(fifo, "wb"):
            pass
        worker.join(timeout=60)
    err = capsys.readouterr().err
    assert not blocked, "dida waited on the named pipe"
    assert result["code"] == cli.EXIT_BAD_INPUT and one_line(err) and "named pipe" in err, err


# -- model packages that lie --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fields,match", [
    ({"std": [float("nan")]}, "'std'"),
    ({"mean": "abc"}, "'mean'"),
    ({"mean": ["abc"]}, "'mean'"),
    ({"std": [float("inf")]}, "'std'"),
    ({"width_scale": "wide"}, "'width_scale'"),
    ({"channels": "one"}, "'channels'"),
])
def test_model_json_fields_are_named(tmp_path, capsys, package, fields, match):
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(1))
    err = _refused(capsys, tmp_path, source, match=match, model=_changed(tmp_path, package, **fields))
    assert "non-finite pixel" not in err and "could not convert" not in err


@pytest.mark.parametrize("weights", ["../model.safetensors", "{tmp}/model.safetensors", "sub/../../model.safetensors"])
def test_weights_outside_the_package_are_refused(tmp_path, capsys, package, weights):
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(1))
    shutil.copy(package / "model.safetensors", tmp_path / "model.safetensors")  # a real file, outside the package
    changed = _changed(tmp_path, package, weights=weights.format(tmp=tmp_path))
    _refused(capsys, tmp_path, source, match="outside the package", model=changed)


def test_a_model_that_breaks_mid_run(tmp_path, capsys):
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(2))
    model = make_torchscript_package(tmp_path / "breaks", fail_above_batch=1)  # passes its load check, then fails
    _refused(capsys, tmp_path, source, match="the model failed", model=model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["breaks", "v.nrrd"]


def test_a_huge_class_name_is_no_traceback(tmp_path, capsys):
    model = make_package(tmp_path / "pkg", classes=("normal", "d" * 250))
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(1))
    code, _, err = run(capsys, "explain", source, "--model", model, "--out", tmp_path / "out", *FAST)
    assert code == 0, err


# -- memory -------------------------------------------------------------------------------------------------------


def test_a_huge_model_input_is_refused_before_loading(tmp_path, capsys, package, monkeypatch):
    import torch

    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(1))
    huge = _changed(tmp_path, package, input_size=[20000, 20000])
    monkeypatch.setattr(torch.nn.Module, "__call__", lambda *a, **k: pytest.fail("the model ran"))
    err = _refused(capsys, tmp_path, source, "--max-memory", "8G", match="input_size 20000 x 20000", model=huge)
    assert "GB" in err and "--max-memory allows 8.0 GB" in err


def test_a_huge_model_input_is_refused_by_what_the_machine_has(tmp_path, capsys, package, monkeypatch):
    import DiDALib.footprint as footprint

    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(1))
    monkeypatch.setattr(footprint, "available_memory", lambda: 2 * 10**9)
    err = _refused(capsys, tmp_path, source, match="input_size",
                   model=_changed(tmp_path, package, input_size=[20000, 20000]))
    assert "the machine has 2.0 GB available" in err


def test_a_run_too_large_for_memory_is_refused_with_the_fix(tmp_path, capsys, package):
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(40, 200, 300))
    err = _refused(capsys, tmp_path, source, "--max-memory", "20M", "--no-figures",
                   match="--max-memory allows 20.0 MB", model=package)
    assert "output maps" in err and "smaller volume" in err


def test_the_cpu_batch_is_capped_to_what_fits():
    from DiDALib.cli.preflight import plan_run
    from DiDALib.footprint import NotEnoughMemory, model_pass_bytes
    from DiDALib.models.spec import ModelSpec
    from DiDALib.pipeline import ExplainSettings

    spec = ModelSpec(architecture="timm:x", classes=("a", "b"), input_size=(512, 512))
    settings = ExplainSettings(grids=(2, 3), device="cpu")
    limit = model_pass_bytes((512, 512), 1, 4) + 10**7  # room for 4 images a batch, not 8
    notes = []
    chosen, fp = plan_run(1, (100, 100), spec, settings, 1, False, limit, notes.append)
    assert chosen.batch_size == 4 and fp.peak <= limit and "batches of 4" in notes[0]
    assert plan_run(1, (100, 100), spec, settings, 1, False, 10**12)[0].batch_size is None  # tuned as before
    with pytest.raises(NotEnoughMemory, match="--batch-size 1"):
        plan_run(1, (100, 100), spec, ExplainSettings(grids=(2,), device="cpu", batch_size=32), 1, False, limit)


def test_figures_and_mixed_images_of_a_huge_bscan_stay_small():
    """A DiDA View figure costs the same memory for a 1000 x 1000 and a 2000 x 2000 B-scan (no image-sized RGB
    copies), and a Mixed Image no image-sized map of cell numbers (one int64 map per grid: 8 bytes a pixel)."""
    import tracemalloc

    from DiDALib.engine.result import DiDAResult
    from DiDALib.maps.mixing import mixed_image
    from DiDALib.pipeline import VolumeExplanation
    from DiDALib.reports.figures import dida_view_figure

    grids = (7, 9, 11, 13, 15, 17, 19, 21)
    rng = np.random.default_rng(0)
    result = DiDAResult(base_scores=np.array([0.5, 0.3, 0.2], np.float32),
                        deltas={n: rng.normal(0, 0.1, (3, n, n)).astype(np.float32) for n in grids},
                        image_shape=(64, 64), region=(0, 0, 64, 64), score="probabilities", index=0,
                        class_names=("a", "b", "c"))
    peaks = {}
    for side in (1000, 2000):
        bscan = rng.random((side, side), dtype=np.float32)
        explanation = VolumeExplanation(("a", "b", "c"), {0: result}, (side, side))
        tracemalloc.start()
        try:
            dida_view_figure(bscan, explanation, 0, scale=0.2)
            figure = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            mixed_image(result, 0, shape=(side, side), scale=0.2)
            peaks[side] = figure, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[2000][0] < 1.2 * peaks[1000][0], peaks  # four times the pixels, the same figure memory
    assert peaks[2000][1] < 4 * 2000 * 2000 * 4, peaks  # positive, negative and a temporary: float32 each
