"""The Shapley estimator against models whose Shapley values are known in closed form, and its contracts.

(a) For a model additive over the cells every permutation gives each cell its leave-one-out d, so the estimator
    equals d exactly (pixel values and weights chosen so that float32 adds them without rounding).
(b) For ``max(cell A, cell B)`` (redundant evidence) leave-one-out gives both cells 0; Shapley splits the value
    equally, exactly so with antithetic pairs (each pair hides A first once and B first once).
(c) Efficiency: a grid's values sum to C(I) - C(all cells hidden), to float32 precision, on a real network.
(d) Antithetic pairs estimate the exact Shapley values (all 2^9 coalitions of a 3 x 3 grid) with a smaller error
    than as many independent permutations, and the reported standard errors match the spread over seeds.
"""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import pytest
import torch

from DiDALib import DiDACancelled, DiDAEngine, cell_index_map, offset_grids
from DiDALib.engine.estimators import (PAPER_BUDGET, SHAPLEY_GRIDS, Shapley, estimator_passes, shapley_passes,
                                       split_budget)
from DiDALib.engine.grid import grid_shape
from DiDALib.engine.masks import fill_image


class IntegerLinear(torch.nn.Module):
    """``z_k = sum_p W_k(p) x(p)`` with small integer weights: on integer images float32 adds it exactly."""

    def __init__(self, shape, classes: int = 3, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randint(-3, 4, (classes, *shape), generator=g).float())
        self.calls: list[int] = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return torch.einsum("bchw,kchw->bk", x, self.weight)


def small_cnn(seed: int = 0, classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(6, 6, 3),
                               torch.nn.ReLU(), torch.nn.AdaptiveMaxPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(24, classes))


@pytest.mark.parametrize("grids,region", [((3, 5), None), (offset_grids((4,), 2), (2, 3, 20, 24))])
def test_additive_model_gives_leave_one_out_d_exactly(grids, region):
    shape = (2, 24, 30)
    image = torch.randint(0, 8, shape).float()
    model = IntegerLinear(shape)
    engine = DiDAEngine(model, device="cpu", score="logits", fill=1.0, batch_size=37)
    d = engine.explain(image, grids=grids, region=region)
    s = engine.explain(image, grids=grids, region=region, estimator=Shapley(permutations=4, seed=3))
    assert s.estimator == "shapley" and d.estimator == "leave-one-out" and d.stderr is None
    for g in grids:
        np.testing.assert_array_equal(s.deltas[g], d.deltas[g])
        np.testing.assert_array_equal(s.stderr[g], np.zeros_like(s.stderr[g]))
    np.testing.assert_array_equal(s.base_scores, d.base_scores)


def _redundant(x: torch.Tensor) -> torch.Tensor:
    """Class 0: max(mean of cell A, mean of cell B) (either cell alone is enough); class 1: their sum (additive)."""
    a, b = x[:, 0, :4, :4].mean((1, 2)), x[:, 0, 4:, 4:].mean((1, 2))
    return torch.stack([torch.maximum(a, b), a + b], dim=1)


def test_redundant_evidence_is_shared_equally_where_leave_one_out_sees_nothing():
    image = torch.zeros(1, 8, 8)
    image[:, :4, :4] = image[:, 4:, 4:] = 1  # cells A = (0, 0) and B = (1, 1) of the 2 x 2 grid
    engine = DiDAEngine(_redundant, device="cpu", score="logits", fill=0.0)
    d = engine.explain(image, grids=(2,)).deltas[2]
    np.testing.assert_array_equal(d[0], [[0, 0], [0, 0]])  # hiding either cell alone changes nothing
    for seed in range(5):
        s = engine.explain(image, grids=(2,), estimator=Shapley(permutations=6, seed=seed))
        np.testing.assert_array_equal(s.deltas[2][0], [[0.5, 0], [0, 0.5]])
        np.testing.assert_array_equal(s.deltas[2][1], d[1])  # the additive class: d itself
        np.testing.assert_array_equal(s.stderr[2][0], np.zeros((2, 2)))  # every pair splits it exactly


def test_efficiency_on_a_network_with_a_region_and_shifted_grids():
    model = small_cnn()
    engine = DiDAEngine(model, device="cpu", score="probabilities", fill="background", batch_size=50)
    image = torch.rand(1, 40, 48)
    region = (3, 2, 32, 44)
    grids = (3, *offset_grids((4,), 2))
    s = engine.explain(image, grids=grids, region=region, estimator=Shapley(permutations=4))
    top, left, h, w = region
    hidden = image.clone()
    fill = fill_image(image, "background", region)
    hidden[:, top : top + h, left : left + w] = fill[:, top : top + h, left : left + w]
    base, everything = engine.scores(torch.stack([image, hidden]))
    np.testing.assert_allclose(s.base_scores, base.numpy(), rtol=0, atol=1e-6)  # other batches: other rounding
    for g in grids:
        total = s.deltas[g].astype(np.float64).sum(axis=(1, 2))
        np.testing.assert_allclose(total, (base - everything).double().numpy(), rtol=0, atol=1e-7)
        assert s.deltas[g].shape == s.stderr[g].shape == (4, *grid_shape(g))
        assert (s.stderr[g] >= 0).all() and s.stderr[g].max() > 0


