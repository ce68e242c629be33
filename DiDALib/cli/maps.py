"""``dida explain``'s choices of the maps beyond the paper (``--contrast``, ``--view``); the maps themselves are
written by ``io.run_maps`` (the Slicer module's export writes the same)."""

from __future__ import annotations

from collections.abc import Sequence

from ..io.run_maps import VIEWS, MapChoices
from ..maps.contrast import parse_pairs
from .common import UsageError


def map_choices(contrast: Sequence[str] | None, view: str) -> MapChoices:
    """The choices of ``--contrast`` (repeatable; ``none`` for no contrast) and ``--view`` (comma-separated)."""
    specs = tuple(contrast) if contrast else ("top",)
    if any(s.strip().lower() == "none" for s in specs):
        if len(specs) > 1:
            raise UsageError("--contrast none cannot be combined with other --contrast pairs")
        specs = ()
    views = tuple(v.strip().lower() for v in view.split(",") if v.strip())
    unknown = [v for v in views if v not in VIEWS]
    if not views or unknown:
        raise UsageError(f"--view {view!r}: use one or more of {', '.join(VIEWS)}, separated by commas")
    return MapChoices(specs, views)


def check_pairs(choices: MapChoices, class_names: Sequence[str]) -> None:
    """Fail on a bad ``A:B`` before the long run (``top`` is resolved once scores are known)."""
    try:
        parse_pairs([s for s in choices.contrasts if s.strip().lower() != "top"], class_names)
    except ValueError as exc:
        raise UsageError(f"--contrast: {exc}") from None
