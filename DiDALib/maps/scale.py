"""Feature-scale maps: at which grid size a region's evidence is strongest (the paper's Section 3.1: comparing grid
sizes estimates a feature's scale).

Raw |d| cannot say it alone: it grows with the cell until a cell hides the whole finding and then stays, while |d|
per unit area is highest for every cell inside the finding. The scale-normalised evidence ``|d| / sqrt(cell area)``
(the normalisation of scale-space theory) rises while cells are smaller than the finding and falls once they are
larger, so it peaks where the cell matches the finding: a square finding of side L peaks at the grid whose cells
have side L. The cell area is that of the model input region, so on one image this is ``n * |d_n|`` up to a constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.grid import size_groups
from ..engine.result import DiDAResult
from .mixing import cell_values

#: Pixels whose strongest normalised evidence is below this fraction of the map's strongest get no scale (0).
MIN_EVIDENCE = 0.05
SIGNS = ("both", "positive", "negative")


@dataclass
class FeatureScale:
    """One class's feature scale on one image: per pixel the grid size n whose normalised evidence is strongest
    (0 where the evidence is too weak to say), how sharply it peaks, and that evidence's strength."""

    grid: np.ndarray  # (H, W) int32: n of the n x n grid, 0 = no scale
    sharpness: np.ndarray  # (H, W) float32 in [0, 1]: 1 - mean of the other grids / the peak; 0 where grid is 0
    strength: np.ndarray  # (H, W) float32: the peak |d| * n / sqrt(region area), in score units per pixel
    grids: tuple[int, ...]
    class_index: int
    sign: str

    def cell_size(self, n: int, bscan_shape: tuple[int, int], spacing: tuple[float, float]) -> tuple[float, float]:
        """(lateral, axial) size of one cell of grid n on a B-scan of ``bscan_shape`` (depth, width) pixels with
        ``spacing`` (lateral, axial) per pixel: the explained region covers the whole B-scan."""
        depth, width = bscan_shape
        return (width * spacing[0] / n, depth * spacing[1] / n)


def normalised_evidence(result: DiDAResult, class_index: int | str, shape: tuple[int, int] | None = None,
                        sign: str = "both") -> np.ndarray:
    """(S, H, W) float32: per grid size (coarse to fine, ``grid_sizes``) and pixel, the evidence
    ``|d| / sqrt(cell area)`` of one class, of either sign (``both``) or only its positive or negative part; cell
    areas in model-input pixels. A size's shifted grids (``OffsetGrid``) are averaged, as in the evidence map."""
    if sign not in SIGNS:
        raise ValueError(f"sign {sign!r} is not one of {SIGNS}")
    k = result.class_index(class_index)
    _, _, h, w = result.region
    out = []
    for n, keys in size_groups(result.grids).items():
        total = None
        for g in keys:
            d = result.deltas[g][k].ravel().astype(np.float32)
            d = np.abs(d) if sign == "both" else np.clip(d if sign == "positive" else -d, 0, None)
            e = cell_values(result, g, d * np.float32(n / np.sqrt(h * w) / len(keys)), shape)
            total = e if total is None else total + e
        out.append(total)
    return np.stack(out)


def grid_sizes(grids) -> tuple[int, ...]:
    """The distinct grid sizes n of a schedule, coarse to fine (a size with shifted grids counts once)."""
    return tuple(size_groups(tuple(grids)))


def feature_scale(result: DiDAResult, class_index: int | str, shape: tuple[int, int] | None = None,
                  sign: str = "both", min_evidence: float = MIN_EVIDENCE) -> FeatureScale:
    """The feature-scale map of one class (see the module text); ``shape`` resamples onto a B-scan's pixels."""
    e = normalised_evidence(result, class_index, shape, sign)
    grids = grid_sizes(result.grids)
    peak_at = np.argmax(e, axis=0)
    peak = np.take_along_axis(e, peak_at[None], axis=0)[0]
    if len(grids) > 1:
        others = (e.sum(axis=0) - peak) / (len(grids) - 1)
        sharp = np.where(peak > 0, 1.0 - others / np.maximum(peak, 1e-30), 0.0).astype(np.float32)
    else:
        sharp = np.zeros_like(peak)
    keep = peak > min_evidence * float(peak.max()) if peak.max() > 0 else np.zeros(peak.shape, bool)
    grid = np.where(keep, np.asarray(grids, dtype=np.int32)[peak_at], 0).astype(np.int32)
    return FeatureScale(grid, np.where(keep, sharp, 0).astype(np.float32), peak.astype(np.float32), grids,
                        result.class_index(class_index), sign)


def scale_readout(scale: FeatureScale, row: int, col: int, bscan_shape: tuple[int, int],
                  spacing: tuple[float, float], unit: str = "mm") -> str:
    """The sentence under the cursor, e.g. "strongest at 11 x 11, cells of 0.54 x 0.18 mm (lateral x axial)"."""
    n = int(scale.grid[row, col])
    if n == 0:
        return "no clear scale here (little evidence)"
    lateral, axial = scale.cell_size(n, bscan_shape, spacing)
    return (f"strongest at {n} x {n}, cells of {lateral:.2g} x {axial:.2g} {unit} (lateral x axial), "
            f"peak sharpness {float(scale.sharpness[row, col]):.2f}")