def _exact_shapley(model, image: torch.Tensor, n: int) -> np.ndarray:
    """Shapley values (K, n * n) of hiding the cells of an n x n grid (fill 0), from all 2^(n*n) coalitions."""
    _, h, w = image.shape
    cells = torch.from_numpy(cell_index_map(h, w, n))
    m = n * n
    subsets = np.array(list(itertools.product([0, 1], repeat=m)), dtype=bool)  # True: hidden
    with torch.no_grad():
        x = image[None] * torch.from_numpy(~subsets)[:, cells][:, None].float()
        v = torch.softmax(model(x), dim=1).double().numpy()  # (2^m, K)
    index = {tuple(s): i for i, s in enumerate(subsets)}
    phi = np.zeros((v.shape[1], m))
    for i, s in enumerate(subsets):
        size = int(s.sum())
        for c in np.flatnonzero(~s):  # c visible in s: hiding it as well is its marginal drop
            t = s.copy()
            t[c] = True
            weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            phi[:, c] += weight * (v[i] - v[index[tuple(t)]])
    return phi


def test_antithetic_pairs_reduce_the_error_and_the_standard_errors_are_honest():
    model = small_cnn(seed=1)
    image = torch.rand(1, 24, 24)
    exact = _exact_shapley(model, image, 3)
    engine = DiDAEngine(model, device="cpu", score="probabilities", fill=0.0, batch_size=64)
    errors, estimates, stderrs = {}, [], []
    for antithetic in (True, False):
        runs = [engine.explain(image, grids=(3,), estimator=Shapley(8, seed, antithetic)) for seed in range(24)]
        errors[antithetic] = np.mean([((r.deltas[3].reshape(len(exact), -1) - exact) ** 2).sum() for r in runs])
        if antithetic:
            estimates = np.stack([r.deltas[3] for r in runs])
            stderrs = np.stack([r.stderr[3] for r in runs])
    assert errors[True] < 0.5 * errors[False], errors
    # Each run's standard error estimates the spread of its values over seeds: on average within a factor 1.5.
    ratio = stderrs.mean(axis=0).sum() / estimates.std(axis=0, ddof=1).sum()
    assert 1 / 1.5 < ratio < 1.5, ratio


def test_schedule_fits_the_paper_budget_and_counts_every_pass():
    counts = split_budget(SHAPLEY_GRIDS)
    assert all(c % 2 == 0 and c >= 4 for c in counts)
    assert PAPER_BUDGET - 120 < shapley_passes(SHAPLEY_GRIDS, counts) <= PAPER_BUDGET
    assert Shapley().counts(SHAPLEY_GRIDS) == counts
    shape = (1, 33, 33)
    model = IntegerLinear(shape)
    # channels_last=False: no memory-format probe (test_memory_format.py), whose passes would count here
    engine = DiDAEngine(model, device="cpu", score="logits", batch_size=64, channels_last=False)
    seen = []
    engine.explain(torch.rand(shape), grids=(3, 5), estimator=Shapley((6, 4)),
                   on_grid=lambda i, g, values, base: seen.append(g))
    assert sum(model.calls) == 2 + 6 * 8 + 4 * 24 == estimator_passes((3, 5), Shapley((6, 4)))
    assert seen == [3, 5]  # the coarse grid's values first
    with pytest.raises(ValueError, match="more than the budget"):
        split_budget((7, 9, 11, 13, 15, 17, 19, 21))
    for bad, message in (((3,), "at least 4"), ((5,), "even"), ((4, 4, 4), "one per grid")):
        with pytest.raises(ValueError, match=message):
            Shapley(bad).counts((3, 5) if len(bad) != 1 else (3,))


def test_deterministic_per_image_and_previews_match():
    model = small_cnn(seed=2)
    images = [torch.rand(1, 30, 30) for _ in range(3)]
    engine = DiDAEngine(model, device="cpu", score="log-odds", fill="blur", batch_size=45)
    shapley = Shapley(seed=7, permutations=4)
    together = list(engine.explain_volume(images, grids=(3, 4), estimator=shapley))
    previews = {}
    alone = engine.explain(images[1], grids=(3, 4), estimator=shapley,
                           on_grid=lambda i, g, values, base: previews.setdefault(g, values))
    for g in (3, 4):  # an image's values do not depend on the images batched with it
        np.testing.assert_allclose(together[1].deltas[g], alone.deltas[g], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(previews[g], alone.deltas[g])
    other = engine.explain(images[1], grids=(3, 4), estimator=Shapley(seed=8, permutations=4))
    assert not np.array_equal(other.deltas[4], alone.deltas[4])


def test_cancel_and_progress_cover_shapley_passes():
    model = small_cnn()
    engine = DiDAEngine(model, device="cpu", score="probabilities", batch_size=16)
    seen = []
    list(engine.explain_volume([torch.rand(1, 24, 24)] * 2, grids=(3,), estimator="shapley",
                               progress=seen.append))
    per_image = estimator_passes((3,), Shapley())
    assert seen[-1].passes_per_image == per_image and seen[-1].passes_done == 2 * per_image
    stop = threading.Event()
    stop.set()
    with pytest.raises(DiDACancelled):
        engine.explain(torch.rand(1, 24, 24), grids=(3,), estimator="shapley", cancel=stop)
    with pytest.raises(ValueError, match="estimator 'banzhaf' is not known"):
        engine.explain(torch.rand(1, 24, 24), grids=(3,), estimator="banzhaf")
