"""Staging and ``--force`` by proof, not by name: a user's folder named like a staging folder is never removed
(``.mydata.dida-staging-1`` once was, as "the staging folder of a dida run that was killed"), and ``--force``
replaces a result only while every file has the size and SHA-256 ``run.json`` recorded when it was sealed (it
once deleted a user file that someone had listed in ``run.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import FAST, make_torchscript_package, one_line, run, write_volume

from DiDALib import cli


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_torchscript_package(tmp_path_factory.mktemp("model") / "pkg")


@pytest.mark.parametrize("name", [".mydata.dida-staging-1", ".out.dida-staging-1", ".out.dida-staging-123456"])
def test_a_folder_merely_named_like_staging_is_never_removed(tmp_path, capsys, package, name):
    mine = tmp_path / name
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    (tmp_path / f".{name.split('.')[1]}.dida-lock").write_text("{}")  # even beside a lock file
    volume = write_volume(tmp_path / "v.nrrd", n=1)
    code, _, err = run(capsys, "explain", volume, "--model", package, "--out", tmp_path / "out", *FAST)
    assert code == 0, err
    assert (mine / "thesis.txt").read_text() == "years of work"
    assert f"removed {mine}" not in err


def test_a_killed_runs_staging_folder_is_removed_by_its_proof(tmp_path, capsys, package):
    """The staging folder a killed run left (its id in the lock file and in the marker inside) is removed; one
    named with that id but without the marker is not."""
    killed = "fedcba9876543210"
    (tmp_path / ".out.dida-lock").write_text(json.dumps({"pid": 999999, "run": killed}))
    stage = tmp_path / f".out.dida-staging-{killed}"
    stage.mkdir()
    (stage / ".dida-run").write_text(killed)
    volume = write_volume(tmp_path / "v.nrrd", n=1)
    code, _, err = run(capsys, "explain", volume, "--model", package, "--out", tmp_path / "out", *FAST)
    assert code == 0 and f"removed {stage}" in err, err
    assert not stage.exists()
    assert not list(tmp_path.glob(".out.dida-*"))  # and the run's own marker never reaches the result
    assert not (tmp_path / "out" / ".dida-run").exists()


def _result(tmp_path: Path, package: Path, capsys) -> Path:
    volume = write_volume(tmp_path / "v.nrrd", n=1)
    out = tmp_path / "out"
    assert run(capsys, "explain", volume, "--model", package, "--out", out, *FAST)[0] == 0
    return out


def test_force_refuses_a_file_listed_in_run_json_by_hand(tmp_path, capsys, package):
    out = _result(tmp_path, package, capsys)
    (out / "notes.txt").write_text("my notes")
    record = json.loads((out / "run.json").read_text())
    record["files"].append("notes.txt")
    (out / "run.json").write_text(json.dumps(record))
    code, _, err = run(capsys, "explain", tmp_path / "v.nrrd", "--model", package, "--out", out, *FAST, "--force")
    assert code == cli.EXIT_BAD_INPUT and one_line(err) and "notes.txt" in err, err
    assert (out / "notes.txt").read_text() == "my notes"


def test_force_refuses_a_result_whose_files_changed(tmp_path, capsys, package):
    out = _result(tmp_path, package, capsys)
    (out / "scores.csv").write_text("edited by hand")
    code, _, err = run(capsys, "explain", tmp_path / "v.nrrd", "--model", package, "--out", out, *FAST, "--force")
    assert code == cli.EXIT_BAD_INPUT and "scores.csv" in err and "not as dida wrote them" in err, err
    assert (out / "scores.csv").read_text() == "edited by hand"


def test_force_replaces_a_result_exactly_as_dida_wrote_it(tmp_path, capsys, package):
    out = _result(tmp_path, package, capsys)
    record = json.loads((out / "run.json").read_text())
    assert set(record["file_hashes"]) == set(record["files"]) and "run.json" not in record["files"]
    code, _, err = run(capsys, "explain", tmp_path / "v.nrrd", "--model", package, "--out", out, *FAST, "--force")
    assert code == 0, err
