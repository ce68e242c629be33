"""Grid schedules: the named sets of grids a run can use, grids at several offsets, and their text form.

A schedule is a tuple of grid keys (``grid.py``): ``PAPER_GRIDS`` are the paper's eight aligned grids, whose Mixed
Image is the method's picture; ``EVIDENCE_GRIDS`` are fewer sizes, each at 2 x 2 half-cell offsets, so that cells
overlap, which is what DiDA's evidence map (``maps/evidence.py``) reads best (chosen on the faithfulness benchmark,
``Testing/benchmarks/bench_faithfulness.py``; docs/faithfulness.md). Every schedule is still multi-scale, every
class still comes from one pass per masked image, and every grid is still an exact partition.

Text form (``--grids`` on the command line, the Slicer parameter node): a schedule name, or comma-separated items
``N`` (the aligned n x n grid), ``N:K`` (the n x n grid at K x K offsets i/K of a cell, K * K grids) and ``N@R_C``
(one grid shifted by fractions R and C of a cell, e.g. ``9@1/2_0``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction

from .grid import DEFAULT_GRIDS, GridKey, OffsetGrid, grid, grid_size

#: The paper's grids: the 8 odd sizes 7, 9, ..., 21, aligned (1,737 passes per B-scan).
PAPER_GRIDS: tuple[int, ...] = DEFAULT_GRIDS


def offset_grids(sizes: Iterable[int], k: int = 2) -> tuple[GridKey, ...]:
    """Every size at k x k offsets (i/k, j/k of a cell), the aligned grid among them: k * k grids per size."""
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"offsets per axis {k!r} must be a whole number >= 1")
    k = int(k)
    return tuple(sorted(grid(n, Fraction(i, k), Fraction(j, k)) for n in sizes for i in range(k) for j in range(k)))


#: DiDA's evidence schedule: sizes 7, 11, 15 at 2 x 2 half-cell offsets, 12 overlapping grids, 1,716 passes per
#: image (the paper's grids take 1,737). Chosen among 8 schedules of 996-1,716 passes and 4 readouts on the
#: faithfulness benchmark's selection phantoms (seed 4099), never on the phantoms it reports (docs/faithfulness.md).
EVIDENCE_GRIDS: tuple[GridKey, ...] = offset_grids((7, 11, 15), 2)

#: Schedules by name, for ``--grids NAME`` and the Slicer module.
SCHEDULES: dict[str, tuple[GridKey, ...]] = {"paper": PAPER_GRIDS, "evidence": EVIDENCE_GRIDS}


def schedule_grids(name: str) -> tuple[GridKey, ...]:
    """The grids of a named schedule."""
    try:
        return SCHEDULES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"grid schedule {name!r} is not known: use one of {', '.join(SCHEDULES)}") from None


def _fraction(text: str, item: str) -> Fraction:
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"grid {item!r}: {text!r} is not a fraction of a cell such as 1/2") from None


def parse_grids(text: str) -> tuple[GridKey, ...]:
    """Grid keys from their text form (a schedule name, or items ``N``, ``N:K``, ``N@R_C``), sorted coarse to fine.
    Raises ``ValueError`` with the reason for text that is none of these, or a grid given twice."""
    t = text.strip().lower()
    if t in SCHEDULES:
        return SCHEDULES[t]
    keys: list[GridKey] = []
    for item in (p.strip() for p in t.replace(" ", "").split(",")):
        if not item:
            continue
        try:
            if ":" in item:
                n, k = item.split(":", 1)
                keys.extend(offset_grids((int(n),), int(k)))
            elif "@" in item:
                n, shift = item.split("@", 1)
                rows, cols = shift.split("_", 1)
                keys.append(grid(int(n), _fraction(rows, item), _fraction(cols, item)))
            else:
                keys.append(grid(int(item)))
        except (ValueError, TypeError) as exc:
            if "grid" in str(exc) or "offset" in str(exc):
                raise ValueError(str(exc)) from None
            raise ValueError(
                f"grids {text!r}: {item!r} is not a grid: use a schedule name ({', '.join(SCHEDULES)}) or whole numbers "
                "such as 7,9,11 (N:K for K x K offsets, N@R_C for one shifted grid)") from None
    if not keys:
        raise ValueError(f"grids {text!r} is empty: give a schedule name ({', '.join(SCHEDULES)}) or grid sizes")
    if len(set(keys)) != len(keys):
        raise ValueError(f"grids {text!r} repeat a grid: give each grid once")
    return tuple(sorted(keys))


def grid_key(value) -> GridKey:
    """One grid key from its plain form: an int ``n``, its text (``"7"``), a shifted grid's text (``"7@1/2_0"``, as
    ``str(OffsetGrid)`` writes it) or a key itself; the form grids take in JSON (the worker's events, ``run.json``)."""
    if isinstance(value, OffsetGrid) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    keys = parse_grids(str(value)) if isinstance(value, str) and ":" not in value else ()
    if len(keys) != 1:
        raise ValueError(f"{value!r} is not one grid: use a size such as 7 or a shifted grid such as 7@1/2_0")
    return keys[0]


def grid_json(key: GridKey) -> int | str:
    """A grid key as JSON holds it: an aligned grid as its size, a shifted one as its text (``grid_key`` reads
    both back)."""
    return key if isinstance(key, int) else str(key)


def format_grids(grids: Sequence[GridKey]) -> str:
    """The text form of grid keys that ``parse_grids`` reads back: a schedule's name when they are one, otherwise
    ``N``, ``N:K`` for a size at all K x K offsets, and ``N@R_C`` for single shifted grids."""
    keys = tuple(sorted(grids))
    for name, value in SCHEDULES.items():
        if keys == value:
            return name
    parts: list[str] = []
    for n in sorted({grid_size(g) for g in keys}):
        mine = [g for g in keys if grid_size(g) == n]
        k = round(len(mine) ** 0.5)
        if len(mine) > 1 and set(mine) == set(offset_grids((n,), k)):
            parts.append(f"{n}:{k}")
        else:
            parts.extend(str(g) for g in mine)
    return ",".join(parts)


def is_aligned(grids: Sequence[GridKey]) -> bool:
    """True when every grid is a plain aligned n x n grid (the paper's kind, readable by older DiDA versions)."""
    return not any(isinstance(g, OffsetGrid) for g in grids)
