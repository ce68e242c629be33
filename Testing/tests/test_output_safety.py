"""Output folders lose nothing: ``--force`` replaces only a DiDA result and never the input or what lies around
it, the final move never replaces what another program wrote meanwhile, an unwritable or full disk is found
before the computation, folders follow the umask, and class names give distinct, bounded file names."""

from __future__ import annotations

import json
import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
from cli_helpers import FAST, bscans, make_package, one_line, outputs, run
from oct_samples import write_sample

from DiDALib import cli
from DiDALib.io import run_folder  # the writer of a run's folder (write_scores is patched there)
from DiDALib.io.results import load_results

pytest.importorskip("timm")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("model") / "pkg")


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- 1. --force deletes whatever --out names ----------------------------------------------------------------------


@pytest.mark.parametrize("case", ["dot", "empty", "input-folder", "above-input", "inside-input"])
def test_force_never_touches_the_input_or_what_holds_it(tmp_path, capsys, package, monkeypatch, case):
    study = tmp_path / "study"
    study.mkdir()
    if case in ("input-folder", "inside-input"):
        source = write_sample("png-folder", study / "bscans", bscans(2))
    else:
        source = write_sample("heyex-vol", study / "scan.vol", bscans(2))
    monkeypatch.chdir(study)
    out = {"dot": ".", "empty": "", "input-folder": str(source) + "/", "above-input": str(study),
           "inside-input": str(source / "results")}[case]
    before = _tree(tmp_path)
    code, _, err = run(capsys, "explain", source, "--model", package, "--out", out, *FAST, "--force")
    assert code == cli.EXIT_BAD_INPUT and one_line(err) and "--out" in err, err
    assert _tree(tmp_path) == before  # nothing deleted, nothing written
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []


def test_force_never_replaces_a_folder_of_other_files(tmp_path, capsys, package):
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(1))
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.docx").write_bytes(b"years of work")
    code, _, err = run(capsys, "explain", source, "--model", package, "--out", out, *FAST, "--force")
    assert code == cli.EXIT_BAD_INPUT and one_line(err) and "not a DiDA result" in err, err
    assert _tree(out) == {"thesis.docx": b"years of work"}


def test_force_refuses_a_dida_result_holding_foreign_files(tmp_path, capsys, package):
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(1))
    out = tmp_path / "out"
    assert run(capsys, "explain", source, "--model", package, "--out", out, *FAST)[0] == 0
    (out / "notes.txt").write_text("my notes on this result")
    code, _, err = run(capsys, "explain", source, "--model", package, "--out", out, *FAST, "--force")
    assert code == cli.EXIT_BAD_INPUT and one_line(err) and "notes.txt" in err, err
    assert (out / "notes.txt").read_text() == "my notes on this result"
    (out / "notes.txt").unlink()
    assert run(capsys, "explain", source, "--model", package, "--out", out, *FAST, "--force")[0] == 0


def test_check_output_names_each_refusal(tmp_path, monkeypatch):
    from DiDALib.io.output_dir import OutputFolderError, check_output

    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    cases = {"": "empty", "f.txt/out": "f.txt is a file, not a folder", "f.txt": "is a file", ".": "current folder",
             "link": "symbolic link", str(tmp_path.parent): "current folder"}
    for out, match in cases.items():
        with pytest.raises(OutputFolderError, match=match):
            check_output(out, force=True, what="--out")
    assert check_output("new").kind == "new" and check_output(tmp_path / "f.txt" / ".." / "new").kind == "new"


def test_out_below_a_file_names_the_file(tmp_path, capsys, package):
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(1))
    (tmp_path / "f.txt").write_text("x")
    code, _, err = run(capsys, "explain", source, "--model", package, "--out", tmp_path / "f.txt" / "out", *FAST)
    assert code == cli.EXIT_BAD_INPUT and one_line(err) and "f.txt is a file, not a folder" in err, err
    assert "Errno" not in err


# -- 2. a folder that appears while a run computes is never replaced ---------------------------------------------


