"""Is a runtime exact? Its d against torch's on a probe batch of the run's own masked images.

d is what DiDA shows, so that is what is compared: for every class k, the largest |d difference| over the probe's
masked images, divided by the largest |d| of that class under torch, must be at most ``EXACTNESS_BOUND``. A
difference within ``RESOLUTION_ULPS`` units in the last place of the class's largest score counts as none: the
last operations that make a score (a softmax's exponential, sum and division) each round, so float32 cannot vouch
for scores more finely than that, nor for their difference d; a class whose d is zero everywhere, or an untrained
network whose d are a few thousand units in the last place, would otherwise fail on rounding alone.

Where a candidate misses the bound, both are measured against the truth: the same model in float64 on the same
probe. For a model whose d are that close to float32's rounding noise (an untrained network, whose masked images
barely change its scores), torch's own float32 d are that far from the truth too, and would move as much with a
batch size or memory format (both of which the engine chooses by speed); a runtime whose d are no further than
``NOISE_FACTOR`` times torch's from the truth, class by class, is as exact as torch is, and passes
(``exact_enough``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..engine.scores import transform_scores

#: Largest |d difference| / largest |d|, per class, that a runtime may show against torch.
EXACTNESS_BOUND = 1e-4

#: Differences of d within this many float32 units in the last place of a class's largest score are rounding.
RESOLUTION_ULPS = 4

#: How much further from float64's d than torch's float32 d a runtime's d may be (two float32 computations of the
#: same d each carry their own rounding: either may be the closer).
NOISE_FACTOR = 2.0

#: Masked images in the probe batch (besides the original): spread over every grid of the run.
PROBE_IMAGES = 23


def probe_jobs(num_jobs: int, count: int = PROBE_IMAGES) -> list[int]:
    """The jobs of a run's plan that make the probe: the original (job 0) and ``count`` masked images spread evenly
    over the rest (so over coarse and fine, aligned and shifted grids)."""
    if num_jobs <= 1:
        return [0]
    rest = np.unique(np.linspace(1, num_jobs - 1, num=min(count, num_jobs - 1)).round().astype(int))
    return [0, *(int(j) for j in rest)]


def deltas(outputs: torch.Tensor, score: str) -> np.ndarray:
    """d of a probe's model outputs (row 0 the original): (masked images, classes), float64."""
    s = transform_scores(outputs.detach().cpu().float(), score).double().numpy()
    return s[:1] - s[1:]


def d_errors(reference: torch.Tensor, candidate: torch.Tensor, score: str) -> tuple[np.ndarray, np.ndarray]:
    """Per class: the largest |d difference| between two runs' outputs of the same probe (differences within the
    resolution of the class's scores count as none; inf where the candidate's shape or values are unusable), and
    the largest |d| of the reference."""
    ref_scores = transform_scores(reference.detach().cpu().float(), score).double().numpy()
    d_ref, d_new = deltas(reference, score), deltas(candidate, score)
    peak = np.abs(d_ref).max(axis=0)
    if d_ref.shape != d_new.shape or not np.isfinite(d_new).all():
        return np.full_like(peak, np.inf), peak
    diff = np.abs(d_ref - d_new).max(axis=0)
    resolution = RESOLUTION_ULPS * np.spacing(np.abs(ref_scores).max(axis=0).astype(np.float32)).astype(np.float64)
    return np.where(diff <= resolution, 0.0, diff), peak


def _ratio(diff: np.ndarray, peak: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.where(diff == 0, 0.0, diff / peak).max())


def exactness(reference: torch.Tensor, candidate: torch.Tensor, score: str) -> float:
    """The worst class's largest |d difference| / largest |d| between two runs' outputs of the same probe."""
    return _ratio(*d_errors(reference, candidate, score))


def exact_enough(reference: torch.Tensor, candidate: torch.Tensor, score: str,
                 truth: torch.Tensor | None = None) -> bool:
    """True when, on every class, the candidate's d equal the reference's within ``EXACTNESS_BOUND`` of the
    largest |d|, or (where ``truth``, the float64 outputs of the same probe, is given) they are no further from the
    truth's than ``NOISE_FACTOR`` times the reference's."""
    diff, peak = d_errors(reference, candidate, score)
    ok = diff <= EXACTNESS_BOUND * peak
    if truth is not None and not ok.all():
        ok |= d_errors(truth, candidate, score)[0] <= NOISE_FACTOR * d_errors(truth, reference, score)[0]
    return bool(ok.all())
