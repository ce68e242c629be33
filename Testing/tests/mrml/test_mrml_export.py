"""Export results (DiDALib.mrml.export) on slicer-core: the shown run written as ``dida explain`` writes its folder,
by the same rules (a foreign folder refused and untouched, a DiDA folder replaced only when asked, nothing left by
a failure)."""

from __future__ import annotations

import errno
import json
import os
import sys

import pytest
import SimpleITK as sitk

from DiDALib import cli
from DiDALib.io.output_dir import OutputFolderError
from DiDALib.io.results import load_results
from DiDALib.io.volume import OCTVolume
from DiDALib.mrml.controller import DiDAController
from DiDALib.mrml.export import export_session, replaceable
from DiDALib.mrml.selftest import fixtures
from DiDALib.mrml.session import ExplainSession
from DiDALib.mrml.volumes import load_oct_node
from DiDALib.phantom import make_volume


def _listing(folder) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.fixture
def cli_run(tmp_path, mrml_package):
    """A phantom volume file and the folder ``dida explain`` wrote for it with the test model."""
    bscans, _, _ = make_volume(n_bscans=3, seed=3, depth=48, width=64)
    source = tmp_path / "phantom.nrrd"
    sitk.WriteImage(OCTVolume(bscans, fixtures.TEST_SPACING).to_sitk(), str(source))
    out = tmp_path / "cli"
    assert cli.main(["explain", str(source), "--model", str(mrml_package), "--out", str(out), "--grids", "3,5",
                     "--device", "cpu", "--quiet"]) == 0
    return source, out


def _replayed(env, source, out) -> ExplainSession:
    """The CLI's result shown in the scene, as a stored result is (through the worker's events)."""
    volume = load_oct_node(env.scene, source)
    session = ExplainSession(env.scene, volume, None, None, classes="top3", name="DiDA stored")
    assert session.replay(load_results(out / "dida_results.npz")) == "complete"
    return session


def test_export_writes_the_folder_dida_explain_writes(env, tmp_path, cli_run):
    source, out = cli_run
    session = _replayed(env, source, out)
    target = tmp_path / "export"
    assert export_session(target, session) == target
    cli_files, exported = (json.loads((f / "run.json").read_text())["files"] for f in (out, target))
    assert exported == cli_files and "report.html" in exported and "figures/dida_view_bscan001.png" in exported
    assert _listing(target) == _listing(out)  # every file, nothing else
    run = json.loads((target / "run.json").read_text())
    assert run["classes_shown"] == json.loads((out / "run.json").read_text())["classes_shown"]
    assert run["grid_schedule"] == "3,5" and run["exported_from"].startswith("3D Slicer")
    again = load_results(target / "dida_results.npz")
    assert again.indices == [0, 1, 2] and again.class_names == load_results(out / "dida_results.npz").class_names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "debris beside the export"


def test_export_refuses_a_foreign_folder_and_replaces_its_own_only_when_asked(env, tmp_path, cli_run):
    source, out = cli_run
    session = _replayed(env, source, out)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    for force in (False, True):
        with pytest.raises(OutputFolderError) as raised:
            export_session(foreign, session, force=force)
        assert "not a DiDA result" in str(raised.value) and "\n" not in str(raised.value)
        assert str(raised.value).startswith("The export folder")
    assert _listing(foreign) == ["mine.txt"] and (foreign / "mine.txt").read_text() == "keep me"
    assert not replaceable(foreign) and replaceable(out) and not replaceable(tmp_path / "new")
    stamp = (out / "run.json").read_text()
    with pytest.raises(OutputFolderError, match="already holds files"):
        export_session(out, session)  # a DiDA folder: not without the user's yes
    assert (out / "run.json").read_text() == stamp
    export_session(out, session, force=True)
    assert "exported_from" in json.loads((out / "run.json").read_text())
    (out / "extra.txt").write_text("mine")  # a DiDA folder with a file of the user's is not replaced
    with pytest.raises(OutputFolderError, match="dida did not write"):
        export_session(out, session, force=True)
    assert (out / "extra.txt").read_text() == "mine"


def test_a_failed_export_leaves_nothing(env, tmp_path, cli_run, monkeypatch):
    source, out = cli_run
    session = _replayed(env, source, out)
    from DiDALib.io import run_folder

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_folder, "write_scores", full)
    before = _listing(tmp_path)
    with pytest.raises(OSError, match="No space"):
        export_session(tmp_path / "new" / "half", session)  # its missing parent too is removed again
    assert _listing(tmp_path) == before  # no folder, no staging debris, no lock


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_an_unwritable_parent_is_refused_with_one_sentence(env, tmp_path, cli_run, monkeypatch):
    source, out = cli_run
    session = _replayed(env, source, out)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root writes into a read-only folder: the OS's refusal is made here instead
        real = os.mkdir

        def refused(path, *args, **kwargs):
            if str(path).startswith(str(locked)):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", refused)
    try:
        with pytest.raises(OutputFolderError, match="cannot write in") as raised:
            export_session(locked / "export", session)
        assert "\n" not in str(raised.value)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_the_controller_exports_the_shown_run_only_with_its_results(env, tmp_path, cli_run):
    source, out = cli_run
    controller = DiDAController(lambda: env.layout_node, lambda: (0.5, "both", True))
    volume = load_oct_node(env.scene, source)
    with pytest.raises(ValueError, match="no results of this session to export"):
        controller.export(tmp_path / "none", volume)
    controller.session = session = ExplainSession(env.scene, volume, None, None, classes="top3")
    session.replay(load_results(out / "dida_results.npz"))
    controller.show(session.run)
    assert controller.shown_session(volume) is session
    controller.export(tmp_path / "shown", volume)
    assert (tmp_path / "shown" / "run.json").is_file()
    assert not (tmp_path / "none").exists()
