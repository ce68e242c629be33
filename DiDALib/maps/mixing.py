"""Grid Images and Mixed Images as numbers: brightness a(d), one saturation scale, positive and negative apart."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..engine.grid import GridKey, axis_edges, check_weights, grid_shape, validate_grids
from ..engine.result import DiDAResult

#: Exponent of the brightness curve. Below 1 it lifts weak evidence into view while keeping the order of |d|:
#: a confident classifier's d spans two decades (0.01 to 0.4 on the demo volume), and a linear ramp leaves the
#: lower decade invisible on an overlay.
BRIGHTNESS_GAMMA = 0.5


def brightness(d: np.ndarray, scale: float, gamma: float = BRIGHTNESS_GAMMA) -> np.ndarray:
    """``a(d) = min(|d| / scale, 1) ** gamma``: monotone in |d|, 0 at d = 0, saturating at ``scale``."""
    d = np.asarray(d, dtype=np.float32)
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"saturation scale {scale!r} must be a finite number >= 0")
    if not 0 < gamma <= 4:
        raise ValueError(f"brightness gamma {gamma!r} must be within (0, 4]")
    if scale == 0:
        return np.zeros_like(d)
    return np.minimum(np.abs(d) / np.float32(scale), np.float32(1.0)) ** np.float32(gamma)


def mixed_peak(result: DiDAResult, weights: Sequence[float] | None = None, gamma: float = BRIGHTNESS_GAMMA,
               classes: Sequence[int] | None = None) -> float:
    """The strongest evidence of a result's Mixed Images as a |d|: the largest weighted power mean over the grids,
    ``(sum_i w_i |d_i| ** gamma) ** (1 / gamma)``, at any pixel, for either sign, over the given classes (all by
    default). With one grid it is the largest |d|."""
    w = check_weights(weights, result.grids)
    ks = list(range(result.num_classes)) if classes is None else [result.class_index(k) for k in classes]
    if not ks:
        return 0.0
    _, _, h, wd = result.region
    pos = np.zeros((len(ks), h, wd), np.float64)
    neg = np.zeros_like(pos)
    for wi, n in zip(w, result.grids):
        d = result.deltas[n][ks].reshape(len(ks), -1).astype(np.float64)
        cells = cell_map(result, n)
        pos += wi * (np.clip(d, 0, None) ** gamma)[:, cells]
        neg += wi * (np.clip(-d, 0, None) ** gamma)[:, cells]
    return float(max(pos.max(), neg.max()) ** (1.0 / gamma))


def saturation_scale(results: DiDAResult | Iterable[DiDAResult], classes: Sequence[int] | None = None,
                     weights: Sequence[float] | None = None, gamma: float = BRIGHTNESS_GAMMA) -> float:
    """The |d| at which brightness saturates, one for all the classes and results given: the strongest Mixed-Image
    evidence among them (``mixed_peak``). At this scale the brightest Mixed-Image pixel of a run is fully bright
    wherever its grids agree, and brighter means more contribution across classes and B-scans."""
    if isinstance(results, DiDAResult):
        results = (results,)
    return max((mixed_peak(r, weights, gamma, classes) for r in results), default=0.0)


@lru_cache(maxsize=256)
def _cell_axes(height: int, width: int, key: GridKey, out_h: int, out_w: int) -> tuple[np.ndarray, np.ndarray]:
    """The cell row of every output row and the cell column of every output column (nearest sampling keeps cells
    crisp rectangles on the output grid): the cell map is ``rows[:, None] * columns + cols[None, :]``, separable, so
    no image-sized map of cell numbers is ever needed (one per grid cost 8 bytes a pixel: 4 GB for the 8 grids on
    an 8000 x 8000 B-scan). A shifted grid (``OffsetGrid``) has its own edges, n + 1 cells along a shifted axis."""
    validate_grids((key,), height, width)
    rows = np.searchsorted(axis_edges(height, key, 0), np.arange(height), side="right") - 1
    cols = np.searchsorted(axis_edges(width, key, 1), np.arange(width), side="right") - 1
    if (out_h, out_w) != (height, width):
        rows = rows[np.minimum(((np.arange(out_h) + 0.5) * height / out_h).astype(np.int64), height - 1)]
        cols = cols[np.minimum(((np.arange(out_w) + 0.5) * width / out_w).astype(np.int64), width - 1)]
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols


def _out_shape(result: DiDAResult, shape: tuple[int, int] | None) -> tuple[int, int, int, int]:
    _, _, h, w = result.region
    out_h, out_w = shape if shape is not None else (h, w)
    return h, w, int(out_h), int(out_w)


def cell_map(result: DiDAResult, n: GridKey, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Cell number of every pixel of the explained region, resampled (nearest) onto ``shape`` when given."""
    h, w, out_h, out_w = _out_shape(result, shape)
    rows, cols = _cell_axes(h, w, n, out_h, out_w)
    return rows[:, None] * grid_shape(n)[1] + cols[None, :]


