"""DiDA results as a measurement uses them: one logit run serving both score modes (or every mode, for any
estimator: ``all_modes_model``), and any schedule's part of a run over the union of several schedules (the passes
they share are made once)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..engine.grid import GridKey
from ..engine.result import DiDAResult


def _softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def probability_result(logits: DiDAResult) -> DiDAResult:
    """The probability-mode result of a logit-mode one: a masked image's logits are ``base - d``, so its softmax
    probabilities, and the probability d, follow exactly (float64 here, float32 stored)."""
    if logits.score != "logits" or logits.estimator != "leave-one-out":
        raise ValueError(f"probability_result needs a leave-one-out logit-mode result, not {logits.estimator} "
                         f"{logits.score!r} (Shapley values of one mode do not give another's: all_modes_model)")
    base = logits.base_scores.astype(np.float64)
    p0 = _softmax(base)
    deltas = {}
    for g, d in logits.deltas.items():
        masked = base[:, None, None] - d.astype(np.float64)
        deltas[g] = (p0[:, None, None] - _softmax(masked, axis=0)).astype(np.float32)
    return replace(logits, base_scores=p0.astype(np.float32), deltas=deltas, score="probabilities")


def part(result: DiDAResult, grids: Sequence[GridKey]) -> DiDAResult:
    """The result a run with only ``grids`` would have given (every grid must be in ``result``)."""
    missing = [str(g) for g in grids if g not in result.deltas]
    if missing:
        raise ValueError(f"grids {missing} were not computed: this result has {[str(g) for g in result.grids]}")
    return replace(result, deltas={g: result.deltas[g] for g in grids})


#: The score modes ``all_modes_model`` stacks, in its output order.
STACKED_MODES: tuple[str, ...] = ("logits", "probabilities", "log-odds")


def all_modes_model(model):
    """A model whose (B, 3K) outputs are ``model``'s logits, probabilities and log-odds side by side: a logit-mode
    run of it gives every mode's values from the same passes, also for estimators whose values cannot be converted
    between modes afterwards (Shapley values: ``split_modes``)."""
    import torch

    from ..engine.scores import transform_scores

    def stacked(x):
        z = model(x).float()
        return torch.cat([transform_scores(z, m) for m in STACKED_MODES], dim=1)

    return stacked


def split_modes(result: DiDAResult) -> dict[str, DiDAResult]:
    """The per-mode results of a logit-mode run of ``all_modes_model``."""
    k = result.num_classes // len(STACKED_MODES)
    out = {}
    for i, mode in enumerate(STACKED_MODES):
        cut = slice(i * k, (i + 1) * k)
        out[mode] = replace(result, base_scores=result.base_scores[cut], deltas={g: d[cut] for g, d in
                                                                                  result.deltas.items()},
                            stderr=None if result.stderr is None else {g: s[cut] for g, s in result.stderr.items()},
                            score=mode, class_names=None)
    return out
