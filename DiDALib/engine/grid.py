"""Grid partitions of an image region: METHOD.md's floor-edge rule, grids shifted by part of a cell, cell boxes and
Mixed Image weights.

A grid is named by a *grid key*: a plain ``int`` n for the paper's aligned n x n grid, or an ``OffsetGrid`` for
the same grid shifted by a fraction of a cell. Every key is an exact partition of the region (every pixel in one
cell); a shifted grid has one more row or column of cells, the two at the ends part cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from numbers import Integral, Rational

import numpy as np

#: The paper's grid set: the 8 odd sizes 7, 9, ..., 21 (1,736 masked images plus the original).
DEFAULT_GRIDS: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)


def _offset(value, what: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (Rational, float, str)):
        raise TypeError(f"{what} {value!r} is not a fraction of a cell, e.g. 1/2")
    f = Fraction(value).limit_denominator(64)
    if not 0 <= f < 1:
        raise ValueError(f"{what} {value!r} must lie in [0, 1): it is a fraction of one cell")
    return f


@dataclass(frozen=True, eq=True)
class OffsetGrid:
    """The n x n grid shifted by ``rows`` of a cell down and ``cols`` of a cell right (fractions in [0, 1), not
    both 0: the aligned grid is the plain int n). Along an axis of length L shifted by o > 0 the interior edges
    are ``floor((i - o) * L / n)`` for i = 1..n, so there are n + 1 cells, the first and last part cells."""

    n: int
    rows: Fraction
    cols: Fraction

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, Integral):
            raise TypeError(f"grid size {self.n!r} is not an integer: grid sizes are whole numbers of cells per side")
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "rows", _offset(self.rows, "row offset"))
        object.__setattr__(self, "cols", _offset(self.cols, "column offset"))
        if self.rows == 0 and self.cols == 0:
            raise ValueError(f"an OffsetGrid needs a non-zero offset: the aligned grid is the plain size {self.n}")

    def __str__(self) -> str:
        return f"{self.n}@{self.rows}_{self.cols}"

    def __repr__(self) -> str:
        return f"OffsetGrid({self.n}, {str(self.rows)!r}, {str(self.cols)!r})"

    # Grid keys sort coarse to fine, a size's aligned grid first, so ints and OffsetGrids share one order.
    def __lt__(self, other):
        return _order(self) < _order(other) if _is_key(other) else NotImplemented

    def __gt__(self, other):
        return _order(self) > _order(other) if _is_key(other) else NotImplemented

    def __le__(self, other):
        return _order(self) <= _order(other) if _is_key(other) else NotImplemented

    def __ge__(self, other):
        return _order(self) >= _order(other) if _is_key(other) else NotImplemented


GridKey = int | OffsetGrid


def _is_key(value) -> bool:
    return isinstance(value, OffsetGrid) or (isinstance(value, Integral) and not isinstance(value, bool))


def _order(key: GridKey) -> tuple[int, Fraction, Fraction]:
    return (key.n, key.rows, key.cols) if isinstance(key, OffsetGrid) else (int(key), Fraction(0), Fraction(0))


def grid(n: int, rows=0, cols=0) -> GridKey:
    """The grid key of the n x n grid shifted by ``rows`` and ``cols`` of a cell: the plain int n when unshifted."""
    if _offset(rows, "row offset") == 0 and _offset(cols, "column offset") == 0:
        if isinstance(n, bool) or not isinstance(n, Integral):
            raise TypeError(f"grid size {n!r} is not an integer: grid sizes are whole numbers of cells per side")
        return int(n)
    return OffsetGrid(n, rows, cols)


def grid_size(key: GridKey) -> int:
    """The n of a grid key (cells per side before any shift)."""
    return key.n if isinstance(key, OffsetGrid) else int(key)


def size_groups(grids: Sequence[GridKey]) -> dict[int, list[GridKey]]:
    """The grids of each size n, sizes coarse to fine, each size's grids in the order given (its shifted grids)."""
    groups: dict[int, list[GridKey]] = {}
    for n in sorted({grid_size(g) for g in grids}):
        groups[n] = [g for g in grids if grid_size(g) == n]
    return groups


def grid_offsets(key: GridKey) -> tuple[Fraction, Fraction]:
    """(row, column) shift of a grid key as fractions of a cell."""
    return (key.rows, key.cols) if isinstance(key, OffsetGrid) else (Fraction(0), Fraction(0))


def passes_per_image(grids: Iterable[GridKey]) -> int:
    """Model passes DiDA makes per image: the original plus one masked image per cell of every grid."""
    return 1 + sum(int(np.prod(grid_shape(g))) for g in grids)


def grid_edges(length: int, n: int, offset=0) -> np.ndarray:
    """Cell edges along one axis: ``floor(i * length / n)`` for i = 0..n (n + 1 integers); shifted by ``offset``
    of a cell, 0 and ``length`` around the interior edges ``floor((i - offset) * length / n)``, i = 1..n."""
    o = _offset(offset, "offset")
    length, n = int(length), int(n)
    if o == 0:
        return (np.arange(n + 1, dtype=np.int64) * length) // n
    p, q = o.numerator, o.denominator
    inner = ((np.arange(1, n + 1, dtype=np.int64) * q - p) * length) // (n * q)
    return np.concatenate([[0], inner, [length]]).astype(np.int64)


def grid_shape(key: GridKey) -> tuple[int, int]:
    """(rows, columns) of cells of a grid key: n, or n + 1 along a shifted axis."""
    n = grid_size(key)
    dy, dx = grid_offsets(key)
    return n + (dy > 0), n + (dx > 0)


