"""The DiDA worker process: runs the jobs the Slicer session sends, one at a time, and keeps the model package (and
the engine with the batch size it settled on) loaded between them, so a second job on the same model starts at once.

A thread reads the requests on stdin, so that a cancel reaches the job in flight (the engine checks it before
every batch). Every line is validated first (``requests``): a bad one is answered with an ``error`` event (where
its job folder is valid) or a line on stderr, and the worker goes on serving. When stdin ends without a
``shutdown`` request the session that started the worker is gone: the job in flight is cancelled, the worker
removes what its manifest lists (the files of the jobs it served, its log; the folders once empty: nothing it did
not write or was not handed) and ends. torch is imported with the first job, not at start, so ``--help`` and a
worker that is never used cost nothing.
"""

from __future__ import annotations

import json
import os
import queue
import stat
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

from ..engine.schedule import grid_json, grid_key
from ..io.signals import Interrupted, stop_signals_raise
from .protocol import (
    BSCANS_FILE,
    DEVICE_ERROR,
    EVENTS_FILE,
    EventWriter,
    JobRequest,
    ModelRequest,
    encode_array,
    encode_result,
)
from .requests import MAX_LINE, BadRequest, Manifest, Request, parse_line

#: Progress events at most this often (seconds), besides one whenever a B-scan finishes.
PROGRESS_INTERVAL = 0.1


class DeviceUnavailable(ValueError):
    """The job asks for a device this computer does not have."""


