"""The ``dida`` command, one module per subcommand: ``explain`` (OCT files), ``package`` (a model package from a
weights file), ``demo`` (the bundled phantom and model) and ``view`` (the interactive page of an existing result);
``common`` holds what they share and ``failures`` how each kind of failure ends (exit code 2 and one line naming
the problem and the fix for every bad input; never a traceback).

This module imports nothing heavy: torch and the readers load inside ``main``, where a Ctrl-C (or SIGTERM,
SIGHUP) during start-up ends as cleanly as one during the run.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import import_module

from ..io.signals import signals_deferred, stop_signals_raise
from .common import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_FAILED, OneLineParser, UsageError

__all__ = ["EXIT_BAD_INPUT", "EXIT_CANCELLED", "EXIT_FAILED", "UsageError", "build_parser", "main", "parse_bscans",
           "run_explain"]
_LAZY = {"parse_bscans": "explain", "run_explain": "explain"}
_COMMANDS = ("explain", "package", "demo", "view", "audit")


def __getattr__(name: str):
    """The subcommand modules and their public functions, imported on first use."""
    if name in _COMMANDS:
        return import_module(f".{name}", __name__)
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = OneLineParser(
        prog="dida",
        description="DiDA: which regions of an OCT B-scan speak for (red) and against (blue) each diagnosis.",
    )
    p.add_argument("--version", action="version", version=f"dida {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name in _COMMANDS:
        import_module(f".{name}", __name__).add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    with stop_signals_raise():
        try:
            # The subcommands import torch: a stop signal during that waits until it is done (an exception inside
            # torch's or numpy's start-up can leave them broken), then ends the run here.
            with signals_deferred():
                parser = build_parser()
            args = parser.parse_args(argv)
            return args.func(args)
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: BLE001 -- each kind is reported in one line, see failures
            from .failures import report

            return report(exc)
