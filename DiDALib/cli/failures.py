"""How a ``dida`` command ends when it cannot finish: one line on stderr and an exit code, never a traceback.

Bad input of any kind (an option, a file, a model package, an output folder, a run too large for the machine, a
model that fails) is exit code 2; a stop signal is 128 + its number (130 for Ctrl-C); a run that lost its output
folder to another program, ran out of memory or met an unexpected error is 1. The staging of outputs
(``io.output_dir``) makes "nothing was written" true for all of them.
"""

from __future__ import annotations

import errno
import re
import signal
import sys

from ..io.output_dir import OutputTaken
from ..io.signals import Interrupted
from .common import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_FAILED


#: Terminal control sequences (colour, bold) that libraries put in their messages (torch.load's): never printed.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


def _line(text: object) -> str:
    return " ".join(_ESCAPES.sub("", str(text)).split())


def _cancelled(exc: BaseException) -> bool:
    core = sys.modules.get("DiDALib.engine.core")  # DiDACancelled exists only once the engine was imported
    return isinstance(exc, KeyboardInterrupt) or (core is not None and isinstance(exc, core.DiDACancelled))


def _os_error(exc: OSError) -> str:
    where = exc.filename or "the output folder"
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        fix = "the disk is full: free some space, or choose a folder on another disk with --out"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "this user cannot write there: choose a folder you can write to with --out"
    else:
        fix = "check the disk and the folder, or choose another --out"
    return f"cannot write {where} ({exc.strerror or _line(exc)}): {fix}; nothing was written"


def report(exc: BaseException) -> int:
    """Print the one line for ``exc`` to stderr and return the exit code."""
    if _cancelled(exc):
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        how = "cancelled" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        written = getattr(exc, "written", None)
        tail = f"the output was complete before it stopped: {written}" if written else "no output was written"
        print(f"dida: {how}; {tail}", file=sys.stderr)
        return EXIT_CANCELLED if signum == signal.SIGINT else 128 + int(signum)
    if isinstance(exc, OutputTaken):
        print(f"dida: error: {_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(exc, MemoryError):
        print(f"dida: error: out of memory: {_line(exc) or 'try --device cpu or a smaller --batch-size'}",
              file=sys.stderr)
        return EXIT_FAILED
    core = sys.modules.get("DiDALib.engine.core")
    if isinstance(exc, (ValueError, TypeError, FileExistsError)) or (core and isinstance(exc, core.ModelCallError)):
        print(f"dida: error: {_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(exc, OSError):
        print(f"dida: error: {_os_error(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"dida: unexpected error ({type(exc).__name__}: {_line(exc)[:300]}); nothing was written. Please report "
          "it with the command you ran", file=sys.stderr)
    return EXIT_FAILED
