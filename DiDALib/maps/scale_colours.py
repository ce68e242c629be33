"""Colours of feature-scale maps: one colour per grid size, ordered from fine (dark blue) to coarse (yellow) along
viridis, a perceptually uniform scale that stays readable for colour-blind viewers and distinct from the red/blue
of evidence."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Five points of matplotlib's viridis (at 0, 0.25, 0.5, 0.75, 1), interpolated linearly between them.
_VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64) / 255


def scale_palette(grids: Sequence[int]) -> dict[int, tuple[float, float, float]]:
    """RGB in [0, 1] for each grid size: the finest grid first along viridis, the coarsest last."""
    sizes = sorted(int(n) for n in grids)[::-1]  # fine (large n) to coarse
    t = np.linspace(0.0, 1.0, len(sizes)) if len(sizes) > 1 else np.zeros(1)
    x = np.linspace(0.0, 1.0, len(_VIRIDIS))
    rgb = np.stack([np.interp(t, x, _VIRIDIS[:, c]) for c in range(3)], axis=1)
    return {n: tuple(float(v) for v in rgb[i]) for i, n in enumerate(sizes)}


def scale_rgba(grid: np.ndarray, strength: np.ndarray, grids: Sequence[int], full: float) -> np.ndarray:
    """(H, W, 4) RGBA in [0, 1]: the colour of each pixel's grid size, opaque as its evidence (strength / full,
    square-rooted like the Mixed Image's brightness); pixels without a scale (grid 0) are transparent."""
    palette = scale_palette(grids)
    out = np.zeros((*grid.shape, 4), np.float32)
    for n, rgb in palette.items():
        out[grid == n, :3] = rgb
    alpha = np.sqrt(np.clip(strength / full, 0.0, 1.0)) if full > 0 else np.zeros(grid.shape)
    out[..., 3] = np.where(grid > 0, alpha, 0.0)
    return out
