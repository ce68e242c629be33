"""What every ``dida`` command shares: exit codes, the usage error, number lists and the report of what was
written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_CANCELLED = 130


class UsageError(ValueError):
    """A bad command-line value."""


#: Devices ``--device`` names: ``cuda`` may carry an index (``cuda:1``).
DEVICES = ("auto", "cpu", "cuda", "mps")


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser with its errors in one line (the problem and where the help is, not the whole usage), and
    an option given an empty value refused: an empty ``--model`` or ``--classes`` is an unset shell variable, not a
    choice, and must not quietly mean the default."""

    def error(self, message: str):
        raise UsageError(f"{' '.join(message.split())}; see {self.prog} --help")  # reported as any bad input

    def _get_value(self, action, arg_string):
        # Every value given on the command line passes here before its type is applied (argparse's own hook).
        subcommand = isinstance(action, argparse._SubParsersAction)  # it hands its values on to the subcommand
        if isinstance(arg_string, str) and not arg_string.strip() and not subcommand \
                and arg_string is not action.default:  # an empty default ("no description") is no unset variable
            name = "/".join(action.option_strings) or action.dest
            optional = action.option_strings and not action.required
            raise argparse.ArgumentError(None, f"{name} is empty (an unset variable?): give a value"
                                         + (f", or leave {name} out for its default" if optional else ""))
        return super()._get_value(action, arg_string)


def device_option(text: str) -> str:
    """``--device``: auto, cpu, cuda, cuda:N or mps (checked here, where it enters, before torch sees it)."""
    name, _, index = text.strip().lower().partition(":")
    if name not in DEVICES or (index and (name != "cuda" or not index.isdigit())):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device DiDA runs on: use auto, cpu, cuda (or cuda:N "
                                         "for the N-th GPU) or mps")
    return text.strip().lower()


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise UsageError(f"{what} {text!r} must be comma-separated whole numbers, e.g. 7,9,11") from None
    if not values:
        raise UsageError(f"{what} is empty")
    return values


def max_memory(args) -> int | None:
    """``--max-memory`` in bytes (None: the memory available now)."""
    from ..footprint import parse_size

    if getattr(args, "max_memory", None) is None:
        return None
    try:
        return parse_size(args.max_memory)
    except ValueError:
        raise UsageError(f"--max-memory {args.max_memory!r} is not a size: use e.g. 8G, 500M or 1.5GB") from None


def progress_bar(total: int, quiet: bool, desc: str):
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc=desc, dynamic_ncols=True, mininterval=0.5, file=sys.stderr)


def print_written(out_dir: Path, summary: dict) -> None:
    out = Path(out_dir).resolve()
    files = sorted(p for p in out.rglob("*") if p.is_file())
    runtime = f" ({summary['runtime']})" if summary.get("runtime") else ""
    print(f"DiDA explained {len(summary['bscans'])} B-scan(s) in {summary['seconds']} s on {summary['device']}"
          f"{runtime}; "
          f"classes shown: {', '.join(summary['classes_shown'])}")
    choice = summary.get("score_choice")
    print(f"score: {summary['score']}" + (f" ({choice})" if choice else ""))
    errors = summary.get("shapley", {}).get("stderr")
    if errors:  # how exact the sampled values are: each one's own standard error is in dida_results.npz
        print(f"Shapley values ({summary['shapley']['passes_per_image']} passes per B-scan): standard errors "
              f"{errors['median']:.2g} (median) to {errors['largest']:.2g}, largest |value| "
              f"{errors['largest_abs_value']:.2g}")
    print(f"wrote {len(files)} file(s) to {out}:")
    for p in files:
        print(f"  {p.relative_to(out)}")


def print_open(out_dir: Path) -> None:
    """Where to look first: a DiDA View figure (the middle one) and the interactive page."""
    out = Path(out_dir)
    figs = sorted((out / "figures").glob("dida_view_*.png"))
    if figs:
        print(f"open a DiDA View figure, e.g. {figs[len(figs) // 2].resolve()}")
    page = out / "report.html"
    if page.is_file():
        print(f"{'or ' if figs else 'open '}the interactive DiDA View in a web browser: {page.resolve()}")


def warn(message: str) -> None:
    """A result that may mislead (saturated probabilities, a demonstration model on a real scan), on stderr."""
    print(f"dida: warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    """A remark that is not an error (debris of a killed run removed, a batch size capped), on stderr."""
    print(f"dida: note: {message}", file=sys.stderr)