class Worker:
    """Serves requests from ``stdin`` (lines of bytes or text) until ``shutdown`` or the end of ``stdin``; logs to
    ``log``; accepts job folders only inside ``home``."""

    def __init__(self, stdin: BinaryIO | TextIO, log: TextIO = sys.stderr, home: str | os.PathLike | None = None):
        self._stdin = stdin
        self._log = log
        self.home = Path(os.path.abspath(home)) if home else None
        self._requests: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._cancelled: set[str] = set()
        self._current: tuple[str, threading.Event] | None = None
        self._passes = 0  # model passes of the job in flight, as of its last batch
        self._passes_at_cancel: int | None = None
        self._closing = False  # a shutdown request came
        self._orphaned = False  # stdin ended without one: the session is gone
        self._manifest = Manifest()
        self._package_key: tuple | None = None
        self._package = None
        self._explainer = None
        self._explainer_key: str | None = None

    # -- requests ------------------------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        print(f"DiDA worker: {text}", file=self._log, flush=True)

    def serve(self) -> int:
        self._say(f"{os.getpid()} started (Python {sys.version.split()[0]})")
        threading.Thread(target=self._read_requests, name="DiDA requests", daemon=True).start()
        code = 0
        with stop_signals_raise():  # a real Ctrl-C is Interrupted; a package's own KeyboardInterrupt is its failure
            try:
                while True:
                    item = self._requests.get()
                    if item is None or (isinstance(item, Request) and item.op == "shutdown"):
                        break
                    try:
                        if isinstance(item, BadRequest):
                            self._refuse(item)
                        else:
                            self._run_job(item)
                    except Exception as exc:  # noqa: BLE001 -- the worker keeps serving whatever one request does
                        self._say(f"a request failed ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})")
            except Interrupted as exc:
                self._say(f"stopped by {exc}")
                code = 128 + int(exc.signum)
        if self._orphaned and self.home is not None:
            self._manifest.add_log(self.home, self._log)
            self._manifest.remove(self.home, self._log)
        return code

    def _lines(self):
        """The lines of stdin, each at most ``MAX_LINE`` long (a longer one is reported and skipped whole)."""
        while True:
            line = self._stdin.readline(MAX_LINE + 1)
            if not line:
                return
            if len(line) > MAX_LINE and line[-1:] not in (b"\n", "\n"):
                while (rest := self._stdin.readline(MAX_LINE)) and rest[-1:] not in (b"\n", "\n"):
                    pass
                yield BadRequest(f"a request line longer than {MAX_LINE >> 20} MB was ignored")
                continue
            yield line

    def _read_requests(self) -> None:
        try:
            for line in self._lines():
                try:
                    request = line if isinstance(line, BadRequest) else parse_line(line, self.home)
                except BadRequest as exc:
                    request = exc
                except Exception as exc:  # noqa: BLE001 -- no line may stop the reader
                    request = BadRequest(f"a request that cannot be read ({type(exc).__name__})")
                if request is None:
                    continue
                if isinstance(request, Request) and request.op == "cancel":
                    self._cancel(request.id)
                    continue
                if isinstance(request, Request) and request.op == "shutdown":
                    self._closing = True
                self._requests.put(request)
        except Exception as exc:  # noqa: BLE001 -- stdin itself failed: the session is as good as gone
            self._say(f"stdin cannot be read ({type(exc).__name__}: {exc})")
        finally:
            with self._lock:
                if not self._closing:
                    self._orphaned = True
                    if self._current is not None:
                        self._cancel_locked(self._current[0])
            self._requests.put(None)

    def _refuse(self, bad: BadRequest) -> None:
        """Answer a bad request: an ``error`` event in its job folder where that folder is valid, else stderr."""
        if bad.folder is not None:
            try:
                events = EventWriter(bad.folder / EVENTS_FILE)
            except OSError as exc:
                self._say(f"a request was ignored: {bad} (and its error event cannot be written: {exc.strerror})")
                return
            self._manifest.add_job(bad.folder, events.fileno())
            events.write("error", message=str(bad), kind="request")
            events.close()
            return
        self._say(f"a request was ignored: {bad}")

    def _cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancel_locked(job_id)

    def _cancel_locked(self, job_id: str) -> None:
        self._cancelled.add(job_id)
        if self._current is not None and self._current[0] == job_id and not self._current[1].is_set():
            self._passes_at_cancel = self._passes
            self._current[1].set()

    # -- jobs ----------------------------------------------------------------------------------------------------

    def _run_job(self, request: Request) -> None:
        job_id, folder, msg = request.id, request.folder, request.message
        cancel = threading.Event()
        with self._lock:
            self._current, self._passes, self._passes_at_cancel = (job_id, cancel), 0, None
            if job_id in self._cancelled or self._orphaned:
                self._passes_at_cancel = 0
                cancel.set()
        try:
            events = EventWriter(folder / EVENTS_FILE)
        except OSError as exc:  # the folder is gone, or someone put an events file there: nobody waits for it
            self._say(f"job {job_id} skipped ({exc.strerror or exc})")
            with self._lock:
                self._current = None
            return
        self._manifest.add_job(folder, events.fileno())
        try:
            self._job(msg, folder, events, cancel)
        except DeviceUnavailable as exc:
            events.write("error", message=str(exc), kind=DEVICE_ERROR)
        except Exception as exc:  # reported to the session; an unexpected one's traceback goes to the log too
            if not isinstance(exc, ValueError):
                traceback.print_exc(file=self._log)
                self._log.flush()
            events.write("error", message=_message(exc), kind=type(exc).__name__)
        finally:
            events.close()
            with self._lock:
                self._current = None
                self._cancelled.discard(job_id)

    def _job(self, msg: dict, folder: Path, events: EventWriter, cancel: threading.Event) -> None:
        request = JobRequest.from_message(msg)
        started = time.perf_counter()
        from ..engine.core import DiDACancelled  # the first job imports torch

        try:
            self._explain(request, folder, events, cancel, started)
        except DiDACancelled as exc:
            engine = self._explainer.engine if self._explainer is not None else None
            events.write("cancelled", completed=exc.completed, passes_done=self._passes,
                         passes_at_request=self._passes_at_cancel or 0,
                         batch_size=engine.batch_size if engine is not None else None)
            return
        events.write("done")

    def _explain(self, request: JobRequest, folder: Path, events: EventWriter, cancel: threading.Event,
                 started: float) -> None:
        from ..engine.core import DiDACancelled

        package, warm = self._package_for(request.model)
        explainer = self._explainer_for(package, request.settings)
        bscans = _map_bscans(folder / BSCANS_FILE) if request.indices else None
        try:
            if bscans is not None and (bscans.ndim != 3 or len(bscans) != len(request.indices)):
                raise ValueError(f"{folder / BSCANS_FILE} holds {bscans.shape}, not {len(request.indices)} B-scans")
            events.write("ready", **self._ready(package, explainer, bscans, warm, time.perf_counter() - started))
            if cancel.is_set():
                raise DiDACancelled(0)
            if bscans is None:
                return
            indices = request.indices
            last = {"time": 0.0, "done": -1, "runtime": False}

            def progress(p) -> None:
                self._passes = p.passes_done
                choice = explainer.runtime_choice
                if not last["runtime"] and choice is not None:  # once per job, as soon as the first B-scan chose it
                    last["runtime"] = True
                    events.write("runtime", **choice.to_json(), say=choice.say)
                now = time.monotonic()
                if p.images_done != last["done"] or now - last["time"] >= PROGRESS_INTERVAL:
                    last.update(time=now, done=p.images_done)
                    events.write("progress", images_done=p.images_done, images_total=p.images_total,
                                 passes_done=p.passes_done, passes_per_image=p.passes_per_image)

            def on_grid(i: int, n: int, deltas: np.ndarray, base: np.ndarray) -> None:
                events.write("grid", index=indices[i], n=grid_json(n), deltas=encode_array(deltas), base=encode_array(base),
                             score=explainer.engine.score)

            for result in explainer.explain(bscans, progress=progress, cancel=cancel,
                                            on_grid=on_grid if request.preview else None):
                events.write("result", **encode_result(result, indices[result.index]))
        finally:
            bscans = None  # the memory map is closed before the session may remove the folder

    def _ready(self, package, explainer, bscans, warm: bool, seconds: float) -> dict:
        from ..engine.devices import describe_device
        from ..engine.estimators import describe
        from ..engine.grid import check_weights
        from ..models.preprocess import input_region

        spec, s = package.spec, explainer.settings
        grids = sorted(s.grids)
        return {"model": spec.name, "path": str(package.path), "demo": bool(spec.demo), "classes": list(spec.classes),
                "score": explainer.engine.score, "device": str(explainer.engine.device),
                "device_name": describe_device(explainer.engine.device), "grids": [grid_json(g) for g in grids],
                "weights": [float(w) for w in check_weights(s.weights, grids)], "fill": s.fill, "input_size": list(spec.input_size),
                "region": list(input_region(bscans.shape[1:], spec)) if bscans is not None else None,
                "warm": warm, "pid": os.getpid(), "seconds": round(seconds, 4),
                **describe(grids, s.engine_estimator())}

    # -- what stays loaded ---------------------------------------------------------------------------------------

    def _package_for(self, model: ModelRequest):
        """The loaded package (``warm``: kept from an earlier job, its files unchanged) or a freshly loaded one. One
        package is kept: a new one replaces it, so memory (and GPU memory) holds one model."""
        path = Path(model.path).resolve()
        key = (str(path), model.trust_code, _stamp(path))
        if key == self._package_key:
            return self._package, True
        self._package = self._explainer = self._package_key = None
        from ..models.package import load_model_package

        # A package's own code runs only on the user's explicit opt-in (``trust_code``, load_model_package's name for
        # it); without it such a package is refused with the file named.
        self._package = load_model_package(path, **({"trust_code": True} if model.trust_code else {}))
        self._package_key = key
        return self._package, False

    def _explainer_for(self, package, settings: dict):
        """The explainer (engine) of the last job when the package and the settings are the same, else a new one."""
        key = json.dumps(settings, sort_keys=True, default=str)
        if self._explainer is not None and self._explainer.package is package and key == self._explainer_key:
            return self._explainer
        from ..engine.devices import resolve_device
        from ..pipeline import ExplainSettings, VolumeExplainer

        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
        if "grids" in fields:  # JSON gives a shifted grid as its text
            fields["grids"] = tuple(grid_key(g) for g in fields["grids"])
        s = ExplainSettings(**fields)
        try:
            resolve_device(s.device)
        except ValueError as exc:
            raise DeviceUnavailable(str(exc)) from None
        self._explainer = None  # the old engine goes first
        self._explainer, self._explainer_key = VolumeExplainer(package, s), key
        return self._explainer


