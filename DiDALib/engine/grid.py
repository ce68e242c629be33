"""Grid partitions of an image region: METHOD.md's floor-edge rule, cell boxes and Mixed Image weights."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Integral

import numpy as np

#: The paper's grid set: the 8 odd sizes 7, 9, ..., 21 (1,736 masked images plus the original).
DEFAULT_GRIDS: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)


def passes_per_image(grids: Iterable[int]) -> int:
    """Model passes DiDA makes per image: the original plus one masked image per cell of every grid."""
    return 1 + sum(int(n) ** 2 for n in grids)


def grid_edges(length: int, n: int) -> np.ndarray:
    """Cell edges ``floor(i * length / n)`` for i = 0..n along one axis (n + 1 integers)."""
    return (np.arange(n + 1, dtype=np.int64) * int(length)) // int(n)


def validate_grids(grids: Iterable[int], height: int, width: int) -> tuple[int, ...]:
    """Check grid sizes against an image region and return them sorted coarse to fine.

    Raises ``TypeError`` for a non-integer size and ``ValueError`` for an empty list, a repeated size, or a size
    below 1 or above the region's smaller side (which would leave cells without a pixel).
    """
    if isinstance(grids, (int, np.integer)):
        grids = (int(grids),)
    sizes = list(grids)
    if not sizes:
        raise ValueError("grids is empty: give at least one grid size, e.g. grids=(7, 9, 11, 13, 15, 17, 19, 21)")
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, Integral):
            raise TypeError(f"grid size {n!r} is not an integer: grid sizes are whole numbers of cells per side")
    sizes = [int(n) for n in sizes]
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"grid sizes {sizes} repeat a size: give each size once")
    limit = min(int(height), int(width))
    for n in sizes:
        if n < 1 or n > limit:
            raise ValueError(
                f"grid size {n} is outside 1..{limit}: an n x n grid needs at least n pixels per side "
                f"and the region is {height} x {width}"
            )
    return tuple(sorted(sizes))


def cell_index_map(height: int, width: int, n: int) -> np.ndarray:
    """The cell number ``i * n + j`` of every pixel of a (height, width) region cut into n x n cells.

    Cell (i, j) covers rows ``[floor(i*H/n), floor((i+1)*H/n))`` and columns ``[floor(j*W/n), floor((j+1)*W/n))``.
    """
    validate_grids((n,), height, width)
    rows = np.searchsorted(grid_edges(height, n), np.arange(height), side="right") - 1
    cols = np.searchsorted(grid_edges(width, n), np.arange(width), side="right") - 1
    return rows[:, None] * n + cols[None, :]


def cell_boxes(height: int, width: int, n: int) -> np.ndarray:
    """Boxes ``(row0, row1, col0, col1)`` (end-exclusive) of the n * n cells, in cell-number order: (n*n, 4)."""
    r = grid_edges(height, n)
    c = grid_edges(width, n)
    i, j = np.divmod(np.arange(n * n), n)
    return np.stack([r[i], r[i + 1], c[j], c[j + 1]], axis=1)


def default_weights(grids: Sequence[int]) -> np.ndarray:
    """The paper's weighting, finer grids slightly heavier: 1.0 for the coarsest rising linearly to 1.5 for the
    finest, normalised to sum to 1 (so a Mixed Image stays within [0, 1])."""
    g = np.asarray(list(grids), dtype=np.float64)
    if g.size == 0:
        raise ValueError("grids is empty: default weights need at least one grid size")
    span = g.max() - g.min()
    w = np.ones_like(g) if span == 0 else 1.0 + 0.5 * (g - g.min()) / span
    return w / w.sum()


def check_weights(weights: Sequence[float] | np.ndarray | None, grids: Sequence[int]) -> np.ndarray:
    """Weights for ``grids`` as float64, normalised to sum to 1 so that a Mixed Image stays within [0, 1] (only
    their ratios matter); the default weighting for ``None``."""
    if weights is None:
        return default_weights(grids)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != len(grids):
        raise ValueError(
            f"weights has {w.size} value(s) in shape {w.shape} but there are {len(grids)} grid sizes {tuple(grids)}: "
            "give one weight per grid size"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights {w.tolist()} must be finite, non-negative and not all zero")
    return w / w.sum()
