"""The worker process and its protocol: events in order and bit for bit, the runs the Slicer session drives (a real
worker process on slicer-core: previews, finished B-scans, a warm second job, cancel, a scene closed while running,
a worker killed mid-run), and cleanup when the session that started a worker vanishes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from DiDALib.engine.result import DiDAResult
from DiDALib.mrml.selftest import fixtures, worker_checks
from DiDALib.mrml.session import ExplainSession
from DiDALib.worker.protocol import (
    EVENTS_FILE,
    EventReader,
    EventWriter,
    JobRequest,
    ModelRequest,
    decode_array,
    decode_result,
    encode_array,
    encode_result,
)
from DiDALib.worker.server import Worker

ROOT = Path(__file__).resolve().parents[3]


def test_worker_help_says_what_it_is():
    run = subprocess.run([sys.executable, "-m", "DiDALib.worker", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "DiDA worker" in run.stdout and "stdin" in run.stdout and "events.jsonl" in run.stdout


def test_arrays_and_results_travel_bit_for_bit():
    rng = np.random.default_rng(0)
    for a in (rng.standard_normal((4, 7, 7)).astype(np.float32), rng.standard_normal(5).astype(">f8"),
              np.arange(6, dtype=np.int64).reshape(2, 3), np.zeros((0, 3), np.float32)):
        back = decode_array(json.loads(json.dumps(encode_array(a))))
        assert back.shape == a.shape and np.array_equal(back, a) and back.dtype == a.dtype.newbyteorder("=")
    result = DiDAResult(base_scores=rng.random(3).astype(np.float32),
                        deltas={3: rng.standard_normal((3, 3, 3)).astype(np.float32),
                                5: rng.standard_normal((3, 5, 5)).astype(np.float32)},
                        image_shape=(32, 32), region=(0, 2, 32, 28), score="logits", index=1)
    back = decode_result(json.loads(json.dumps(encode_result(result, 7))), ("a", "b", "c"))
    assert back.index == 7 and back.region == result.region and back.score == "logits"
    assert all(np.array_equal(back.deltas[n], result.deltas[n]) for n in (3, 5))
    assert np.array_equal(back.base_scores, result.base_scores) and back.class_names == ("a", "b", "c")


def test_event_reader_returns_whole_lines_in_order(tmp_path):
    path = tmp_path / EVENTS_FILE
    reader = EventReader(path)
    assert reader.read() == []  # nothing written yet
    writer = EventWriter(path)
    writer.write("ready", model="m")
    with open(path, "ab") as f:  # the worker in the middle of a line
        f.write(b'{"seq": 1, "event": "progress", "images_')
    events = reader.read()
    assert [(e.kind, e.seq) for e in events] == [("ready", 0)]
    with open(path, "ab") as f:
        f.write(b'done": 1}\n{"seq": 3, "event": "done"}\n')
    with pytest.raises(RuntimeError, match="event 3 follows event 1"):
        reader.read()
    writer.close()


def test_a_job_from_another_protocol_version_is_refused(tmp_path):
    """The worker answers a request it cannot serve with an error event, not a crash (in-process server)."""
    job = tmp_path / "job-1"
    job.mkdir()
    message = JobRequest(ModelRequest(str(tmp_path)), {}, [], False).to_message("x", job)
    message["protocol"] = 99
    stdin = io.StringIO(json.dumps(message) + "\n" + json.dumps({"op": "shutdown"}) + "\n")
    assert Worker(stdin, io.StringIO(), home=tmp_path).serve() == 0
    events = EventReader(job / EVENTS_FILE).read()
    assert [e.kind for e in events] == ["error"] and "protocol 99" in events[0].data["message"]
    assert job.exists(), "a worker told to shut down must not remove the session's folders"


@pytest.mark.parametrize("check", worker_checks.WORKER_CHECKS, ids=lambda c: c.__name__)
def test_runs_in_the_worker(check, env, worker, mrml_package):
    check(env, worker, mrml_package)
    assert not list(worker.home.glob("job-*")), "a job folder was left behind"


def test_no_thread_is_started_on_the_session_side(env, worker, mrml_package):
    before = set(threading.enumerate())
    session = ExplainSession(env.scene, fixtures.make_test_volume(env, n_bscans=3), worker, mrml_package,
                             fixtures.TEST_SETTINGS)
    session.start()
    while session.poll():
        assert set(threading.enumerate()) <= before, "the session started a thread"
        time.sleep(0.005)
    assert session.state == "complete", session.summary()


def test_a_broken_package_fails_in_the_worker_with_its_reason(env, worker, mrml_package, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text((Path(mrml_package) / "model.json").read_text())  # no weights file
    volume = fixtures.make_test_volume(env, n_bscans=1)
    before = env.scene.GetNumberOfNodes()
    session = ExplainSession(env.scene, volume, worker, broken, fixtures.TEST_SETTINGS)
    assert session.run_blocking(timeout=120) == "failed"
    assert "weights file" in session.error and "missing" in session.error, session.error
    assert session.run is None and env.scene.GetNumberOfNodes() == before, "a failed load left nodes behind"
    assert not session.job.folder.exists()


def test_a_device_the_computer_lacks_is_a_device_error(env, worker, mrml_package):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this computer has a CUDA GPU: asking for one is no error here")
    session = ExplainSession(env.scene, fixtures.make_test_volume(env, n_bscans=1), worker, mrml_package,
                             {**fixtures.TEST_SETTINGS, "device": "cuda"})
    assert session.run_blocking(timeout=120) == "failed"
    assert session.error_kind == "device" and "CUDA" in session.error, (session.error_kind, session.error)


CLIENT_THAT_DIES = r"""
import sys, time
sys.path.insert(0, {root!r})
import numpy as np
from DiDALib.worker.client import WorkerClient
from DiDALib.worker.protocol import JobRequest, ModelRequest
client = WorkerClient(home={home!r})
job = client.submit(JobRequest(ModelRequest({package!r}), {settings!r}, list(range(40))),
                    np.random.default_rng(0).random((40, 48, 64), dtype=np.float32))
