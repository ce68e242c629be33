"""Which memory format the engine gives a model: chosen by evidence on the real input, never assumed.

Channels-last is not safe by default: ``x.view(x.size(0), -1)`` after a convolution, one of the commonest lines in
PyTorch classifiers, raises on a channels-last tensor. Nor is it a gain by default: on this project's 2-core CPU it
ran EfficientNet-B0, ResNet-18 and ConvNeXt-nano at 0.67-0.99 x the speed of the contiguous layout (batch 8). So
the engine starts contiguous and switches to channels-last only where a short probe on a real batch shows that the
model runs in it, gives the same outputs, and is clearly faster (``SPEEDUP``; on the CPU and on CUDA alike).
A model that fails in one format is tried in the other before any error is reported (``other``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

CONTIGUOUS, CHANNELS_LAST = torch.contiguous_format, torch.channels_last
NAMES = {CONTIGUOUS: "contiguous", CHANNELS_LAST: "channels-last"}
#: Channels-last must be this much faster to be chosen, in every timed call: its slowest call at least ``SPEEDUP``
#: times as fast as the fastest contiguous one. Interleaved timings of a tiny model on a loaded machine vary by tens
#: of per cent, and the two formats' float32 sums differ in the last bits (about 1e-7 of d): a choice made by noise
#: would make two identical runs differ. Only a clear, consistent gain is worth that.
SPEEDUP = 1.2
#: Masked images of the first image in the probe's batch: on the CPU a batch of 4 already runs at the model's pace
#: (8 probe calls of 4 cost 32 passes, 2 % of the paper's 1,737 per B-scan); a GPU needs a larger batch to show it.
PROBE_IMAGES = {"cpu": 4, "cuda": 32}


def probe_images(device: torch.device) -> int:
    """How many masked images the probe's batch holds on ``device``."""
    return PROBE_IMAGES.get(device.type, 4)
#: Timed calls per format (after one untimed warm-up each), interleaved; the fastest of each counts.
ROUNDS = 3
#: Outputs of the two formats must agree to this relative tolerance (float32 kernels differ in the last bits;
#: a model that reads raw memory ignoring strides differs by far more).
AGREE = 1e-3
#: The same for float16 or bfloat16 outputs (CUDA's autocast): their 8-11 bit mantissas round at 1e-3 to 4e-3.
AGREE_REDUCED = 2e-2


@dataclass(frozen=True)
class FormatChoice:
    """The memory format to use and why, in words for run records."""

    format: torch.memory_format
    reason: str

    @property
    def name(self) -> str:
        return NAMES[self.format]


def other(fmt: torch.memory_format) -> torch.memory_format:
    """The other of the two formats."""
    return CHANNELS_LAST if fmt is CONTIGUOUS else CONTIGUOUS


def convert(model, fmt: torch.memory_format) -> None:
    """Put a module's 4-D weights in ``fmt`` (a plain function has none)."""
    if isinstance(model, torch.nn.Module):
        model.to(memory_format=fmt)


def has_layout(model) -> bool:
    """Whether the memory format can change how ``model`` runs: a module with 4-D weights (convolutions). A plain
    function, an ONNX session or a network of linear layers only pays for a copy in channels-last."""
    if not isinstance(model, torch.nn.Module):
        return False
    return any(t.dim() == 4 for t in (*model.parameters(), *model.buffers()))


def _run(call: Callable[[torch.Tensor], object], model, x: torch.Tensor, fmt: torch.memory_format):
    """(outputs, seconds) of one call in ``fmt``, on a fresh copy (a model may change its input in place)."""
    convert(model, fmt)
    batch = x.clone(memory_format=fmt)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    started = time.perf_counter()
    out = call(batch)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return out, time.perf_counter() - started


def _agree(a, b) -> bool:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    tolerance = AGREE if a.dtype in (torch.float32, torch.float64) else AGREE_REDUCED
    a, b = a.detach().float(), b.detach().float()
    scale = max(float(a.abs().max()), 1e-6) if a.numel() else 1.0
    return bool(((a - b).abs() <= tolerance * scale).all())


