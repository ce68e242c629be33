"""The session's side of the DiDA worker: start it, send jobs, read their events, from one thread and never blocking.

Slicer's QTimer calls ``Job.poll`` (through the session); nothing here starts a thread. The worker is started on the
first job and kept for the next ones (its model stays loaded); when it dies, the job in flight reports that in one
sentence and the next job starts a new worker. Job folders live in the client's ``home`` folder and are removed
when their job is released; ``close`` removes the home folder, and a worker whose session vanished removes it too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .protocol import BSCANS_FILE, DIED, EVENTS_FILE, Event, EventReader, JobRequest

#: The folder that holds DiDALib: the worker imports the same library as the session.
LIBRARY_ROOT = Path(__file__).resolve().parents[2]
#: Bytes of events one ``Job.poll`` reads and parses at most (a few result events of a large B-scan), so that a long
#: backlog is applied over several timer ticks instead of holding Slicer's main thread in one.
READ_BYTES = 1 << 20
#: Seconds ``WorkerClient.close`` waits for the worker to stop before it ends it: Slicer never waits longer.
CLOSE_WAIT = 0.4
#: Seconds of one ``Job.poll`` spent writing a staged job's B-scans (the rest waits for the next poll).
STAGE_SECONDS = 0.03


@dataclass(frozen=True)
class StagedBScans:
    """A job's B-scans written to its folder a share at a time, by its polls: ``count`` B-scans of ``shape``
    (depth, width) that ``steps`` yields in order as float32 intensities, after any number of ``None`` (work done
    before the first B-scan, such as scanning the volume for its intensity rule). A large volume never holds the
    caller's (Slicer's main) thread for long, and no copy of the whole volume is made; an exception in ``steps``
    ends the job with an ``error`` event."""

    count: int
    shape: tuple[int, int]
    steps: Iterator[np.ndarray | None]


class WorkerUnavailable(ValueError):
    """The worker process cannot be started here (its message is the one sentence the user sees)."""


def worker_python(python: str | None = None) -> str:
    """The Python that runs the worker: ``python``, else this process's own. Inside Slicer ``sys.executable`` is
    PythonSlicer, as Slicer's ``QStandardPaths::findExecutable("PythonSlicer")`` found it, or "" where it found none:
    then PythonSlicer on PATH."""
    candidate = python or sys.executable or "PythonSlicer"
    found = shutil.which(candidate)  # a path: itself if it is an executable file
    if not found:
        raise WorkerUnavailable(f"DiDA cannot start its worker process: Slicer's Python (PythonSlicer) was not "
                                f"found ({candidate} is not an executable file); reinstall Slicer or start it from "
                                "its own folder, then try again")
    return found


def library_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process that imports this DiDALib (``base``, default this process's, with
    ``LIBRARY_ROOT`` first on ``PYTHONPATH``): in Slicer, DiDALib is not on PythonSlicer's own path."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join([str(LIBRARY_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


class WorkerClient:
    """One worker process, started on first use and again after it died.

    ``python`` runs the worker (default ``sys.executable``: inside Slicer that is its PythonSlicer, see
    ``worker_python``); ``home`` is the folder for job folders and the worker's log (default: a new folder in the
    system's temporary folder).
    """

    def __init__(self, python: str | None = None, home: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None):
        self._python = python
        self._home = Path(home) if home else None
        self._env = dict(env) if env is not None else None
        self._process: subprocess.Popen | None = None
        self._log = None
        self._log_start = 0
        self._jobs: list[Job] = []
        self._count = 0
        self.worker_pid: int | None = None  # the worker's own process id (behind a launcher it differs)
        self.starts = 0  # worker processes started so far

    # -- the process -------------------------------------------------------------------------------------------

    @property
    def python(self) -> str:
        """The Python that runs the worker (``worker_python``; ``WorkerUnavailable`` where there is none)."""
        return worker_python(self._python)

    @property
    def home(self) -> Path:
        """The folder of the worker's log and the job folders (made on first use)."""
        if self._home is None:
            self._home = Path(tempfile.mkdtemp(prefix="DiDA-"))
        return self._home

    def _made_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _start(self) -> subprocess.Popen:
        if self.alive:
            return self._process
        self._forget_process()
        python = self.python  # a missing PythonSlicer stops here, in one sentence
        home = self._made_home()
        self._log = open(home / "worker.log", "ab")  # noqa: SIM115 (the worker's stdout and stderr, kept open)
        self._log_start = self._log.tell()
        env = library_environment(self._env)
        env["PYTHONUNBUFFERED"] = "1"
        extra = {}
        if os.name == "nt":  # no console window for the worker (as slicer.util.launchConsoleProcess does)
            info = subprocess.STARTUPINFO()
            info.dwFlags |= subprocess.STARTF_USESHOWWINDOW
            info.wShowWindow = 0
            extra = {"startupinfo": info, "creationflags": subprocess.CREATE_NO_WINDOW}
        self._process = subprocess.Popen([python, "-m", "DiDALib.worker", "--home", str(home)],
                                         stdin=subprocess.PIPE, stdout=self._log, stderr=self._log,
                                         cwd=str(LIBRARY_ROOT), env=env, **extra)
        self.worker_pid = None
        self.starts += 1
        return self._process

    def _send(self, msg: dict) -> None:
        """Write a request; a worker that is gone is reported by the job's next poll, not here."""
        if self._process is None or self._process.stdin is None:
            return
        try:
            self._process.stdin.write((json.dumps(msg) + "\n").encode())
            self._process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def _forget_process(self) -> None:
        if self._process is not None:
            if self._process.stdin is not None:
                try:
                    self._process.stdin.close()
                except OSError:
                    pass
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self, wait: float = 10.0) -> None:
        """End the worker at once (as the system does when memory runs out), waiting at most ``wait`` seconds for the
        system to end it; its job reports that it died."""
        if not self.alive:
            return
        for pid in {self.worker_pid, self._process.pid} - {None}:
            try:
                os.kill(pid, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
            except OSError:
                pass
        try:
            self._process.wait(wait)
        except subprocess.TimeoutExpired:
            pass

    def close(self, timeout: float = CLOSE_WAIT) -> None:
        """Cancel what runs, stop the worker (ending it if it does not stop within ``timeout`` seconds: a batch in
        flight, a hung driver; nothing of it is needed any more) and remove the home folder with every job
        folder in it. It never blocks for much longer than ``timeout``."""
        for job in self._jobs:
            job.cancel()
        if self._process is not None:
            self._send({"op": "shutdown"})
            try:
                self._process.stdin.close()
                self._process.wait(timeout)
            except (OSError, ValueError):
                pass
            except subprocess.TimeoutExpired:
                self.kill(wait=0.1)
        self._forget_process()
        for job in self._jobs:
            job.finished = job.released = True
        self._jobs.clear()
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)

    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def death_message(self, process: subprocess.Popen) -> str:
        """One sentence on a worker that ended without finishing its job."""
        code = process.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else "?"
            how = f"killed by signal {-code}, {name}" + (
                ", as the system does when memory runs out" if name == "SIGKILL" else "")
        else:
            how = f"exit code {code:#x}" if code is not None and code > 255 else f"exit code {code}"
        tail = self._log_tail()
        last = f"; its last message: {tail}" if tail else ""
        return (f"The DiDA worker process stopped unexpectedly ({how}{last}): the B-scans finished before it are "
                "kept, and the next run starts a new worker.")

    def _log_tail(self) -> str:
        try:
            with open(self.home / "worker.log", "rb") as f:
                f.seek(self._log_start)
                lines = [line.strip() for line in f.read()[-4000:].decode(errors="replace").splitlines()]
        except OSError:
            return ""
        lines = [line for line in lines if line and not line.startswith("DiDA worker ")]
        return lines[-1][:300] if lines else ""

    # -- jobs ----------------------------------------------------------------------------------------------------

    def submit(self, request: JobRequest, bscans: np.ndarray | StagedBScans | None = None) -> Job:
        """Send a job; ``bscans`` (n, depth, width), one per index of the request, are written to its folder: an
        array at once, ``StagedBScans`` by the job's polls (the request goes to the worker once all are written;
        the worker starts meanwhile)."""
        self.reap()
        folder = Path(tempfile.mkdtemp(prefix="job-", dir=self._made_home()))
        try:
            staged = None
            if request.indices:
                shape = (bscans.count, *bscans.shape) if isinstance(bscans, StagedBScans) else np.shape(bscans)
                if len(shape) != 3 or shape[0] != len(request.indices):
                    raise ValueError(f"B-scans of shape {shape} do not match the {len(request.indices)} indices")
                if isinstance(bscans, StagedBScans):
                    out = np.lib.format.open_memmap(folder / BSCANS_FILE, mode="w+", dtype=np.float32, shape=shape)
                    staged = (bscans, out)
                else:
                    np.save(folder / BSCANS_FILE, np.ascontiguousarray(bscans, dtype=np.float32))
            self._count += 1
            job_id = f"{os.getpid()}-{self._count}"
            job = Job(self, job_id, folder, self._start(), request.to_message(job_id, folder), staged)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._jobs.append(job)
        return job

    def reap(self) -> None:
        """Remove the folders of released jobs the worker is done with (a cancelled job finishes its batch first)."""
        for job in list(self._jobs):
            if job.released:
                job.poll()
                if job.finished:
                    shutil.rmtree(job.folder, ignore_errors=True)
                    if not job.folder.exists():  # else (a file still open, on Windows) try again later
                        self._jobs.remove(job)


