"""Reduced precision keeps d within 1 % of float32 (relative to the largest |d|) on a real, trained timm model.

The CUDA test checks what GPU users get by default (``precision="auto"``). Where there is no GPU, the same
float16 autocast numerics are checked on the CPU, so the behaviour is covered in CI either way.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import probability_deltas

from DiDALib import DiDAEngine
from DiDALib.models.package import load_model_package, phantom_model_path
from DiDALib.models.preprocess import preprocess_bscan
from DiDALib.phantom import make_bscan


def _probability_deltas(result) -> dict[int, np.ndarray]:
    """Probability d of every grid from a logits run, so both score modes come from one run."""
    base = result.base_scores.astype(np.float64)
    return {n: probability_deltas(base, d.astype(np.float64)) for n, d in result.deltas.items()}


def _relative_errors(device: str, precision: str, label: str, grids) -> dict[str, float]:
    package = load_model_package(phantom_model_path())
    bscan, _ = make_bscan(label, np.random.default_rng(11))
    x, region = preprocess_bscan(bscan, package.spec)
    ref = DiDAEngine(package.model, device=device, score="logits", precision="float32").explain(x, grids, region)
    low = DiDAEngine(package.model, device=device, score="logits", precision=precision)
    assert low.dtype != torch.float32
    got = low.explain(x, grids, region)
    assert all(got.deltas[n].dtype == np.float32 for n in grids)
    errors = {}
    for mode, a, b in (("logits", got.deltas, ref.deltas),
                       ("probabilities", _probability_deltas(got), _probability_deltas(ref))):
        peak = max(float(np.abs(b[n]).max()) for n in grids)
        errors[mode] = max(float(np.abs(a[n] - b[n]).max()) for n in grids) / peak
    return errors


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; test_float16_numerics_on_cpu covers "
                    "the same float16 autocast path on the CPU")
@pytest.mark.parametrize("label", ["wet_amd", "macular_oedema", "normal"])
def test_cuda_default_precision_within_one_percent(label):
    errors = _relative_errors("cuda", "auto", label, (7, 9, 11, 13, 15, 17, 19, 21))
    print(f"cuda auto precision, {label}: " + ", ".join(f"{m} {100 * e:.3f} %" for m, e in errors.items()))
    assert max(errors.values()) <= 0.01


@pytest.mark.parametrize("label", ["wet_amd", "macular_oedema"])
def test_float16_numerics_on_cpu(label):
    errors = _relative_errors("cpu", "float16", label, (7, 13))
    print(f"cpu float16 autocast, {label}: " + ", ".join(f"{m} {100 * e:.3f} %" for m, e in errors.items()))
    assert max(errors.values()) <= 0.01
