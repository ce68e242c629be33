"""How fast is each candidate on the run's own input: a few interleaved rounds, the best of each kept.

Every candidate runs the same batch (the run's masked images at the engine's batch size) once untimed (first-call
allocations and any compilation), then ``rounds`` times ``images`` images, in turn, so that a busy machine's
slow moments fall on all of them alike. It takes well under a tenth of one B-scan's passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

#: Images per candidate per round, and rounds.
TIMED_IMAGES, ROUNDS = 16, 2


def time_candidates(candidates: dict[str, Callable[[torch.Tensor], torch.Tensor]], batch: torch.Tensor,
                    images: int = TIMED_IMAGES, rounds: int = ROUNDS) -> dict[str, float]:
    """Images per second of each candidate on ``batch`` (the best round of each)."""
    best = dict.fromkeys(candidates, 0.0)
    with torch.inference_mode():
        for run in candidates.values():
            run(batch)
        for _ in range(rounds):
            for name, run in candidates.items():
                done, start = 0, time.perf_counter()
                while done < images:
                    run(batch)
                    done += batch.shape[0]
                best[name] = max(best[name], done / max(time.perf_counter() - start, 1e-9))
    return best
