"""Long work in a background thread, its results handed to the main thread through a queue.

The worker never touches the scene or Qt: it only emits events. The main thread drains them with ``poll`` (in
Slicer from a ``QTimer``, in tests and scripts with ``wait``), which is where MRML changes happen.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

Emit = Callable[[str, Any], None]

#: The last event of every job: ``("done", return value)``, ``("cancelled", exception)`` or ``("error", exception)``.
TERMINAL = ("done", "cancelled", "error")


class BackgroundJob:
    """Runs ``work(emit, cancel)`` in a daemon thread. ``emit(kind, payload)`` queues an event; ``cancel`` is a
    ``threading.Event`` the work checks. ``cancelled_types`` are exceptions that mean "stopped on request"."""

    def __init__(self, work: Callable[[Emit, threading.Event], Any], cancelled_types: tuple[type, ...] = (),
                 name: str = "DiDA"):
        self._work = work
        self._cancelled_types = cancelled_types
        self._events: queue.Queue = queue.Queue()
        self.cancel_event = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.finished = False  # set by poll once the terminal event has been handed over

    def start(self) -> BackgroundJob:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            value = self._work(self._emit, self.cancel_event)
        except self._cancelled_types as exc:
            self._emit("cancelled", exc)
        except BaseException as exc:  # handed to the main thread, which reports it
            self._emit("error", exc)
        else:
            self._emit("done", value)

    def _emit(self, kind: str, payload: Any = None) -> None:
        self._events.put((kind, payload))

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self.cancel_event.set()

    def poll(self) -> list[tuple[str, Any]]:
        """The events emitted since the last poll, oldest first."""
        out = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            out.append(event)
            if event[0] in TERMINAL:
                self.finished = True
                break
        return out

    def wait(self, handle: Callable[[str, Any], None], timeout: float | None = None, interval: float = 0.02) -> None:
        """Hand every event to ``handle`` until the job ends (a blocking loop for scripts and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            for kind, payload in self.poll():
                handle(kind, payload)
            if not self.finished:
                if deadline is not None and time.monotonic() > deadline:
                    self.cancel()
                    raise TimeoutError(f"the background job did not finish within {timeout} s; it was cancelled")
                time.sleep(interval)
