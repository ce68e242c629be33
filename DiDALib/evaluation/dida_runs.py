"""DiDA results as a measurement uses them: one logit run serving both score modes, and any schedule's part of a
run over the union of several schedules (the passes they share are made once)."""

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
    if logits.score != "logits":
        raise ValueError(f"probability_result needs a logit-mode result, not {logits.score!r}")
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
