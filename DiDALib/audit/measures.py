"""What an audit measures on one explained B-scan, from DiDA's evidence map (``maps.evidence``: the signed readout
in the units of d) and the retina band (``audit.retina``):

- where the predicted class's positive evidence lies: its shares inside the retina band, above it (vitreous), below
  it (choroid, sclera) and in the image border (the outer ``BORDER`` of the depth and of the width on each side,
  where text, rulers and scanner frames lie), each the positive evidence there over all positive evidence;
- the depth of that evidence's centroid: as a fraction of the image depth, and within the band (0 at the ILM, 1 at
  the band's lower edge, below 0 in the vitreous, above 1 under the band; per column, then weighted);
- when the prediction is wrong, the strongest "against" region of the label: the cell of the finest grid whose
  mean evidence for the label is the most negative, as a box in B-scan pixels, with its value and how much of it
  lies inside the band.

Everything here is numpy on one B-scan; the tests check it in closed form on linear scorers and phantoms.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..engine.grid import grid_size
from ..engine.result import DiDAResult
from ..maps.mixing import cell_map
from .retina import RetinaBand

#: The image border: this fraction of the depth at the top and bottom, and of the width at the left and right.
BORDER = 0.05


@dataclass(frozen=True)
class EvidenceShares:
    """Where positive evidence lies (shares of its total; None when there is none or no band was found)."""

    inside: float | None
    above: float | None
    below: float | None
    border: float | None
    centroid_depth: float | None
    centroid_in_band: float | None
    total: float

    def as_dict(self) -> dict:
        return asdict(self)


def border_mask(shape: tuple[int, int], fraction: float = BORDER) -> np.ndarray:
    """Boolean (depth, width): the outer ``fraction`` of the depth and of the width on every side (at least one
    pixel)."""
    h, w = int(shape[0]), int(shape[1])
    bh, bw = max(1, math.floor(fraction * h + 0.5)), max(1, math.floor(fraction * w + 0.5))
    m = np.zeros((h, w), bool)
    m[:bh], m[h - bh:], m[:, :bw], m[:, w - bw:] = True, True, True, True
    return m


def evidence_shares(evidence: np.ndarray, band: RetinaBand | None) -> EvidenceShares:
    """The shares of the positive part of an evidence map (depth, width) inside, above and below the band and in
    the border, and its centroid's depth (the module docstring defines each)."""
    e = np.asarray(evidence, dtype=np.float64)
    p = np.clip(e, 0.0, None)
    total = float(p.sum())
    h, w = e.shape
    if not total > 0:
        return EvidenceShares(None, None, None, None, None, None, 0.0)
    centres = np.arange(h, dtype=np.float64)[:, None] + 0.5
    border = float(p[border_mask(e.shape)].sum() / total)
    depth = float((p * centres).sum() / total / h)
    if band is None:
        return EvidenceShares(None, None, None, border, depth, None, total)
    b = band if (band.depth, band.width) == (h, w) else band.resampled((h, w))
    above = centres < b.top[None, :]
    below = centres >= b.bottom[None, :]
    inside = ~above & ~below
    thickness = np.maximum(b.bottom - b.top, 1e-9)
    relative = (centres - b.top[None, :]) / thickness[None, :]
    return EvidenceShares(float(p[inside].sum() / total), float(p[above].sum() / total),
                          float(p[below].sum() / total), border, depth, float((p * relative).sum() / total), total)


@dataclass(frozen=True)
class AgainstRegion:
    """The strongest region against a class: ``box`` (top, left, bottom, right) in B-scan pixels (bottom and right
    exclusive), the mean evidence there (negative, units of d), and the share of the box inside the band (None
    without a band)."""

    box: tuple[int, int, int, int]
    value: float
    inside: float | None

    def as_dict(self) -> dict:
        return {"box": list(self.box), "value": self.value, "inside": self.inside}


def strongest_against(result: DiDAResult, evidence: np.ndarray, band: RetinaBand | None) -> AgainstRegion | None:
    """The cell of the result's finest grid (the first of the finest size) where ``evidence`` (a class's map on the
    B-scan's pixels) has the most negative mean; None when no cell's mean is negative."""
    e = np.asarray(evidence, dtype=np.float64)
    finest = max(result.grids, key=lambda g: (grid_size(g), -result.grids.index(g)))
    cells = cell_map(result, finest, e.shape).ravel()
    count = np.bincount(cells)
    means = np.bincount(cells, weights=e.ravel()) / np.maximum(count, 1)
    means[count == 0] = np.inf
    k = int(np.argmin(means))
    if not means[k] < 0:
        return None
    rows, cols = np.nonzero((cells == k).reshape(e.shape))
    box = (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
    inside = None
    if band is not None:
        m = band.mask(e.shape)[box[0]:box[2], box[1]:box[3]]
        inside = float(m.mean())
    return AgainstRegion(box, float(means[k]), inside)


def probabilities(scores: np.ndarray, mode: str) -> np.ndarray:
    """Class probabilities from base scores in a score mode: probabilities as they are, the softmax of logits, and
    the sigmoid of log-odds (exact for a softmax classifier: log-odds are ``log(p / (1 - p))``)."""
    s = np.asarray(scores, dtype=np.float64)
    if mode == "probabilities":
        return s
    if mode == "logits":
        if s.size == 1:
            return 1.0 / (1.0 + np.exp(-s))
        z = np.exp(s - s.max())
        return z / z.sum()
    if mode == "log-odds":
        return 1.0 / (1.0 + np.exp(-s))
    raise ValueError(f"score mode {mode!r} is not known")