while True:
    for event in job.poll():
        if event.kind == "progress":
            print(client.worker_pid, flush=True)
            time.sleep(600)
    time.sleep(0.01)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_a_worker_whose_session_vanished_cleans_up_and_ends(tmp_path, mrml_package):
    """Slicer killed mid-run: its worker sees stdin end, cancels the job, removes the session's folders and ends."""
    home = tmp_path / "session"
    code = CLIENT_THAT_DIES.format(root=str(ROOT), home=str(home), package=str(mrml_package),
                                   settings=fixtures.SLOW_SETTINGS)
    client = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(client.stdout.readline())
        assert list(home.glob("job-*")), "the job folder should exist while the job runs"
    finally:
        client.kill()
        client.wait(30)
    deadline = time.monotonic() + 60
    while (home.exists() or _alive(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the worker outlived the session that started it"
    assert not home.exists(), f"the worker left {sorted(p.name for p in home.rglob('*'))}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())  # a zombie has ended


def test_results_of_shifted_grids_travel_bit_for_bit():
    from DiDALib.engine.schedule import offset_grids

    rng = np.random.default_rng(1)
    grids = offset_grids((2,), 2)
    result = DiDAResult(base_scores=rng.random(3).astype(np.float32),
                        deltas={g: rng.standard_normal((3, 2 + (i > 1), 2 + (i % 2))).astype(np.float32)
                                for i, g in enumerate(grids)},
                        image_shape=(32, 32), region=(0, 0, 32, 32), score="logits", index=0)
    back = decode_result(json.loads(json.dumps(encode_result(result, 0))))
    assert back.grids == result.grids
    assert all(np.array_equal(back.deltas[g], result.deltas[g]) for g in grids)


def test_a_missing_pythonslicer_is_one_sentence(tmp_path, monkeypatch):
    """Slicer sets sys.executable to QStandardPaths::findExecutable("PythonSlicer"), "" where it finds none
    (Base/QTCore/qSlicerCoreApplication.cxx): the worker then falls back on PythonSlicer on PATH, and without one
    the run stops with one sentence naming the problem and the fix, leaving no job folder."""
    from DiDALib.worker.client import WorkerClient, WorkerUnavailable

    monkeypatch.setattr(sys, "executable", "")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    client = WorkerClient(home=tmp_path / "home")
    with pytest.raises(WorkerUnavailable, match="PythonSlicer") as info:
        client.submit(JobRequest(ModelRequest("model")), np.zeros((1, 4, 4), np.float32)[:0])
    assert "\n" not in str(info.value) and str(info.value).count(". ") == 0, str(info.value)
    assert not list((tmp_path / "home").glob("job-*")) and client.starts == 0
    (tmp_path / "bin").mkdir()
    launcher = tmp_path / "bin" / "PythonSlicer"
    launcher.write_text("#!/bin/sh\nexit 0\n")
    launcher.chmod(0o755)
    assert WorkerClient().python == str(launcher), "PythonSlicer on PATH is not used"
    client.close()


class _Running:
    """A stand-in for the worker's Popen: running until ``returncode`` is set."""

    returncode = None

    def poll(self):
        return self.returncode


def test_one_poll_reads_a_bounded_share_of_a_backlog(tmp_path):
    """The module's timer polls every 100 ms: however many events wait (a worker that ran ahead while Slicer was
    busy), one poll reads and parses at most ``READ_BYTES`` of them (one longer line whole), the rest on the next
    polls, in order; a worker that died is reported only after everything it wrote was read."""
    from DiDALib.worker.client import READ_BYTES, Job, WorkerClient

    writer = EventWriter(tmp_path / EVENTS_FILE)
    blob = "x" * 200_000
    for i in range(60):
        writer.write("progress", images_done=i, pad=blob)
    writer.close()
    process = _Running()
    job = Job(WorkerClient(home=tmp_path / "home"), "1", tmp_path, process)
    kinds, seen, polls = [], [], 0
    while not job.finished:
        events = job.poll()
        polls += 1
        assert events, "a poll read nothing while events were waiting"
        assert sum(len(json.dumps(e.data)) for e in events) <= READ_BYTES + 250_000, f"{len(events)} events at once"
        kinds += [e.kind for e in events]
        seen += [e.data["images_done"] for e in events if e.kind == "progress"]
        process.returncode = -9  # the worker died after its first poll: what it wrote still comes first
    assert seen == list(range(60)) and kinds == ["progress"] * 60 + ["error"], kinds[-3:]
    assert polls >= 12_000_000 // READ_BYTES, f"{polls} polls for 12 MB of events"


def test_close_never_blocks_on_a_worker_that_does_not_stop(tmp_path):
    """Closing the module (or Slicer) while the worker does not answer (a long batch, a hung driver): close()
    returns within about half a second, the worker process is gone and its folder removed."""
    from DiDALib.worker.client import WorkerClient

    stubborn = tmp_path / "stubborn-python"
    stubborn.write_text("#!/bin/sh\ntrap '' TERM HUP\nexec sleep 60\n")
    stubborn.chmod(0o755)
    client = WorkerClient(python=str(stubborn), home=tmp_path / "home")
    client.submit(JobRequest(ModelRequest("model")))
    process = client._process
    started = time.perf_counter()
    client.close()
    took = time.perf_counter() - started
    assert took < 1.0, f"close() blocked for {took:.2f} s"
    assert process.poll() is not None and not (tmp_path / "home").exists()