def _map_bscans(path: Path) -> np.ndarray:
    """The job's B-scans, memory-mapped copy-on-write (never written): the session's regular file itself, not what a
    symbolic link put in its place points to (on Linux the very file opened without following one is mapped)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                 | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file: the session writes the B-scans there itself")
        name = f"/proc/self/fd/{fd}" if sys.platform.startswith("linux") else str(path)
        return np.load(name, mmap_mode="c", allow_pickle=False)
    finally:
        os.close(fd)  # the map holds the file open itself


def _stamp(path: Path) -> tuple:
    """Size and modification time of every file of a package folder: a changed file means a reload."""
    root = path if path.is_dir() else path.parent
    try:
        return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(root) if e.is_file()))
    except OSError:
        return ()


def _message(exc: BaseException) -> str:
    """One line for the session: the message alone where it already says what is wrong, else with its type; of a
    message with a traceback in it (TorchScript's), its last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1:
        return lines[-1].removeprefix("builtins.")
    if isinstance(exc, MemoryError):
        return f"out of memory: {exc}" if str(exc) else "out of memory"
    if isinstance(exc, (ValueError, FileNotFoundError)) and str(exc):
        return str(exc)
    if isinstance(exc, ImportError):
        return f"the worker's Python lacks a package DiDA needs ({exc}): install DiDA's packages and run again"
    return f"{type(exc).__name__}: {exc}"
