"""``--runtime`` where users choose it: the command line (run.json, the one console line, exit code 2 for a runtime
that cannot run the model) and the worker, whose ``runtime`` event reaches the Slicer session's status line."""

from __future__ import annotations

import json
import sys

import pytest
from cli_helpers import FAST, make_package, run, write_volume

from DiDALib.mrml.selftest import fixtures
from DiDALib.mrml.session import ExplainSession

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return make_package(tmp_path_factory.mktemp("model") / "pkg")


def test_explain_records_the_runtime(tmp_path, capsys, package):
    volume = write_volume(tmp_path / "v.nrrd", n=2)
    talking = [option for option in FAST if option != "--quiet"]
    code, _, err = run(capsys, "explain", volume, "--model", package, "--out", tmp_path / "ort", *talking,
                       "--runtime", "onnxruntime")
    assert code == 0, err
    record = json.loads((tmp_path / "ort" / "run.json").read_text())
    assert record["runtime"] == "onnxruntime" and "asked for" in record["runtime_reason"]
    assert "dida: note: runtime onnxruntime: asked for; d within" in err
    code, out, err = run(capsys, "explain", volume, "--model", package, "--out", tmp_path / "quiet", *FAST,
                         "--runtime", "onnxruntime")
    # --quiet: run.json and stdout say it, stderr has no note (a warning that the maps may mislead stays, #22)
    assert code == 0 and "dida: note" not in err and "runtime" not in err and "on cpu (onnxruntime)" in out, err
    code, out, err = run(capsys, "explain", volume, "--model", package, "--out", tmp_path / "torch", *FAST,
                         "--runtime", "torch")
    assert code == 0 and "runtime" not in err, err
    assert json.loads((tmp_path / "torch" / "run.json").read_text())["runtime"] == "torch"
    assert "on cpu (torch)" in out


def test_a_runtime_that_cannot_run_is_exit_code_2_in_one_line(tmp_path, capsys, package, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    volume = write_volume(tmp_path / "v.nrrd", n=1)
    code, _, err = run(capsys, "explain", volume, "--model", package, "--out", tmp_path / "out", *FAST,
                       "--runtime", "openvino")
    assert code == 2 and "OpenVINO is not installed (pip install openvino)" in err, err
    assert "choose the runtime torch or auto" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing written


def test_the_worker_says_the_runtime_and_the_session_shows_it(env, worker, mrml_package):
    volume = fixtures.make_test_volume(env, n_bscans=1)
    session = ExplainSession(env.scene, volume, worker, mrml_package,
                             {**fixtures.TEST_SETTINGS, "runtime": "onnxruntime"})
    assert session.run_blocking(timeout=300) == "complete", session.error
    assert session.runtime["runtime"] == "onnxruntime", session.runtime
    assert "(runtime onnxruntime: asked for)" in session.summary()
