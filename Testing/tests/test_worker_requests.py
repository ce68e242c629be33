"""The worker fails closed: fuzzed with random and malformed request lines (as bytes) it answers each bad one with an
``error`` event or a stderr line and keeps serving; it never writes or removes a folder outside its ``--home``,
never follows a symbolic link it did not make, and always ends (and cleans up only what it wrote) when stdin
closes. Once, ``[1,2]`` killed its request thread (the worker then never ended), a job without ``dir`` crashed it,
and a job whose ``dir`` lay outside ``--home`` had that whole folder removed."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from DiDALib.worker.protocol import EVENTS_FILE, EventReader, JobRequest, ModelRequest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")


def _job(job_id: str, folder, model: str = "/nonexistent/package", **change) -> bytes:
    message = JobRequest(ModelRequest(model), {}, [], False).to_message(job_id, folder)
    message.update(change)
    return json.dumps(message).encode()


def _fuzz(seed: int, home: Path, count: int = 300) -> list[bytes]:
    """Random bytes, JSON that is no object, objects with every field of the wrong type, truncated and mutated
    requests: seeded, so a failure can be replayed."""
    rng = random.Random(seed)
    good = _job("g", home / "job-x")
    values = [None, True, 0, -1, 2 ** 70, 1.5, "", "x" * 300, [], [1, 2], {}, {"path": 3}, str(home), "/", "..",
              str(home / ".." / "job-1"), "\x00"]
    lines = []
    for _ in range(count):
        kind = rng.randrange(5)
        if kind == 0:
            lines.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120))).replace(b"\n", b" "))
        elif kind == 1:
            lines.append(json.dumps(rng.choice([[1, 2], "a string", 3, None, True, [{"op": "job"}]])).encode())
        elif kind == 2:
            message = json.loads(good)
            message[rng.choice(list(message) + ["op"])] = rng.choice(values)
            lines.append(json.dumps(message).encode())
        elif kind == 3:
            cut = rng.randrange(1, len(good))
            lines.append(good[:cut])
        else:
            mutated = bytearray(good)
            for _ in range(rng.randrange(1, 8)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(32, 127)
            lines.append(bytes(mutated))
    return lines


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_worker_fails_closed_on_hostile_lines(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    victim = tmp_path / "victim"  # a user's folder: never written, never removed
    victim.mkdir()
    (victim / "data.txt").write_text("the user's data")
    (victim / "job-9").mkdir()
    before = _tree(victim)
    (home / "job-link").symlink_to(victim, target_is_directory=True)  # a job folder that is a link
    planted = home / "job-planted"  # a job folder whose events file is a link someone put there
    planted.mkdir()
    (planted / EVENTS_FILE).symlink_to(victim / "data.txt")
    served = home / "job-served"  # the one good job: a bad model, answered with an error event
    served.mkdir()
    lines = [b"[1,2]", b'"a string"', b'{"op": "job"}', b'{"op": "job", "dir": 5}', b'{"op": "cancel"}',
             b'{"op": "reboot"}', b"\xff\xfe not utf-8", b"[" * 50000, _job("1", victim / "job-9"),
             _job("2", home / "job-link"), _job("3", planted), _job("4", victim),
             _job("5", str(home / "job-served" / ".." / ".." / "victim" / "job-9")),
             *_fuzz(21, home), _job("ok", served)]
    with open(tmp_path / "stderr.txt", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "DiDALib.worker", "--home", str(home)],
                                stdin=subprocess.PIPE, stderr=log, cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
        def send():  # from a thread: a worker that stopped reading must fail the test, not block it
            try:
                proc.stdin.write(b"\n".join(lines) + b"\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

        writer = threading.Thread(target=send, daemon=True)
        writer.start()
        reader, events = EventReader(served / EVENTS_FILE), []
        deadline = time.monotonic() + 120
        while not events and time.monotonic() < deadline and proc.poll() is None:
            events = reader.read()  # the one good job's answer: the worker kept serving through the rest
            time.sleep(0.05)
        writer.join(5)
        if writer.is_alive():
            proc.kill()
            pytest.fail("the worker stopped reading its requests")
        proc.stdin.close()  # the session vanishes: the worker must end, whatever it was sent
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the worker did not end after stdin closed")
    err = (tmp_path / "stderr.txt").read_text(errors="replace")
    assert proc.returncode == 0, err[-3000:]
    assert [e.kind for e in events] == ["error"] and "/nonexistent/package" in events[0].data["message"], events
    assert "Traceback" not in err, err[-3000:]
    assert err.count("a request was ignored") >= 12, err[-3000:]
    assert _tree(victim) == before and (victim / "job-9").is_dir(), "the worker touched a folder outside --home"
    assert (home / "job-link").is_symlink() and (planted / EVENTS_FILE).is_symlink(), "it removed what it did not make"
    assert not served.exists(), "the job folder the worker served (its own events) was not cleaned up"
    assert sorted(p.name for p in home.iterdir()) == ["job-link", "job-planted"]


def test_a_worker_told_nothing_ends_when_stdin_closes(tmp_path):
    """No request at all, then stdin closes: the worker ends at once and removes its home (its log only)."""
    home = tmp_path / "home"
    home.mkdir()
    log = open(home / "worker.log", "ab")  # as the session starts it: stderr into its home
    try:
        proc = subprocess.Popen([sys.executable, "-m", "DiDALib.worker", "--home", str(home)],
                                stdin=subprocess.PIPE, stderr=log, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        proc.stdin.write(b"[1,2]\n")
        proc.stdin.close()
        try:
            assert proc.wait(60) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the worker did not end after stdin closed")
    finally:
        log.close()
    assert not home.exists()
