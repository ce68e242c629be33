"""The ``dida`` command, one module per subcommand: ``explain`` (OCT files), ``package`` (a model package from a
weights file) and ``demo`` (the bundled phantom and model); ``common`` holds what they share. Every bad input
ends with exit code 2 and one line naming the problem."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..engine.core import DiDACancelled
from ..io.volume import OCTReadError
from ..models.spec import ModelPackageError
from . import demo, explain, package
from .common import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_FAILED, UsageError
from .explain import parse_bscans, run_explain

__all__ = ["EXIT_BAD_INPUT", "EXIT_CANCELLED", "EXIT_FAILED", "UsageError", "build_parser", "main", "parse_bscans",
           "run_explain"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dida",
        description="DiDA: which regions of an OCT B-scan speak for (red) and against (blue) each diagnosis.",
    )
    p.add_argument("--version", action="version", version=f"dida {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for command in (explain, package, demo):
        command.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyboardInterrupt, DiDACancelled):
        print("dida: cancelled; no output was written", file=sys.stderr)
        return EXIT_CANCELLED
    except (UsageError, OCTReadError, ModelPackageError, FileExistsError, ValueError, TypeError) as exc:
        print(f"dida: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError as exc:
        print(f"dida: error: out of memory: {exc or 'try --device cpu or a smaller --batch-size'}", file=sys.stderr)
        return EXIT_FAILED
