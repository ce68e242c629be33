"""En-face evidence: where on the retina a volume's evidence lies.

For each explained B-scan, the evidence of one class is taken per pixel as the weighted mean of its grids' d, the
positive and the negative parts apart (a region for the class at one scale and against it at another shows both,
as in a Mixed Image), and projected along depth onto the A-scan axis by its maximum: the strongest evidence of each
A-scan, in the score's own units whatever the depth resolution. Stacking the B-scans gives a map on the scan's own
geometry: one row per B-scan (B-scan distance apart), one column per A-scan (lateral spacing apart).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..engine.grid import check_weights
from ..engine.result import DiDAResult
from .mixing import weighted_parts


@dataclass
class EnFaceMap:
    """One class's en-face evidence: (n_bscans, width) float32 maps, NaN on B-scans that were not explained."""

    positive: np.ndarray
    negative: np.ndarray
    class_index: int

    @property
    def explained(self) -> np.ndarray:
        """(n_bscans,) bool: the B-scans that carry evidence."""
        return ~np.isnan(self.positive[:, 0])

    @property
    def net(self) -> np.ndarray:
        return self.positive - self.negative


def evidence_parts(result: DiDAResult, class_index: int | str, shape: tuple[int, int] | None = None,
                   weights: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) per pixel: ``sum_i w_i max(+-d_i, 0)`` over the grids, linear in d (float32)."""

    def parts(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = d.astype(np.float32)
        return np.clip(d, 0, None), np.clip(-d, 0, None)

    return weighted_parts(result, result.class_index(class_index), check_weights(weights, result.grids), parts, shape)


def enface_map(results: Mapping[int, DiDAResult], class_index: int | str, n_bscans: int,
               bscan_shape: tuple[int, int], weights: Sequence[float] | None = None) -> EnFaceMap:
    """The en-face evidence of one class over the B-scans ``results`` (B-scan index -> result) of a volume of
    ``n_bscans`` B-scans of ``bscan_shape`` (depth, width)."""
    depth, width = int(bscan_shape[0]), int(bscan_shape[1])
    pos = np.full((n_bscans, width), np.nan, np.float32)
    neg = np.full((n_bscans, width), np.nan, np.float32)
    k = None
    for i, r in results.items():
        if not 0 <= i < n_bscans:
            raise ValueError(f"B-scan {i} is outside the volume's 0..{n_bscans - 1}")
        k = r.class_index(class_index)
        p, q = evidence_parts(r, k, (depth, width), weights)
        pos[i], neg[i] = p.max(axis=0), q.max(axis=0)
    if k is None:
        raise ValueError("no explained B-scan: an en-face map needs at least one")
    return EnFaceMap(pos, neg, k)


def enface_scale(maps: Sequence[EnFaceMap]) -> float:
    """One saturation scale for the en-face maps of a run: their strongest evidence of either sign."""
    peaks = [float(np.nanmax(np.maximum(m.positive, m.negative))) for m in maps if m.explained.any()]
    return max(peaks, default=0.0)


def enface_on_fundus(m: EnFaceMap, positions: np.ndarray, fundus_shape: tuple[int, int],
                     fundus_spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """An en-face map drawn where its A-scans lie on the fundus (SLO/NIR) image: (positive, negative) on the
    fundus pixel grid, NaN where no explained A-scan lies. ``positions`` (n_bscans, 4) are each B-scan's start and
    end (x0, y0, x1, y1) in the fundus's coordinates (mm), ``fundus_spacing`` (x, y) its mm per pixel.

    A raster of parallel, equally spaced B-scans (a volume scan) is inverted exactly: each fundus pixel takes the
    A-scan and B-scan nearest to it along the scan lines and across them, within half a B-scan distance. Other
    patterns (a single line, radial or circle scans) are refused, since their A-scans do not tile an area."""
    pos = np.asarray(positions, dtype=np.float64)
    n_bscans, width = m.positive.shape
    if pos.shape != (n_bscans, 4):
        raise ValueError(f"positions has shape {pos.shape}: expected ({n_bscans}, 4), one start and end per B-scan")
    if n_bscans < 2:
        raise ValueError("a single B-scan covers no area of the fundus: the en-face map cannot be laid on it")
    start, along = pos[0, :2], pos[0, 2:] - pos[0, :2]
    across = (pos[-1, :2] - pos[0, :2]) / (n_bscans - 1)
    expected = pos[0, :2][None] + np.arange(n_bscans)[:, None] * across[None]
    span = np.linalg.norm(along)
    if span == 0 or np.linalg.norm(across) == 0 or not np.allclose(pos[:, :2], expected, atol=1e-3 * span) \
            or not np.allclose(pos[:, 2:] - pos[:, :2], along[None], atol=1e-3 * span):
        raise ValueError("the B-scans are not a raster of parallel, equally spaced lines (a volume scan): the "
                         "en-face map cannot be laid on the fundus")
    h, w = fundus_shape
    ys, xs = np.mgrid[0:h, 0:w]
    q = np.stack([(xs + 0.5) * fundus_spacing[0], (ys + 0.5) * fundus_spacing[1]], axis=-1) - start
    basis = np.array([along, across]).T  # q = s * along + t * across
    s, t = np.linalg.solve(basis, q.reshape(-1, 2).T).reshape(2, h, w)
    col = np.floor(s * width).astype(np.int64)
    row = np.rint(t).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < n_bscans)
    out_pos = np.full((h, w), np.nan, np.float32)
    out_neg = np.full((h, w), np.nan, np.float32)
    out_pos[inside] = m.positive[row[inside], col[inside]]
    out_neg[inside] = m.negative[row[inside], col[inside]]
    return out_pos, out_neg