def axis_edges(length: int, key: GridKey, axis: int) -> np.ndarray:
    """The cell edges of grid ``key`` along axis 0 (rows) or 1 (columns) of a side of ``length`` pixels."""
    return grid_edges(length, grid_size(key), grid_offsets(key)[axis])


def validate_grids(grids: Iterable[GridKey], height: int, width: int) -> tuple[GridKey, ...]:
    """Check grid keys against an image region and return them sorted coarse to fine.

    Raises ``TypeError`` for a size that is not an integer (or a grid key) and ``ValueError`` for an empty list, a
    repeated grid, or one that would leave a cell without a pixel (a size below 1 or above the region's side).
    """
    if isinstance(grids, str):
        raise TypeError(f"grids {grids!r} is a name: give the grid keys, e.g. DiDALib.schedule_grids({grids!r})")
    if _is_key(grids):
        grids = (grids,)
    keys = list(grids)
    if not keys:
        raise ValueError("grids is empty: give at least one grid size, e.g. grids=(7, 9, 11, 13, 15, 17, 19, 21)")
    for g in keys:
        if not _is_key(g):
            raise TypeError(f"grid size {g!r} is not an integer: grid sizes are whole numbers of cells per side")
    keys = [g if isinstance(g, OffsetGrid) else int(g) for g in keys]
    if len(set(keys)) != len(keys):
        raise ValueError(f"grid sizes {[str(g) for g in keys]} repeat a grid: give each grid once")
    for g in keys:
        n = grid_size(g)
        if n < 1 or n > min(int(height), int(width)):
            raise ValueError(
                f"grid size {n} is outside 1..{min(int(height), int(width))}: an n x n grid needs at least n pixels "
                f"per side and the region is {height} x {width}"
            )
        for axis, length in ((0, height), (1, width)):
            if np.any(np.diff(axis_edges(length, g, axis)) < 1):
                raise ValueError(f"grid {g} leaves a part cell without a pixel on the {height} x {width} region: "
                                 "use a coarser grid or no offset")
    return tuple(sorted(keys))


def cell_index_map(height: int, width: int, key: GridKey) -> np.ndarray:
    """The cell number ``i * columns + j`` of every pixel of a (height, width) region cut by grid ``key``.

    For the aligned n x n grid, cell (i, j) covers rows ``[floor(i*H/n), floor((i+1)*H/n))`` and columns
    ``[floor(j*W/n), floor((j+1)*W/n))``.
    """
    validate_grids((key,), height, width)
    r = axis_edges(height, key, 0)
    c = axis_edges(width, key, 1)
    rows = np.searchsorted(r, np.arange(height), side="right") - 1
    cols = np.searchsorted(c, np.arange(width), side="right") - 1
    return rows[:, None] * (len(c) - 1) + cols[None, :]


def cell_boxes(height: int, width: int, key: GridKey) -> np.ndarray:
    """Boxes ``(row0, row1, col0, col1)`` (end-exclusive) of the cells of grid ``key``, in cell-number order."""
    r = axis_edges(height, key, 0)
    c = axis_edges(width, key, 1)
    i, j = np.divmod(np.arange((len(r) - 1) * (len(c) - 1)), len(c) - 1)
    return np.stack([r[i], r[i + 1], c[j], c[j + 1]], axis=1)


def _size_weights(sizes: np.ndarray) -> np.ndarray:
    span = sizes.max() - sizes.min()
    return np.ones_like(sizes) if span == 0 else 1.0 + 0.5 * (sizes - sizes.min()) / span


def _per_grid(size_weights: np.ndarray, sizes: Sequence[int], grids: Sequence[GridKey]) -> np.ndarray:
    """Weights of distinct sizes spread over the grids: a size's weight is shared equally by its shifted grids."""
    ns = [grid_size(g) for g in grids]
    return np.array([size_weights[list(sizes).index(n)] / ns.count(n) for n in ns], dtype=np.float64)


def default_weights(grids: Sequence[GridKey]) -> np.ndarray:
    """The paper's weighting, finer grids slightly heavier: 1.0 for the coarsest size rising linearly to 1.5 for
    the finest, a size's weight shared by its shifted grids, normalised to sum to 1 (so a Mixed Image stays within
    [0, 1])."""
    grids = list(grids)
    if not grids:
        raise ValueError("grids is empty: default weights need at least one grid size")
    sizes = sorted({grid_size(g) for g in grids})
    w = _per_grid(_size_weights(np.asarray(sizes, dtype=np.float64)), sizes, grids)
    return w / w.sum()


def check_weights(weights: Sequence[float] | np.ndarray | None, grids: Sequence[GridKey]) -> np.ndarray:
    """Weights for ``grids`` as float64, normalised to sum to 1 so that a Mixed Image stays within [0, 1] (only
    their ratios matter); the default weighting for ``None``. Give one weight per grid, or one per grid size (coarse
    to fine), which its shifted grids then share."""
    if weights is None:
        return default_weights(grids)
    grids = list(grids)
    sizes = sorted({grid_size(g) for g in grids})
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] not in (len(grids), len(sizes)):
        raise ValueError(
            f"weights has {w.size} value(s) in shape {w.shape} but there are {len(sizes)} grid sizes {tuple(sizes)}: "
            "give one weight per grid size"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights {w.tolist()} must be finite, non-negative and not all zero")
    if w.shape[0] != len(grids):
        w = _per_grid(w, sizes, grids)
    return w / w.sum()
