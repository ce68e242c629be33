"""Real ``dida`` processes, stopped at several moments and racing each other: SIGINT, SIGTERM and SIGHUP leave
nothing behind and say so in one line; a SIGKILL's staging folder is removed by the next run; two runs on one
output folder never replace each other's result."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import bscans, hidden, make_torchscript_package, one_line, outputs, run, start, wait_for
from oct_samples import write_sample

from DiDALib import cli

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]
# 30 B-scans and 6 grids: about a second of computing and more than a second of writing figures on a 2-core CPU.
JOB = ["--grids", "2,3,4,5,6,7", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> tuple[Path, Path]:
    """A volume and a model package outside the test folders (which must end up holding nothing)."""
    folder = tmp_path_factory.mktemp("job")
    return write_sample("nrrd", folder / "v.nrrd", bscans(30, 64, 80)), make_torchscript_package(folder / "pkg")


def _staging(folder: Path) -> Path | None:
    """The run's staging folder: the hidden folder beside its output."""
    return next((p for p in folder.iterdir() if p.name.startswith(".") and p.is_dir()), None)


MOMENTS = {
    "start-up": None,  # 0.4 s in: Python is importing torch
    "computing": lambda folder: _staging(folder) is not None,
    "writing": lambda folder: (s := _staging(folder)) is not None and (s / "volume.nrrd").exists(),
}


@pytest.mark.parametrize("signum,moment", [
    (signal.SIGINT, "start-up"), (signal.SIGTERM, "start-up"), (signal.SIGHUP, "computing"),
    (signal.SIGTERM, "writing"), (signal.SIGINT, "writing"),
])
def test_a_stop_signal_at_any_moment_leaves_nothing(tmp_path, job, signum, moment):
    source, package = job
    proc = start("explain", source, "--model", package, "--out", tmp_path / "out", *JOB, cwd=tmp_path)
    if MOMENTS[moment] is None:
        time.sleep(0.4)
    else:
        assert wait_for(lambda: MOMENTS[moment](tmp_path), proc), proc.communicate()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert one_line(err) and "no output was written" in err, err
    assert list(tmp_path.iterdir()) == []  # no output, no staging folder, no lock


def test_a_killed_run_leaves_staging_that_the_next_run_removes(tmp_path, capsys, job):
    source, package = job
    out = tmp_path / "out"
    proc = start("explain", source, "--model", package, "--out", out, *JOB, cwd=tmp_path)
    assert wait_for(lambda: MOMENTS["writing"](tmp_path), proc), proc.communicate()
    proc.kill()  # SIGKILL: no clean-up is possible
    proc.communicate(timeout=60)
    stage = _staging(tmp_path)
    assert stage is not None and not out.exists()
    code, _, err = run(capsys, "explain", source, "--model", package, "--out", out, "--grids", "2", "--device",
                       "cpu", "--quiet", "--bscans", "0", "--no-figures")
    assert code == 0, err
    assert f"removed {stage}" in err and "killed" in err
    assert hidden(tmp_path) == [] and "run.json" in outputs(out)


def test_two_runs_started_together_never_replace_each_other(tmp_path, job):
    source, package = job
    out = tmp_path / "out"
    procs = [start("explain", source, "--model", package, "--out", out, *JOB, cwd=tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, cli.EXIT_BAD_INPUT], results  # one wrote, the other refused before computing
    loser = next(err for code, err in results if code)
    assert one_line(loser) and ("another dida run" in loser or "already holds files" in loser), loser
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert len([f for f in outputs(out) if f.startswith("figures/dida_view_")]) == 30


def test_a_run_on_a_folder_being_written_is_refused_even_with_force(tmp_path, job):
    from DiDALib.io.output_dir import staged_output

    source, package = job
    out = tmp_path / "out"
    with staged_output(out) as stage:  # this test process is writing ``out``
        (stage / "run.json").write_text("{}")
        proc = start("explain", source, "--model", package, "--out", out, *JOB, "--force", cwd=tmp_path)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == cli.EXIT_BAD_INPUT and one_line(err) and "another dida run" in err, err
    assert outputs(out) == {"run.json"}
    assert hidden(tmp_path) == []
