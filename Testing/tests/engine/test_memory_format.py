"""The memory format by evidence (``engine/memory_format.py``): contiguous unless channels-last runs, agrees and is
faster; a model that fails in one format runs in the other; a batch that fails later is retried before any error."""

from __future__ import annotations

import pytest
import torch

from DiDALib.engine import memory_format as formats
from DiDALib.engine.core import DiDAEngine, ModelCallError


class ViewNet(torch.nn.Module):
    """Flattens with .view after a convolution: fails on a channels-last map."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3 * 8 * 8, 2)

    def forward(self, x):
        x = self.conv(x)
        return self.fc(x.view(x.size(0), -1))


class ChannelsLastOnly(torch.nn.Module):
    """Reads its map as (B, H, W, C) with .view: works only on channels-last memory (a layout some ported models
    assume)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3 * 8 * 8, 2)

    def forward(self, x):
        y = self.conv(x).permute(0, 2, 3, 1)
        return self.fc(y.view(y.shape[0], -1))


class FailsOnBigBatches(torch.nn.Module):
    """Runs in both formats on small batches but, in channels-last, not on batches above 2 (two input channels:
    with one, the two layouts are the same memory)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3 * 8 * 8, 2)

    def forward(self, x):
        if x.shape[0] > 2 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            raise RuntimeError("this layer has no channels-last kernel for batches above 2")
        return self.fc(self.conv(x).reshape(x.shape[0], -1))


def _image() -> torch.Tensor:
    return torch.rand(1, 8, 8)


def test_a_view_model_runs_contiguous_and_says_why():
    engine = DiDAEngine(ViewNet(), device="cpu", score="logits")
    engine.explain(_image(), grids=(2, 4))
    assert engine.memory_format is torch.contiguous_format
    assert "channels-last it fails" in engine.memory_format_note


def test_a_model_that_runs_only_in_channels_last_gets_it():
    model = ChannelsLastOnly()
    engine = DiDAEngine(model, device="cpu", score="logits")
    x = _image()
    result = engine.explain(x, grids=(2,))
    assert engine.memory_format is torch.channels_last and "contiguous format the model fails" in \
        engine.memory_format_note
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    # the same scores as the model run by hand in its own layout
    with torch.inference_mode():
        base = model(x[None].contiguous(memory_format=torch.channels_last))[0]
    assert torch.allclose(torch.from_numpy(result.base_scores), base, atol=1e-6)


def test_asking_for_channels_last_still_runs_a_view_model():
    """A format asked for is kept while it works; a batch that fails in it runs in the other (nothing reported)."""
    engine = DiDAEngine(ViewNet(), device="cpu", score="logits", channels_last=True)
    reference = DiDAEngine(ViewNet(), device="cpu", score="logits", channels_last=False)
    reference.model.load_state_dict(engine.model.state_dict())
    x = _image()
    got, want = engine.explain(x, grids=(2, 4)), reference.explain(x, grids=(2, 4))
    assert engine.memory_format is torch.contiguous_format and "failed" in engine.memory_format_note
    assert all(torch.equal(torch.from_numpy(got.deltas[n]), torch.from_numpy(want.deltas[n])) for n in (2, 4))


def test_a_batch_that_fails_later_is_retried_in_the_other_format():
    engine = DiDAEngine(FailsOnBigBatches(), device="cpu", score="logits", channels_last=True, batch_size=4)
    engine.explain(torch.rand(2, 8, 8), grids=(3,))
    assert engine.memory_format is torch.contiguous_format


def test_a_model_failing_in_both_formats_reports_its_own_error():
    def broken(x):
        raise RuntimeError("the weights were never loaded")

    with pytest.raises(ModelCallError, match="the weights were never loaded"):
        DiDAEngine(broken, device="cpu").explain(_image(), grids=(2,))


def test_probe_prefers_contiguous_unless_channels_last_is_clearly_faster(monkeypatch):
    """The timing decides only from SPEEDUP up: equal speed keeps contiguous."""
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    x = torch.rand(8, 1, 8, 8)
    model(x)
    seconds = {torch.contiguous_format: 1.0, torch.channels_last: 1.0}

    calls = []

    def fake_run(call, model, x, fmt):
        formats.convert(model, fmt)
        calls.append(fmt)
        slow = fmt is torch.channels_last and calls.count(fmt) == 1 + formats.ROUNDS  # its last timed call
        return call(x.contiguous(memory_format=fmt)), seconds[fmt] * (2.0 if slow and spike else 1.0)

    monkeypatch.setattr(formats, "_run", fake_run)
    spike = False
    assert formats.probe(model, model, x).format is torch.contiguous_format
    seconds[torch.channels_last] = 1.0 / (formats.SPEEDUP + 0.05)
    calls.clear()
    choice = formats.probe(model, model, x)
    assert choice.format is torch.channels_last and "as fast" in choice.reason
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    spike, calls[:] = True, []  # one slow channels-last call: no consistent gain, contiguous
    assert formats.probe(model, model, x).format is torch.contiguous_format


def test_probe_keeps_contiguous_when_channels_last_changes_the_outputs():
    class RawMemory(torch.nn.Module):  # reads the raw buffer, ignoring strides: wrong in channels-last
        def __init__(self):
            super().__init__()
            self.register_buffer("gain", torch.ones(1, 1, 1, 1))

        def forward(self, x):
            x = x * self.gain
            flat = torch.as_strided(x, (x.shape[0], x[0].numel()), (x[0].numel(), 1))
            return flat[:, :3] * 1.0

    choice = formats.probe(RawMemory(), RawMemory(), torch.rand(8, 2, 4, 4))
    assert choice.format is torch.contiguous_format and "differ" in choice.reason


def test_probe_never_feeds_the_model_the_same_tensor_twice():
    """A model that normalises its input in place (x.sub_) must see a fresh copy on every call."""
    seen = []

    class InPlace(torch.nn.Conv2d):
        def forward(self, x):
            seen.append(float(x.sum()))
            x.sub_(1.0)
            return super().forward(x).mean(dim=(2, 3))

    model = InPlace(1, 2, 3)
    formats.probe(model, model, torch.ones(8, 1, 4, 4))
    assert len(seen) == 2 + 2 * formats.ROUNDS and len(set(seen)) == 1


def test_only_models_with_convolution_weights_are_probed():
    calls = []

    def function(x):
        calls.append(x.shape[0])
        return x.mean(dim=(2, 3))

    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    for model in (function, linear):
        assert formats.probe(model, model, torch.ones(8, 1, 4, 4)).format is torch.contiguous_format
    assert calls == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; the same probe and retry are covered on "
                    "the CPU by the tests above (Testing/benchmarks/gpu_checks.sh runs this on a lent GPU)")
def test_on_cuda_the_same_probe_decides_and_view_models_run():
    """On CUDA channels-last is often faster for convolutions (cuDNN's NHWC kernels): the probe may choose it, but
    only where the model runs in it; a .view model still runs, contiguous."""
    view = DiDAEngine(ViewNet(), device="cuda", score="logits")
    view.explain(_image(), grids=(2, 4))
    assert view.memory_format is torch.contiguous_format and "fails" in view.memory_format_note
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(32, 3))
    engine = DiDAEngine(conv, device="cuda", score="logits")
    engine.explain(torch.rand(1, 64, 64), grids=(3,))
    assert engine.memory_format in (torch.contiguous_format, torch.channels_last)
    print(f"CUDA memory format: {engine.memory_format_note}")
