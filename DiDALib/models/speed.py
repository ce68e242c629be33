"""How fast a model is on its own: the figure a model card gives beside its accuracy (DiDA makes ~1,700 passes
per B-scan with the paper's grids, so images/s decides a run's time)."""

from __future__ import annotations

import time

import torch

from .spec import ModelSpec


def images_per_second(model: torch.nn.Module, spec: ModelSpec, batch: int = 8, rounds: int = 3,
                      seconds: float = 1.0) -> float:
    """Images/s of ``model`` alone on zero inputs of ``spec``'s shape at DiDA's CPU batch size (channels-last,
    float32, inference mode): the best of ``rounds`` runs of ``seconds`` each, which on a shared machine comes
    closest to the unloaded speed. The model is left in eval mode and contiguous memory format."""
    model = model.eval().to(memory_format=torch.channels_last)
    x = torch.zeros((batch, spec.channels, *spec.input_size)).contiguous(memory_format=torch.channels_last)
    best = 0.0
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        for _ in range(rounds):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                model(x)
                n += batch
            best = max(best, n / (time.perf_counter() - t0))
    model.to(memory_format=torch.contiguous_format)
    return best