def test_a_folder_written_meanwhile_is_kept_and_the_result_put_beside_it(tmp_path, capsys, package, monkeypatch):
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(2))
    out = tmp_path / "out"
    real = run_folder.write_scores

    def meanwhile(*args, **kwargs):  # another program writes ``out`` while this run writes its files
        out.mkdir()
        (out / "theirs.txt").write_text("another program's result")
        return real(*args, **kwargs)

    monkeypatch.setattr(run_folder, "write_scores", meanwhile)
    code, _, err = run(capsys, "explain", source, "--model", package, "--out", out, *FAST)
    assert _tree(out) == {"theirs.txt": b"another program's result"}
    assert code == cli.EXIT_FAILED and one_line(err) and str(tmp_path / "out-2") in err, err
    assert "run.json" in outputs(tmp_path / "out-2")  # this run's result, whole, beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out-2", "v.nrrd"]


def test_rename_never_replaces_an_empty_folder(tmp_path):
    from DiDALib.io.no_replace import rename_noreplace

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b").mkdir()  # os.rename would silently replace this one
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a" / "x").exists() and (tmp_path / "b").is_dir()
    rename_noreplace(tmp_path / "a", tmp_path / "c")
    assert (tmp_path / "c" / "x").read_text() == "a"


def test_a_locked_destination_is_refused_before_anything_is_written(tmp_path):
    from DiDALib.io.output_dir import OutputFolderError, staged_output

    with staged_output(tmp_path / "out") as stage:
        (stage / "a.txt").write_text("first")
        with pytest.raises(OutputFolderError, match="another dida run"), staged_output(tmp_path / "out"):
            pass
    assert outputs(tmp_path / "out") == {"a.txt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- 5. an unwritable or full --out is found before the computation -----------------------------------------------


def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a read-only folder, or for root (who may write anywhere on
    a normal file system) /sys, which is read-only to everyone."""
    if getattr(os, "geteuid", lambda: 1)() != 0:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o555)
        return folder
    if not Path("/sys").is_dir():
        pytest.skip("running as root without /sys: no unwritable folder to test with")
    return Path("/sys")


def test_unwritable_out_fails_before_computing(tmp_path, capsys, package, monkeypatch):
    from DiDALib.engine.core import DiDAEngine

    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(2))
    calls = []
    real = DiDAEngine.scores
    monkeypatch.setattr(DiDAEngine, "scores", lambda self, x: calls.append(len(x)) or real(self, x))
    out = _unwritable(tmp_path) / "dida-out"
    code, _, err = run(capsys, "explain", source, "--model", package, "--out", out, *FAST)
    assert code == cli.EXIT_BAD_INPUT and one_line(err) and "cannot write" in err, err
    assert calls == []  # refused before the model saw a single image
    assert not out.exists()


def test_full_disk_fails_before_computing(tmp_path, capsys, package, monkeypatch):
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(2))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    code, _, err = run(capsys, "explain", source, "--model", package, "--out", tmp_path / "out", *FAST)
    assert code == cli.EXIT_BAD_INPUT and one_line(err) and "free" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nrrd"]


def test_disk_full_while_writing_is_one_line_and_leaves_nothing(tmp_path, capsys, package, monkeypatch):
    import errno

    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(2))

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(run_folder, "write_scores", full)
    code, _, err = run(capsys, "explain", source, "--model", package, "--out", tmp_path / "a" / "out", *FAST)
    assert code == cli.EXIT_BAD_INPUT and one_line(err) and "disk is full" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nrrd"]  # the parent it created is gone too


# -- 8. output folders follow the umask ---------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_output_folders_follow_the_umask(tmp_path, capsys, package, umask):
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(1))
    out = tmp_path / "new" / "out"
    old = os.umask(umask)
    try:
        assert run(capsys, "explain", source, "--model", package, "--out", out, *FAST)[0] == 0
    finally:
        os.umask(old)
    for folder in (out, out / "figures", out.parent):
        assert folder.stat().st_mode & 0o777 == 0o777 & ~umask, folder
    assert (out / "run.json").stat().st_mode & 0o777 == 0o666 & ~umask


# -- 4. distinct class names give distinct, bounded file names ----------------------------------------------------

NAMES = ("wet amd", "wet_amd", "wet/amd", "Ödem", "ödem", "x" * 300)


def test_colliding_and_long_class_names_get_distinct_files(tmp_path, capsys):
    package = make_package(tmp_path / "pkg", classes=NAMES)
    source = write_sample("nrrd", tmp_path / "v.nrrd", bscans(1))
    out = tmp_path / "out"
    code, _, err = run(capsys, "explain", source, "--model", package, "--out", out, *FAST, "--classes", "all",
                       "--no-figures")
    assert code == 0, err
    run_json = json.loads((out / "run.json").read_text())
    files = run_json["class_files"]
    assert sorted(files) == sorted(NAMES)
    names = [f for c in NAMES for f in (files[c]["label"], files[c]["net"])]
    assert len({n.casefold() for n in names}) == 2 * len(NAMES)  # distinct even where case is ignored
    assert all((out / n).is_file() and len(n.encode()) <= 120 for n in names)
    assert files["wet_amd"]["label"] == "DiDA_wet_amd_label.nrrd"  # a name that is its own stem keeps it
    assert sorted(run_json["files"]) == sorted(outputs(out) - {"run.json"})
    assert load_results(out / "dida_results.npz").class_names == NAMES


# -- the same rules for the Slicer module: single files never replace anything ------------------------------------


def test_new_file_never_replaces_and_leaves_nothing_on_failure(tmp_path):
    from DiDALib.io.output_dir import new_file

    target = tmp_path / "scores.csv"
    with new_file(target) as tmp:
        tmp.write_text("a,b\n")
    assert target.read_text() == "a,b\n"
    with pytest.raises(FileExistsError, match="does not overwrite"), new_file(target) as tmp:
        tmp.write_text("other")
    assert target.read_text() == "a,b\n"
    with pytest.raises(RuntimeError), new_file(tmp_path / "b.csv") as tmp:
        tmp.write_text("half")
        raise RuntimeError("failed while writing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


# -- 3. what killed runs left behind ------------------------------------------------------------------------------


def _dida_result(folder: Path, marker: str) -> Path:
    """A sealed DiDA result: its one file listed in run.json with its fingerprint."""
    from DiDALib.io.proof import fingerprints

    folder.mkdir()
    (folder / "scores.csv").write_text(marker)
    (folder / "run.json").write_text(json.dumps({"format": "dida-run/1", "files": ["scores.csv"],
                                                 "file_hashes": fingerprints(folder, ["scores.csv"])}))
    return folder


KILLED = "0123456789abcdef"  # the id of a run that was killed, as its lock file recorded it


def _killed_run(folder: Path, name: str) -> Path:
    """The lock file a killed run of destination ``name`` left (its record names the run's id) and its staging
    folder, with the marker it wrote first."""
    (folder / f".{name}.dida-lock").write_text(json.dumps({"pid": 999999, "run": KILLED}))
    stage = folder / f".{name}.dida-staging-{KILLED}"
    stage.mkdir()
    (stage / ".dida-run").write_text(KILLED)
    (stage / "volume.nrrd").write_bytes(b"half written")
    return stage


def test_a_replacement_cut_short_by_a_kill_is_undone(tmp_path):
    from DiDALib.io.output_dir import OutputFolderError, staged_output

    out = tmp_path / "out"
    _dida_result(tmp_path / f".out.dida-old-{KILLED}", "the earlier result")  # moved aside, then the run was killed
    _killed_run(tmp_path, "out")
    notes = []
    with pytest.raises(OutputFolderError, match="already holds files"), staged_output(out, note=notes.append):
        pass  # the earlier result is back in place, so a run without force must not replace it
    assert (out / "scores.csv").read_text() == "the earlier result"
    assert any("put the earlier result back" in n for n in notes) and any("killed" in n for n in notes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with staged_output(out, force=True) as stage:
        (stage / "run.json").write_text(json.dumps({"format": "dida-run/1", "files": []}))
    assert outputs(out) == {"run.json"}


def test_debris_of_other_destinations_is_cleaned_and_old_partials_named(tmp_path):
    from DiDALib.io.output_dir import staged_output

    _killed_run(tmp_path, "other")  # a killed run of another destination in the same folder
    legacy = tmp_path / ".older.partial-abcd_123"  # dida 0.1's staging folder: named, never deleted
    legacy.mkdir()
    notes = []
    with staged_output(tmp_path / "out", note=notes.append) as stage:
        (stage / "a.txt").write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == [legacy.name, "out"]
    assert any(str(legacy) in n and "older dida" in n for n in notes)
