"""Faithfulness metrics of a saliency map against a model and a known lesion: pointing game, relevance mass, and
the deletion / insertion curves with their areas (deletion AUC, ABPC, insertion AUC).

Each metric is written once here and serves the benchmark and the CI tests alike; the sanity maps
(``baselines.random_map`` and ``baselines.oracle_map``) check them: an oracle that knows the lesion must beat a
random map on every metric. Maps are (H, W) arrays on the model input's pixels; larger means "more evidence for
the class", so signed maps rank their negative evidence last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: Pointing-game tolerance as a fraction of the input's smaller side: Zhang et al.'s 15 pixels at 224.
POINTING_TOLERANCE = 15 / 224

#: Higher is better for every metric except deletion AUC (most relevant first: the faster the score falls, the
#: better the map).
HIGHER_IS_BETTER = {"pointing": True, "mass": True, "deletion": False, "lerf": True, "abpc": True, "insertion": True}


def dilate(mask: np.ndarray, radius: int | tuple[int, int]) -> np.ndarray:
    """Binary dilation of a 2-D mask by a (2r + 1) square, or a (2 rows + 1) x (2 cols + 1) rectangle."""
    out = np.asarray(mask, dtype=bool).copy()
    radii = (radius, radius) if np.isscalar(radius) else radius
    for axis, r in zip((0, 1), radii):
        grown = out.copy()
        for s in range(1, int(r) + 1):
            lo, hi = [slice(None)] * 2, [slice(None)] * 2
            lo[axis], hi[axis] = slice(s, None), slice(None, -s)
            grown[tuple(lo)] |= out[tuple(hi)]
            grown[tuple(hi)] |= out[tuple(lo)]
        out = grown
    return out


def pointing_game(saliency: np.ndarray, mask: np.ndarray, tolerance: float = POINTING_TOLERANCE) -> float:
    """Whether the map's maximum lies on the lesion (within ``tolerance`` x the smaller side, in pixels). A map
    whose maximum is a plateau (a DiDA cell, a flat map) scores the share of its maximal pixels that hit."""
    s = np.asarray(saliency, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        raise ValueError("the pointing game needs a lesion: the mask is empty")
    radius = round(tolerance * min(m.shape))
    top = s >= s.max() - 1e-12 * max(1.0, abs(s.max()))
    return float(dilate(m, radius)[top].mean())


def relevance_mass(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Relevance mass accuracy (Arras et al.): the share of the map's positive mass that lies on the lesion
    (0 for a map without positive values)."""
    s = np.clip(np.asarray(saliency, dtype=np.float64), 0, None)
    total = s.sum()
    return float(s[np.asarray(mask, dtype=bool)].sum() / total) if total > 0 else 0.0


def auc(curve: np.ndarray) -> float:
    """Normalised area under a curve sampled at equal steps from 0 to 1 (the trapezoid rule, as RISE's code)."""
    c = np.asarray(curve, dtype=np.float64)
    return float((c.sum() - c[0] / 2 - c[-1] / 2) / (len(c) - 1))


def ranking(saliency: np.ndarray, tie_break: np.ndarray, most_relevant_first: bool = True) -> np.ndarray:
    """Flat pixel indices ordered by the map (largest first, or smallest first), ties broken by ``tie_break`` (one
    random key per pixel, shared by all maps of an image so no map gains from the order of its ties)."""
    s = np.asarray(saliency, dtype=np.float64).ravel()
    return np.lexsort((tie_break.ravel(), -s if most_relevant_first else s))


ScoreFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Curves:
    """The model's probabilities (points, K) along each perturbation of one map."""

    morf: np.ndarray  # deletion, most relevant first
    lerf: np.ndarray  # deletion, least relevant first
    insertion: np.ndarray  # insertion into the blurred image, most relevant first


def _path(start: torch.Tensor, end: torch.Tensor, order: np.ndarray, steps: int):
    """Images from ``start`` to ``end``, switching pixels in ``order``, ``steps`` equal shares at a time."""
    _, h, w = start.shape
    counts = np.round(np.linspace(0, h * w, steps + 1)).astype(np.int64)
    rank = np.empty(h * w, dtype=np.int64)
    rank[order] = np.arange(h * w)
    rank_t = torch.from_numpy(rank.reshape(h, w)).to(start.device)
    for k in counts:
        yield torch.where(rank_t < int(k), end, start)


def perturbation_curves(score: ScoreFn, image: torch.Tensor, fill: torch.Tensor, blurred: torch.Tensor,
                        maps: Sequence[np.ndarray], tie_break: np.ndarray, steps: int = 20,
                        batch_size: int = 64) -> list[Curves]:
    """Deletion (most and least relevant first, removed pixels showing ``fill``) and insertion (from ``blurred``
    towards ``image``, most relevant first) curves of every map, all images through ``score`` in shared batches.

    ``score`` maps a (B, C, H, W) batch to (B, K) probabilities; ``fill`` broadcasts against the (C, H, W) image.
    Each curve has ``steps + 1`` points, from nothing changed to everything changed.
    """
    fill = fill.expand_as(image)
    jobs = []
    for m in maps:
        first, last = ranking(m, tie_break, True), ranking(m, tie_break, False)
        jobs += [(image, fill, first), (image, fill, last), (blurred, image, first)]
    images = (x for start, end, order in jobs for x in _path(start, end, order, steps))
    rows: list[torch.Tensor] = []
    while True:
        batch = [x for _, x in zip(range(batch_size), images)]
        if not batch:
            break
        rows.append(score(torch.stack(batch)).float().cpu())
    probs = torch.cat(rows).numpy().reshape(len(maps), 3, steps + 1, -1)
    return [Curves(p[0], p[1], p[2]) for p in probs]


def curve_metrics(curves: Curves, class_index: int) -> dict[str, float]:
    """Deletion AUC (most relevant first), LeRF AUC, ABPC (LeRF minus MoRF: the area between the curves) and
    insertion AUC, on one class's probability."""
    morf, lerf = auc(curves.morf[:, class_index]), auc(curves.lerf[:, class_index])
    return {"deletion": morf, "lerf": lerf, "abpc": lerf - morf, "insertion": auc(curves.insertion[:, class_index])}


def map_metrics(saliency: np.ndarray, mask: np.ndarray, curves: Curves, class_index: int) -> dict[str, float]:
    """Every metric of one map of one image: pointing, mass, deletion, lerf, abpc, insertion."""
    out = {"pointing": pointing_game(saliency, mask), "mass": relevance_mass(saliency, mask)}
    out.update(curve_metrics(curves, class_index))
    return out


def bootstrap_mean(values: np.ndarray, strata: np.ndarray | None = None, resamples: int = 2000,
                   seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` (one per image) with a percentile bootstrap interval, resampling images with
    replacement within each stratum (lesion class) so every resample keeps the set's balance."""
    v = np.asarray(values, dtype=np.float64)
    groups = [np.arange(len(v))] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    rng = np.random.default_rng(seed)
    means = np.zeros(resamples)
    for g in groups:
        picks = rng.integers(0, len(g), size=(resamples, len(g)))
        means += v[g][picks].sum(axis=1)
    means /= len(v)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(v.mean()), float(lo), float(hi)