def cell_values(result: DiDAResult, n: GridKey, values: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Per-cell ``values`` of grid n (its cells in cell-number order) painted onto the region's pixels (or onto
    ``shape``): the same as ``values.ravel()[cell_map(result, n, shape)]`` without an image-sized index map."""
    h, w, out_h, out_w = _out_shape(result, shape)
    rows, cols = _cell_axes(h, w, n, out_h, out_w)
    return np.asarray(values).reshape(grid_shape(n))[:, cols][rows]  # a row per cell row, then whole rows copied


@dataclass
class MixedImage:
    """One class's Mixed Image: weighted sums of the Grid Images' red (positive) and blue (negative) brightness."""

    positive: np.ndarray  # (H, W) float32 in [0, 1] with weights summing to 1
    negative: np.ndarray
    class_index: int
    scale: float
    weights: np.ndarray

    @property
    def net(self) -> np.ndarray:
        """Signed readout, positive minus negative (a cell red at one scale and blue at another partly cancels)."""
        return self.positive - self.negative


def grid_image(result: DiDAResult, n: GridKey, class_index: int, scale: float | None = None,
               shape: tuple[int, int] | None = None, gamma: float = BRIGHTNESS_GAMMA) -> np.ndarray:
    """Grid Image of size n for one class as signed brightness: ``+a(d)`` where d >= 0 (red), ``-a(d)`` (blue).
    ``scale`` defaults to the grid's largest |d| over all classes."""
    if n not in result.deltas:
        raise ValueError(f"grid {n} was not computed: this result has grids {result.grids}")
    k = result.class_index(class_index)
    scale = float(np.abs(result.deltas[n]).max()) if scale is None else scale
    d = result.deltas[n][k]
    a = brightness(d, scale, gamma)
    signed = np.where(d >= 0, a, -a).astype(np.float32)
    return cell_values(result, n, signed, shape)


def mixed_image(
    result: DiDAResult,
    class_index: int | str,
    weights: Sequence[float] | None = None,
    scale: float | None = None,
    shape: tuple[int, int] | None = None,
    gamma: float = BRIGHTNESS_GAMMA,
) -> MixedImage:
    """The Mixed Image of one class: ``p(D) = sum_i w_i p(G_i)`` on the coloured pixels, so red and blue
    accumulate separately. ``scale`` defaults to the result's own ``saturation_scale`` (its strongest Mixed-Image
    evidence over all classes); pass one scale (``saturation_scale`` of a whole run) to compare B-scans.
    ``shape`` resamples onto another pixel grid.

    ``class_index`` is a class's index or, where the result has ``class_names``, its name; ``weights`` one per
    grid (default: ``default_weights``, finer grids slightly heavier); ``gamma`` the brightness exponent (0.5).

    Returns a ``MixedImage``: ``positive`` (red) and ``negative`` (blue) brightness in [0, 1], (height, width) of
    the explained region or ``shape``, and ``net`` = positive - negative. ``mixed_to_rgb`` and ``overlay`` colour it.

    Example
    -------
    >>> mixed = mixed_image(result, class_index=0)
    >>> rgb = overlay(bscan, mixed)   # bscan: the grey image at the same (height, width); uint8 RGB
    """
    k = result.class_index(class_index)
    w = check_weights(weights, result.grids)
    scale = saturation_scale(result, weights=w, gamma=gamma) if scale is None else float(scale)

    def parts(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = brightness(d, scale, gamma)
        return np.where(d >= 0, a, 0), np.where(d < 0, a, 0)

    pos, neg = weighted_parts(result, k, w, parts, shape)
    return MixedImage(pos, neg, k, scale, w)


def weighted_parts(result: DiDAResult, class_index: int, weights: np.ndarray,
                   parts: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                   shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(sum_i w_i P(d_i), sum_i w_i N(d_i))`` per pixel over the result's grids (float32), where ``parts`` maps a
    grid's d (its cells, flat) to their positive and negative parts (P, N): the one accumulation behind a Mixed
    Image (brightness of each sign) and the en-face evidence (linear d of each sign). ``weights``: one per grid."""
    _, _, h, wd = result.region
    out = shape if shape is not None else (h, wd)
    pos = np.zeros(out, dtype=np.float32)
    neg = np.zeros(out, dtype=np.float32)
    for wi, n in zip(weights, result.grids):
        p, q = parts(result.deltas[n][class_index].ravel())
        # Weighted on the n x n cells, then painted: one image-sized temporary per grid and sign.
        pos += cell_values(result, n, (np.float32(wi) * p).astype(np.float32), shape)
        neg += cell_values(result, n, (np.float32(wi) * q).astype(np.float32), shape)
    return pos, neg


def mixed_images(result: DiDAResult, classes: Sequence[int | str], weights=None, scale=None, shape=None) -> list[MixedImage]:
    """Mixed Images of several classes of one result at one shared saturation scale."""
    scale = saturation_scale(result, weights=weights) if scale is None else scale
    return [mixed_image(result, c, weights, scale, shape) for c in classes]
