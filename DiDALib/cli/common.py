"""What every ``dida`` command shares: exit codes, the usage error, number lists and the report of what was
written."""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_CANCELLED = 130


class UsageError(ValueError):
    """A bad command-line value."""


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise UsageError(f"{what} {text!r} must be comma-separated whole numbers, e.g. 7,9,11") from None
    if not values:
        raise UsageError(f"{what} is empty")
    return values


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