def probe(call: Callable[[torch.Tensor], object], model, x: torch.Tensor) -> FormatChoice:
    """Choose the format for ``model`` (called through ``call``) on the real batch ``x`` (B, C, H, W; repeated up to
    ``probe_images``): contiguous unless channels-last runs, agrees and is ``SPEEDUP`` times as fast in every timed
    call. A model that fails in contiguous format but runs in channels-last gets channels-last; one that fails in
    both keeps contiguous (its first call then reports the error). The model is left in the chosen format."""
    if x.ndim != 4 or x.device.type == "mps":  # MPS kernels have no channels-last fast path
        convert(model, CONTIGUOUS)
        return FormatChoice(CONTIGUOUS, "contiguous (the device has no channels-last kernels)")
    if not has_layout(model):
        return FormatChoice(CONTIGUOUS, "contiguous (the model has no 4-D weights whose layout could change)")
    size = probe_images(x.device)
    if x.shape[0] < size:  # timed on a batch of the probe's size, not on one image
        x = x.repeat(-(-size // x.shape[0]), 1, 1, 1)[:size]
    results = {}
    for fmt in (CONTIGUOUS, CHANNELS_LAST):
        try:
            results[fmt] = _run(call, model, x, fmt)  # the warm-up
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 -- the model's own failure decides the format, nothing else
            results[fmt] = exc
    fails = {fmt: r for fmt, r in results.items() if isinstance(r, Exception)}
    if len(fails) == 2 or CHANNELS_LAST in fails:
        convert(model, CONTIGUOUS)
        why = "" if len(fails) == 2 else f" (in channels-last it fails: {short_error(fails[CHANNELS_LAST])})"
        return FormatChoice(CONTIGUOUS, "contiguous" + why)
    if CONTIGUOUS in fails:
        convert(model, CHANNELS_LAST)
        return FormatChoice(CHANNELS_LAST, f"channels-last (in contiguous format the model fails: "
                                           f"{short_error(fails[CONTIGUOUS])})")
    if not _agree(results[CONTIGUOUS][0], results[CHANNELS_LAST][0]):
        convert(model, CONTIGUOUS)
        return FormatChoice(CONTIGUOUS, "contiguous (in channels-last the model's outputs differ)")
    times = {CONTIGUOUS: [], CHANNELS_LAST: []}
    for _ in range(ROUNDS):
        for fmt in (CONTIGUOUS, CHANNELS_LAST):
            times[fmt].append(_run(call, model, x, fmt)[1])
    ratio = min(times[CONTIGUOUS]) / max(max(times[CHANNELS_LAST]), 1e-12)  # the worst case for channels-last
    chosen = CHANNELS_LAST if ratio >= SPEEDUP else CONTIGUOUS
    convert(model, chosen)
    return FormatChoice(chosen, f"{NAMES[chosen]} (channels-last's slowest call ran {ratio:.2f} x as fast as "
                                f"contiguous's fastest on a batch of {x.shape[0]}; it is chosen from {SPEEDUP} x)")


def in_other_format(call: Callable[[torch.Tensor], object], model, x: torch.Tensor, fmt: torch.memory_format,
                    exc: Exception) -> tuple[object, FormatChoice] | None:
    """A batch ``x`` that failed in ``fmt`` (with ``exc``), run in the other format: its outputs and the new choice
    (the model left in it), or None when it fails there too (the model left in ``fmt``)."""
    new = other(fmt)
    try:
        convert(model, new)
        out = call(x.contiguous(memory_format=new))
    except torch.OutOfMemoryError:
        raise
    except Exception:  # noqa: BLE001 -- the first format's error is the one to report
        convert(model, fmt)
        return None
    return out, FormatChoice(new, f"{NAMES[new]} (in {NAMES[fmt]} format the model failed: {short_error(exc)})")


def short_error(exc: BaseException) -> str:
    """An exception in a few words: its type and the last line of its message (TorchScript's is long)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1][:160] if lines else ''}"
