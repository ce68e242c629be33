"""Stop signals inside a run (``DiDALib.io.signals``): a signal that arrives while Python imports a module (torch
at start-up, a reader's library later) waits until that import is done, so it never leaves a half-imported
module behind (numpy then refuses to load again: "cannot load module more than once per process")."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from DiDALib.io.signals import Interrupted, signals_deferred, stop_signals_raise

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _send_later(signum: int, seconds: float) -> None:
    threading.Timer(seconds, os.kill, (os.getpid(), signum)).start()


def test_a_signal_during_an_import_ends_the_run_after_the_import(tmp_path, monkeypatch):
    (tmp_path / "slow_module_for_dida.py").write_text("import time\ntime.sleep(0.6)\nDONE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    started = time.monotonic()
    with pytest.raises(Interrupted) as caught, stop_signals_raise():
        _send_later(signal.SIGTERM, 0.15)
        import slow_module_for_dida  # noqa: F401 -- interrupted 0.15 s into its 0.6 s
        time.sleep(5)  # the signal, held during the import, ends the run here
    assert caught.value.signum == signal.SIGTERM
    assert sys.modules["slow_module_for_dida"].DONE  # imported whole, not left half-done
    assert 0.5 < time.monotonic() - started < 3
    del sys.modules["slow_module_for_dida"]


def test_a_signal_outside_imports_is_raised_at_once():
    started = time.monotonic()
    with pytest.raises(Interrupted), stop_signals_raise():
        _send_later(signal.SIGINT, 0.1)
        time.sleep(5)
    assert time.monotonic() - started < 2


def test_deferred_signals_reach_the_raising_handler_when_the_block_ends():
    with pytest.raises(Interrupted), stop_signals_raise():
        with signals_deferred():
            _send_later(signal.SIGHUP, 0.05)
            time.sleep(0.3)  # held: the block finishes
            finished = True
        assert finished
        time.sleep(5)
