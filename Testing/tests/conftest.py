"""Shared fixtures: the repository root on sys.path, deterministic torch, small reference models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


@pytest.fixture
def repo_root() -> Path:
    return ROOT


class LinearScorer(torch.nn.Module):
    """Scores that are linear in the pixels: ``z_k = sum_p W_k(p) x(p) + b_k``, so d is known in closed form."""

    def __init__(self, shape: tuple[int, int, int], classes: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(classes, *shape, generator=g, dtype=torch.float64).float())
        self.bias = torch.nn.Parameter(torch.randn(classes, generator=g, dtype=torch.float64).float())
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return torch.einsum("bchw,kchw->bk", x.double(), self.weight.double()).float() + self.bias
