"""DiDA's Shapley estimator: each cell's value is its average marginal score change over random orders of hiding
the grid's cells (permutation sampling, antithetic pairs), for every class from the same passes.

Leave-one-out d measures a cell against the whole image only; when the model's evidence is redundant (a lesion
seen in several cells, a spread atrophy) hiding any one cell changes nothing and d is noise. The Shapley value
phi_c = E_pi[C(I with the cells before c in pi hidden) - C(I with c hidden as well)] shares such evidence out:
the values of a grid sum to C(I) - C(all cells hidden) (efficiency), and for a model additive over the cells they
equal d. One permutation walks all N cells of a grid, hiding one more per pass: N - 1 passes of its own, because the
original and the all-hidden image are the same for every walk of every grid and are scored once. Its antithetic
partner walks the same cells in reverse, so each cell is measured once early and once late in every pair; the
pairs are the independent samples whose spread gives each value's standard error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .estimators import SHAPLEY, Shapley, walk_passes
from .grid import GridKey, grid_shape
from .plan import Fixed, JobPlan, Segment, original, pixel_cells

def walk_orders(cells: int, permutations: int, antithetic: bool, rng: np.random.Generator) -> np.ndarray:
    """(permutations, cells) orders of hiding; with ``antithetic`` each random order is followed by its reverse."""
    if not antithetic:
        return np.stack([rng.permutation(cells) for _ in range(permutations)])
    first = np.stack([rng.permutation(cells) for _ in range(permutations // 2)])
    return np.stack([first, first[:, ::-1]], axis=1).reshape(permutations, cells)


@dataclass(frozen=True)
class ShapleyWalks(Segment):
    """Permutation walks of one grid: walk p's job t hides the first t + 1 cells of ``orders[p]`` (t < N - 1; the
    walk's last image, everything hidden, is job ``everything``)."""

    ranks: torch.Tensor | None = None  # (P, N) long on the device: each cell's place in each walk
    everything: int = 1
    antithetic: bool = True

    def hidden(self, lo: int, hi: int) -> torch.Tensor:
        n = self.cells
        jobs = torch.arange(lo - self.start, hi - self.start, device=self.pixels.device)
        walk, step = jobs // (n - 1), jobs % (n - 1)
        out = self.ranks[walk] <= step[:, None]
        return torch.cat([out, out.new_zeros(out.shape[0], 1)], dim=1)

    def values(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ranks = self.ranks.cpu().numpy()
        p, n = ranks.shape
        s = scores.astype(np.float64)
        walk = np.concatenate([np.broadcast_to(s[0], (p, 1, s.shape[1])),
                               s[self.start : self.stop].reshape(p, n - 1, -1),
                               np.broadcast_to(s[self.everything], (p, 1, s.shape[1]))], axis=1)
        drops = walk[:, :-1] - walk[:, 1:]  # (P, N, K): the fall as the walk's t-th cell is hidden
        per_cell = np.take_along_axis(drops, ranks[:, :, None], axis=1)  # (P, N, K), cell order
        samples = per_cell.reshape(p // 2, 2, n, -1).mean(axis=1) if self.antithetic else per_cell
        value = samples.mean(axis=0)
        stderr = samples.std(axis=0, ddof=1) / math.sqrt(len(samples))
        return (value.T.reshape(-1, *self.shape).astype(np.float32),
                stderr.T.reshape(-1, *self.shape).astype(np.float32))


def shapley_plan(image_shape: tuple[int, int], region: tuple[int, int, int, int], grids: Sequence[GridKey],
                 estimator: Shapley, device: torch.device) -> JobPlan:
    """The original, the whole region hidden, then each grid's permutation walks, grids in the order given."""
    grids = tuple(grids)
    counts = estimator.counts(grids)
    seeds = np.random.SeedSequence(estimator.seed).spawn(len(grids))
    first = original(image_shape, device)
    region_pixels = pixel_cells(image_shape, region, 1, device)
    segments: list[Segment] = [first, Fixed(None, (1, 1), 1, 1, region_pixels, (True,))]
    for g, count, seed in zip(grids, counts, seeds):
        rows, cols = grid_shape(g)
        orders = walk_orders(rows * cols, count, estimator.antithetic, np.random.default_rng(seed))
        ranks = np.argsort(orders, axis=1)
        segments.append(ShapleyWalks(g, (rows, cols), segments[-1].stop, count * walk_passes(g),
                                     pixel_cells(image_shape, region, g, device),
                                     torch.from_numpy(ranks).to(device), 1, estimator.antithetic))
    details = (("permutations", counts), ("seed", estimator.seed), ("antithetic", estimator.antithetic))
    return JobPlan(tuple(segments), tuple(image_shape), SHAPLEY, details)
