"""Every option is checked where it enters, in one line: an empty value is an unset shell variable, never a quiet
default (``--model ''`` once ran the demo model, ``--classes ''`` wrote no class maps, both exit 0); argparse's own
errors are one line, not its usage; a device DiDA cannot run on is named before torch sees it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import FAST, make_torchscript_package, one_line, run, write_volume

from DiDALib import cli


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_torchscript_package(tmp_path_factory.mktemp("model") / "pkg")


def _bad(capsys, tmp_path: Path, *argv) -> str:
    code, out, err = run(capsys, *argv)
    assert code == cli.EXIT_BAD_INPUT, (code, err)
    assert err.startswith("dida: error: ") and one_line(err), err
    assert "usage:" not in err and not out
    assert not (tmp_path / "out").exists()
    return err


@pytest.mark.parametrize("option", ["--model", "--classes", "--contrast", "--view", "--bscans", "--fill",
                                    "--weights", "--point", "--max-memory", "--grids", "--device", "--out",
                                    "--bscan-distance", "--batch-size"])
def test_an_empty_option_is_an_unset_variable(tmp_path, capsys, package, option):
    volume = write_volume(tmp_path / "v.nrrd", n=1)
    model = [] if option == "--model" else ["--model", package]
    out = [] if option == "--out" else ["--out", tmp_path / "out"]
    opts = [v for i, v in enumerate(FAST) if option not in FAST[max(0, i - 1):i + 1]]
    err = _bad(capsys, tmp_path, "explain", volume, *model, *out, *opts, option, "")
    assert f"{option} is empty (an unset variable?)" in err


def test_an_empty_input_or_class_list_is_refused(tmp_path, capsys, package):
    assert "input is empty" in _bad(capsys, tmp_path, "explain", "", "--model", package, "--out", tmp_path / "out",
                                    *FAST)
    volume = write_volume(tmp_path / "v.nrrd", n=1)
    err = _bad(capsys, tmp_path, "explain", volume, "--model", package, "--out", tmp_path / "out", *FAST,
               "--classes", ", ,")
    assert "--classes" in err and "names no class" in err


@pytest.mark.parametrize("argv, match", [
    (["explain"], "required"),
    (["explain", "x", "--out", "o", "--bogus"], "unrecognized arguments: --bogus"),
    (["explain", "x", "--out", "o", "--precision", "huge"], "--precision"),
    (["explain", "x", "--out", "o", "--batch-size", "many"], "--batch-size"),
    (["view"], "required"),
    (["nope"], "invalid choice"),
    (["package"], "required"),
])
def test_argparse_errors_are_one_line(tmp_path, capsys, argv, match):
    err = _bad(capsys, tmp_path, *argv)
    assert match in err and "--help" in err, err


@pytest.mark.parametrize("device", ["meta", "xpu", "fpga", "cuda:x", "cpu:1"])
def test_a_device_dida_cannot_run_on_is_named(tmp_path, capsys, package, device):
    volume = write_volume(tmp_path / "v.nrrd", n=1)
    opts = [v for v in FAST if v not in ("--device", "cpu")]
    err = _bad(capsys, tmp_path, "explain", volume, "--model", package, "--out", tmp_path / "out", *opts,
               "--device", device)
    assert "--device" in err and "auto, cpu, cuda" in err