class Job:
    """One job of a worker. ``poll()`` returns its new events in order; the last one is ``done``, ``cancelled`` or
    ``error`` (kind ``died`` when the worker ended without finishing it)."""

    def __init__(self, client: WorkerClient, job_id: str, folder: Path, process: subprocess.Popen,
                 request: dict | None = None, staged: tuple[StagedBScans, np.memmap] | None = None):
        self.client = client
        self.id = job_id
        self.folder = folder
        self._process = process
        self._reader = EventReader(folder / EVENTS_FILE)
        self.finished = False
        self.released = False
        self._staged = staged  # B-scans still to write, and where
        self._written = 0
        self._request = request  # sent at once, or once the staged B-scans are written
        self._early_end: Event | None = None  # the end of a job that ended before it was sent
        if staged is None and request is not None:
            self._send()

    def _send(self) -> None:
        self.client._send(self._request)
        self._request = None

    def _stage(self, seconds: float | None) -> bool:
        """Write staged B-scans for about ``seconds`` (None: all); True once all are written and the job sent."""
        source, out = self._staged
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            while self._written < source.count:
                step = next(source.steps)
                if step is not None:
                    out[self._written] = step
                    self._written += 1
                if deadline is not None and time.monotonic() > deadline:
                    break
        except Exception as exc:  # e.g. a volume with NaN pixels: the job ends with the sentence that says so
            self._staged = self._request = None
            self.finished = True
            self._early_end = Event("error", {"message": str(exc), "kind": type(exc).__name__})
            return False
        if self._written < source.count:
            return False
        out.flush()
        self._staged = None
        del out  # the worker memory-maps the file
        self._send()
        return True

    def poll(self, max_bytes: int | None = READ_BYTES, seconds: float | None = STAGE_SECONDS) -> list[Event]:
        """The job's new events, at most ``max_bytes`` of them (``READ_BYTES``; None: all), after writing its
        staged B-scans for at most about ``seconds`` (None: all); a worker that ended without finishing the job is
        reported once everything it wrote was read."""
        if self.finished:
            end, self._early_end = self._early_end, None
            return [end] if end is not None else []
        if self._staged is not None and not self._stage(seconds):
            return []
        events = self._take(self._reader.read(max_bytes))
        if not self.finished and self._reader.at_end and self._process.poll() is not None:
            events += self._take(self._reader.read(max_bytes))  # what it wrote before it ended
            if not self.finished and self._reader.at_end:
                self.finished = True
                events.append(Event("error", {"message": self.client.death_message(self._process), "kind": DIED}))
        return events

    def _take(self, events: list[Event]) -> list[Event]:
        for i, event in enumerate(events):
            if event.kind == "ready":
                self.client.worker_pid = event.data.get("pid")
            if event.terminal:
                self.finished = True
                return events[: i + 1]
        return events

    def cancel(self) -> None:
        """Ask the worker to stop this job before its next batch (one still being written is never sent)."""
        if self.finished:
            return
        if self._request is not None:  # not sent yet: it ends here
            self._staged = self._request = None
            self.finished = True
            self._early_end = Event("cancelled", {"passes_done": 0, "passes_at_request": 0, "batch_size": 0})
            return
        self.client._send({"op": "cancel", "id": self.id})

    def release(self) -> None:
        """The session needs no more of this job: it is cancelled if it still runs, and its folder is removed once
        the worker is done with it."""
        self.cancel()
        self.released = True
        self.client.reap()
