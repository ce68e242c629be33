"""Every runtime's d equal torch's within the bound (``runtime/probe.py``): aligned and shifted grids, every fill
and every score mode, on a small CNN written as people write them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from DiDALib import DiDAEngine
from DiDALib.engine.schedule import offset_grids
from DiDALib.engine.scores import SCORE_MODES
from DiDALib.runtime.probe import EXACTNESS_BOUND, RESOLUTION_ULPS

from runtime_models import SmallCNN, trained

FILLS = (0.0, "mean", "blur", "background")
GRIDS = {"aligned": (3, 5), "shifted": offset_grids((4,), 2)}


def _image() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    img = torch.rand((1, 32, 32), generator=g) * 2 - 1
    img[:, 10:18, 12:22] += 1.5  # a bright "lesion"
    return img


def _worst_ratio(ref, new, score) -> float:
    """The largest |d difference| / largest |d| over every grid, worst class, rounding ignored as the probe does."""
    worst = 0.0
    for g in ref.deltas:
        a, b = ref.deltas[g].astype(np.float64), new.deltas[g].astype(np.float64)
        diff = np.abs(a - b).reshape(len(a), -1).max(axis=1)
        resolution = RESOLUTION_ULPS * np.spacing(np.abs(ref.base_scores).astype(np.float32)).astype(np.float64)
        peak = np.abs(a).reshape(len(a), -1).max(axis=1)
        diff = np.where(diff <= resolution, 0.0, diff)
        worst = max(worst, float(np.max(np.where(diff == 0, 0.0, diff / peak))))
    return worst


def _check(runtime: str) -> None:
    model = trained(SmallCNN())
    image = _image()
    torch_engine = DiDAEngine(model, device="cpu", runtime="torch", batch_size=16)
    engine = DiDAEngine(model, device="cpu", runtime=runtime, batch_size=16)
    for fill in FILLS:
        for score in SCORE_MODES:
            for engine_ in (torch_engine, engine):  # fill and score act outside the model: one runtime for all
                engine_.fill, engine_.score = fill, score
            for name, grids in GRIDS.items():
                ref = torch_engine.explain(image, grids=grids)
                new = engine.explain(image, grids=grids)
                assert engine.runtime_choice.name == runtime, engine.runtime_choice.reason
                np.testing.assert_array_equal(np.argsort(ref.base_scores), np.argsort(new.base_scores))
                ratio = _worst_ratio(ref, new, score)
                assert ratio <= EXACTNESS_BOUND, (runtime, fill, score, name, ratio)


def test_onnxruntime_d_equal_torch_d():
    pytest.importorskip("onnxruntime")
    _check("onnxruntime")


def test_openvino_d_equal_torch_d():
    pytest.importorskip("openvino", reason="OpenVINO is an optional runtime ('fast' and 'test' extras)")
    _check("openvino")


@pytest.mark.slow
def test_compiled_d_equal_torch_d():
    """torch.compile (Inductor's C++ kernels: this needs a C++ compiler, as on every CI machine here)."""
    _check("compile")


def test_torch_runtime_is_the_engine_path_bit_for_bit():
    """``runtime="torch"`` builds nothing and probes nothing: every d is what the model itself gives on the
    engine's own masked batch."""
    from DiDALib.engine.masks import fill_image, mask_batch
    from DiDALib.engine.plan import leave_one_out_plan
    from DiDALib.engine.scores import transform_scores

    model = trained(SmallCNN()).eval()
    image = _image()
    engine = DiDAEngine(model, device="cpu", runtime="torch", batch_size=1 + 9 + 25, fill="background")
    result = engine.explain(image, grids=(3, 5))
    assert engine.runtime_choice.name == "torch" and engine.runtime_choice.forward is None
    assert engine._forward_fn is engine.model
    plan = leave_one_out_plan((32, 32), (0, 0, 32, 32), (3, 5), torch.device("cpu"))  # the original, then cells
    x = mask_batch(image[None], fill_image(image, "background")[None], plan.masks(0, plan.num_jobs),
                   memory_format=engine.memory_format)
    with torch.inference_mode():
        s = transform_scores(model(x), "probabilities").numpy()
    np.testing.assert_array_equal(result.base_scores, s[0])
    np.testing.assert_array_equal(result.deltas[3], (s[0][None] - s[1:10]).astype(np.float32).T.reshape(-1, 3, 3))
