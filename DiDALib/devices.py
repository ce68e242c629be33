"""Device, precision and batch-size choices, made explicit and in one place."""

from __future__ import annotations

import torch

#: CPU batch size: on a 2-core EPYC with channels_last, EfficientNet-B0 at 224 ran fastest at batches of 4 to 8
#: (about 75 images/s) and slower at 32 and above (about 43), since larger batches fall out of the CPU caches.
CPU_BATCH_SIZE = 8
#: Largest automatic CUDA batch: beyond this throughput no longer grows for small classifiers.
MAX_CUDA_BATCH_SIZE = 1024

_PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` gives CUDA when present, else the CPU; a named device must exist."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a torch device: use 'auto', 'cpu' or 'cuda'") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} was asked for but this torch sees no CUDA GPU "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda}): use device='cpu' or 'auto'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) found")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but is not available: use device='cpu' or 'auto'")
    return dev


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype of the model. ``"auto"`` is bfloat16 on CUDA cards that support it, float16 on older
    ones, and float32 on the CPU (where bfloat16 is an opt-in fast mode)."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if precision not in _PRECISIONS:
        raise ValueError(f"precision {precision!r} is not known: use 'auto', 'float32', 'bfloat16' or 'float16'")
    return _PRECISIONS[precision]


def describe_device(device: torch.device) -> str:
    """A one-line human description (the GPU's name on CUDA)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)
