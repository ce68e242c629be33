"""``explain_volume`` refuses images that cannot share batches with a clear ValueError, before they meet in one
(``torch.cat`` used to fail deep inside the engine), and names a model that breaks on a batch."""

from __future__ import annotations

import pytest
import torch

from DiDALib.engine.core import DiDAEngine


def _engine(**kwargs) -> DiDAEngine:
    return DiDAEngine(lambda x: x.flatten(1)[:, :3], device="cpu", batch_size=64, **kwargs)


@pytest.mark.parametrize("second,match", [
    ((1, 30, 32), "differ in height x width"),
    ((3, 32, 32), "differ in their number of channels"),
])
def test_images_of_different_shapes_in_one_volume(second, match):
    images = [torch.rand(1, 32, 32), torch.rand(*second)]
    with pytest.raises(ValueError, match=match) as info:
        list(_engine().explain_volume(images, grids=(2,)))
    assert "image 1" in str(info.value) and "same shape" in str(info.value)


def test_a_model_that_raises_is_named():
    from DiDALib.engine.core import ModelCallError

    def broken(x):
        raise RuntimeError("deep inside\nthe real reason")

    with pytest.raises(ModelCallError, match="the model failed on a batch .* the real reason"):
        DiDAEngine(broken, device="cpu").explain(torch.rand(1, 16, 16), grids=(2,))
