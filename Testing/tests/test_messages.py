"""The messages a new user met, each now naming the problem and the fix in the user's own terms: a weights file
given as --model, a GPU that is not there, a class name in the wrong case, a grid that cannot fit (refused before
any progress bar), and where to look once a run is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import FAST, make_package, one_line
from cli_helpers import run as _run
from PIL import Image


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("model") / "pkg")


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scan") / "b.png"
    Image.fromarray((np.random.default_rng(0).random((24, 30)) * 255).astype(np.uint8)).save(path)
    return path


def _refused(capsys, tmp_path, *argv) -> str:
    code, _, err = _run(capsys, *argv, "--out", tmp_path / "out")
    assert code == 2 and one_line(err), err
    assert not (tmp_path / "out").exists()
    return err


@pytest.mark.parametrize("name", ["weights.pth", "model.safetensors", "net.onnx", "last.ckpt"])
def test_a_weights_file_given_as_model_says_how_to_make_a_package(tmp_path, capsys, image, package, name):
    weights = tmp_path / name
    shutil.copy(package / "model.safetensors", weights)
    err = _refused(capsys, tmp_path, "explain", image, "--model", weights, *FAST)
    assert "is a weights file, not a model package" in err and "dida package" in err, err
    assert "JSON" not in err and "utf-8" not in err


def test_cuda_without_a_gpu_names_the_option(tmp_path, capsys, image, package, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = [a for a in FAST if a not in ("--device", "cpu")]
    err = _refused(capsys, tmp_path, "explain", image, "--model", package, *args, "--device", "cuda")
    assert "--device cpu" in err and "device='cpu'" not in err, err


@pytest.mark.parametrize("given,suggested", [("DRUSEN", "drusen"), ("wet-amd", "wet_amd"), ("normall", "normal")])
def test_a_class_name_close_to_a_real_one_is_suggested(tmp_path, capsys, image, package, given, suggested):
    err = _refused(capsys, tmp_path, "explain", image, "--model", package, *FAST, "--classes", f"{given},normal")
    assert f"did you mean {suggested!r}" in err, err
    err = _refused(capsys, tmp_path, "explain", image, "--model", package, *FAST, "--contrast", f"{given}:drusen")
    assert f"did you mean {suggested!r}" in err, err


def test_a_grid_too_fine_for_the_input_is_refused_before_any_progress_bar(tmp_path, capsys, image, package):
    args = [a for a in FAST if a != "--quiet"]
    i = args.index("--grids")
    args[i + 1] = "1,500"
    err = _refused(capsys, tmp_path, "explain", image, "--model", package, *args)
    assert "500" in err and "DiDA:" not in err and "img" not in err, err


def test_explain_says_where_to_look(tmp_path, capsys, image, package):
    code, out, err = _run(capsys, "explain", image, "--model", package, "--out", tmp_path / "r",
                          *[a for a in FAST if a != "--no-report"])
    assert code == 0, err
    assert "open a DiDA View figure, e.g. " in out and "dida_view_bscan000.png" in out
    assert "the interactive DiDA View in a web browser: " in out and "report.html" in out
