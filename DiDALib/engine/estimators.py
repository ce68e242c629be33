"""The estimators a run can use, in plain values (numpy only, so the Slicer module and run records use them without
torch): ``"leave-one-out"`` (the paper's d: a cell's score change when it alone is hidden) and ``"shapley"`` (a
cell's Shapley value, from permutation walks: ``shapley.py``), with the Shapley estimator's settings, its default
share of the paper's budget, and the passes each costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

from .grid import GridKey, grid_shape, passes_per_image

#: The paper's estimator: a cell's d is the score change when that cell alone is hidden.
LEAVE_ONE_OUT = "leave-one-out"
SHAPLEY = "shapley"
ESTIMATORS: tuple[str, ...] = (LEAVE_ONE_OUT, SHAPLEY)
#: The paper's cost per B-scan (the original and 1,736 masked images): the default budget of a Shapley run.
PAPER_BUDGET = 1737
#: The Shapley schedule's grids: a coarse 5 x 5 (whose map comes first, after 2 + 38 x 24 passes) and a 9 x 9, with
#: ``split_budget``'s 38 and 10 permutations (1,714 passes per image). Chosen among 6 schedules of 1,602-1,730 passes
#: (7; 9; 7 and 11 two ways; 5 and 9; 7 at 2 x 2 half-cell offsets), 2 readouts and 3 score modes on the faithfulness
#: benchmark's selection phantoms (seed 4099), never on those it reports (docs/faithfulness.md).
SHAPLEY_GRIDS: tuple[int, ...] = (5, 9)


def _count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{what} {value!r} is not a whole number")
    return int(value)


@dataclass(frozen=True)
class Shapley:
    """The Shapley estimator's settings: ``permutations`` per grid (coarse to fine; one number for every grid;
    None: ``split_budget`` spends ``budget`` passes), ``seed`` of the permutations (the same for every image, so
    an image's values do not depend on the others explained with it), and ``antithetic`` pairs (each permutation
    followed by its reverse; then every count must be even)."""

    permutations: tuple[int, ...] | int | None = None
    seed: int = 0
    antithetic: bool = True
    budget: int = PAPER_BUDGET

    def __post_init__(self):
        _count(self.seed, "seed")
        if _count(self.budget, "budget") < 3:
            raise ValueError(f"budget {self.budget} is too small: a Shapley run needs at least 3 passes")
        if self.permutations is not None and not isinstance(self.permutations, Integral):
            object.__setattr__(self, "permutations", tuple(self.permutations))

    def counts(self, grids: Sequence[GridKey]) -> tuple[int, ...]:
        """Permutations of each grid, checked: at least 2 independent samples (pairs, or permutations without
        antithetic sampling) per grid, so every value has a standard error."""
        grids = tuple(grids)
        if self.permutations is None:
            return split_budget(grids, self.budget, self.antithetic)
        counts = ((self.permutations,) * len(grids) if isinstance(self.permutations, Integral)
                  else self.permutations)
        counts = tuple(_count(c, "permutations") for c in counts)
        if len(counts) != len(grids):
            raise ValueError(f"permutations has {len(counts)} count(s) for {len(grids)} grid(s): give one per grid "
                             "(coarse to fine) or one for all")
        step = 2 if self.antithetic else 1
        for g, c in zip(grids, counts):
            if c < 2 * step or c % step:
                raise ValueError(f"grid {g}: {c} permutation(s): give at least {2 * step}"
                                 + (", an even number (antithetic pairs)" if step == 2 else ""))
        return counts


def as_estimator(value) -> str | Shapley:
    """``LEAVE_ONE_OUT`` (also for None) or a ``Shapley`` (also for the name ``"shapley"``: its defaults)."""
    if value is None or value == LEAVE_ONE_OUT:
        return LEAVE_ONE_OUT
    if isinstance(value, Shapley):
        return value
    if value == SHAPLEY:
        return Shapley()
    raise ValueError(f"estimator {value!r} is not known: use {', '.join(map(repr, ESTIMATORS))} or a Shapley(...)")


def walk_passes(grid: GridKey) -> int:
    """Passes of one permutation walk of a grid: one per cell but the last (the all-hidden image is shared)."""
    rows, cols = grid_shape(grid)
    return rows * cols - 1


def shapley_passes(grids: Sequence[GridKey], counts: Sequence[int]) -> int:
    """Model passes per image: the original, the all-hidden image, and every walk of every grid."""
    return 2 + sum(c * walk_passes(g) for g, c in zip(grids, counts))


def estimator_passes(grids: Sequence[GridKey], estimator=LEAVE_ONE_OUT) -> int:
    """Model passes per image of ``grids`` with ``estimator`` (``as_estimator``'s forms)."""
    estimator = as_estimator(estimator)
    if isinstance(estimator, Shapley):
        return shapley_passes(grids, estimator.counts(grids))
    return passes_per_image(grids)


def describe(grids: Sequence[GridKey], estimator) -> dict:
    """The estimator in plain values, as run records give it: its name, and for Shapley the permutations of each
    grid, the seed, antithetic sampling and the passes per image."""
    estimator = as_estimator(estimator)
    if not isinstance(estimator, Shapley):
        return {"estimator": LEAVE_ONE_OUT}
    counts = estimator.counts(grids)
    return {"estimator": SHAPLEY, "shapley": {
        "permutations": {str(g): c for g, c in zip(grids, counts)}, "seed": estimator.seed,
        "antithetic": estimator.antithetic, "passes_per_image": shapley_passes(grids, counts)}}


def split_budget(grids: Sequence[GridKey], budget: int = PAPER_BUDGET, antithetic: bool = True) -> tuple[int, ...]:
    """Permutations per grid that spend at most ``budget`` passes: an equal share of passes per grid, each a whole
    number of samples (pairs when ``antithetic``), at least 2 of them; what is left goes, a sample at a time, to the
    coarsest grid it still pays for. Raises ``ValueError`` when even 2 samples per grid exceed the budget."""
    grids = tuple(grids)
    step = 2 if antithetic else 1
    cost = [step * walk_passes(g) for g in grids]
    share = (budget - 2) / len(grids)
    samples = [max(2, int(share // c)) if c else 2 for c in cost]
    spent = 2 + sum(s * c for s, c in zip(samples, cost))
    if spent > budget:
        raise ValueError(f"grids {[str(g) for g in grids]} need {spent} passes for 2 samples each, more than the "
                         f"budget of {budget}: use fewer or coarser grids, or give the permutations yourself")
    while True:
        fits = [i for i, c in enumerate(cost) if c and spent + c <= budget]
        if not fits:
            break
        spent += cost[fits[0]]
        samples[fits[0]] += 1
    return tuple(s * step for s in samples)
