"""Signals during a run: SIGTERM, SIGHUP and SIGINT become an ``Interrupted`` exception, so that the code writing
outputs unwinds and removes what it staged, and the few steps that must not be cut in half (the final move of an
output folder, the clean-up itself) defer them until they are done.

Python turns only SIGINT into an exception by default; SIGTERM (``kill``, a batch system's time limit) and SIGHUP
(a closed terminal or SSH session) end the process at once, without running any clean-up.

A signal that arrives while Python imports a module is raised only once that import is done: an exception in the
middle of one leaves it half-imported, and a C extension such as numpy's then refuses to load again ("cannot load
module more than once per process"), so a Ctrl-C at start-up (torch importing) became an unexpected error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

#: The signals a run treats as "stop now, clean up" (SIGHUP does not exist on Windows).
STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived (a KeyboardInterrupt, so ``except Exception`` never swallows it)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


#: How often a signal held during an import is tried again (seconds).
IMPORT_RETRY = 0.05


def _importing(frame) -> bool:
    """Whether ``frame`` (where the signal interrupted) runs inside an import."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` (main thread only; elsewhere a no-op);
    one that arrives during an import is held and raised once the import is done (an alarm timer looks again
    every ``IMPORT_RETRY`` seconds). The previous handlers are restored afterwards."""
    if not _main_thread():
        yield
        return
    held: list[int] = []
    alarm = getattr(signal, "SIGALRM", None)

    def on_stop(signum, frame):
        if alarm is not None and _importing(frame):
            held.append(signum)
            signal.setitimer(signal.ITIMER_REAL, IMPORT_RETRY)
            return
        raise Interrupted(signum)

    on_stop.raises_interrupted = True  # see interrupts_are_marked

    def on_alarm(_signum, frame):
        if held:
            on_stop(held.pop(0), frame)

    previous = {s: signal.signal(s, on_stop) for s in STOP_SIGNALS}
    if alarm is not None:
        previous[alarm] = signal.signal(alarm, on_alarm)
    try:
        yield
    finally:
        if alarm is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held:  # the block ended inside an import's hold: the signal still ends the process its own way
            _redeliver(held, previous)


def interrupts_are_marked() -> bool:
    """Whether a Ctrl-C now raises ``Interrupted`` (``stop_signals_raise`` is in force): then a plain
    ``KeyboardInterrupt`` can only come from code that raised it, not from the user."""
    handler = signal.getsignal(signal.SIGINT)
    return bool(getattr(handler, "raises_interrupted", False))


def _redeliver(signums: list[int], handlers: dict) -> None:
    """Deliver held signals, once each in order of arrival, to the handlers that were in place before."""
    for signum in dict.fromkeys(signums):
        handler = handlers[signum]
        if callable(handler):
            handler(signum, None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), signum)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Stop signals that arrive within the block are held and delivered when it ends, to whatever handler was in
    place (so a commit or a clean-up is never cut in half). A deferred signal whose handler was the default
    action is sent again, so the process still ends the way it would have."""
    if not _main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: held.append(signum)) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _redeliver(held, previous)
