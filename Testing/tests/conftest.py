"""Shared fixtures: the repository root on sys.path, deterministic torch, small reference models, a slicer-core
scene with a tiny model package and the worker process that runs it, and the softmax arithmetic the precision checks
share."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def _dida_cache(tmp_path_factory):
    """DiDA's cache (the ONNX exports of runtime 'auto') in a folder of this test session, never the user's own;
    the command-line and worker processes the tests start inherit it."""
    folder = tmp_path_factory.mktemp("dida-cache")
    before = os.environ.get("DIDA_CACHE_DIR")
    os.environ["DIDA_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("DIDA_CACHE_DIR", None)
    else:
        os.environ["DIDA_CACHE_DIR"] = before


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


@pytest.fixture
def env():
    """A fresh slicer-core scene with Slicer's logics (the scenarios' environment, which can save and reload)."""
    from DiDALib.mrml.selftest.headless import HeadlessEnvironment

    with HeadlessEnvironment() as headless:
        yield headless


@pytest.fixture(scope="session")
def mrml_package(tmp_path_factory) -> Path:
    """The tiny model package the MRML scenarios run."""
    from DiDALib.mrml.selftest.fixtures import make_test_package

    return make_test_package(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def worker(tmp_path_factory):
    """The DiDA worker process the scene tests share: started by the first test that runs DiDA, kept warm for the
    others (as the Slicer module keeps it), and closed at the end (its folder and every job folder removed)."""
    from DiDALib.worker.client import WorkerClient

    client = WorkerClient(home=tmp_path_factory.mktemp("worker"))
    yield client
    client.close()
    assert not client.home.exists(), "closing the worker left its folder behind"


@pytest.fixture
def drawn(monkeypatch) -> list[str]:
    """Every text the PNG figures draw in a box (captions, headers, the bands below a figure), as drawn."""
    from DiDALib.reports import figures

    texts: list[str] = []
    real = figures._label
    monkeypatch.setattr(figures, "_label", lambda draw, xy, text, font, anchor, **kw: texts.append(text)
                        or real(draw, xy, text, font, anchor, **kw))
    return texts


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


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in the input's precision."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def probability_deltas(base_logits: np.ndarray, logit_deltas: np.ndarray) -> np.ndarray:
    """Probability d (K, n, n) from the base logits (K,) and the logit d (K, n, n): a masked image's logits are
    ``base - d``, so both score modes follow from one set of logits."""
    masked = base_logits[:, None, None] - logit_deltas
    return softmax(base_logits)[:, None, None] - np.moveaxis(softmax(np.moveaxis(masked, 0, -1)), -1, 0)
