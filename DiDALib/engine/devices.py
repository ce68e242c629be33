"""Device, precision and batch-size choices, made explicit and in one place."""

from __future__ import annotations

import time
from collections import defaultdict

import torch

#: CPU batch sizes tried on the first batches of real work. The best one depends on the model and the CPU's caches:
#: on a 2-core EPYC with channels_last, EfficientNet-B0 at 224 ran fastest at 4 (75-95 images/s) and at 8 and 16
#: at 50-68, while a tiny model at 64 x 64 kept speeding up to 64.
CPU_BATCH_CANDIDATES = (1, 2, 4, 8, 16, 32)
#: Largest automatic CUDA batch: beyond this throughput no longer grows for small classifiers.
MAX_CUDA_BATCH_SIZE = 2048

_PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str | torch.device = "auto", option: str | None = None) -> torch.device:
    """``"auto"`` gives CUDA when present, else the CPU; a named device must exist. ``option`` is how the caller's
    users name the setting (``"--device"`` on the command line): the fix in a message is then said their way."""
    fix = (f"use {option} cpu or {option} auto" if option else "use device='cpu' or 'auto'")
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
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda}): {fix}"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) found")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device 'mps' was asked for but is not available: {fix}")
    return dev


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype of the model: ``"auto"`` is float16 on CUDA and float32 elsewhere.

    float16, not bfloat16, because d is a small difference of two scores: on the demo model (CPU autocast, the
    8 default grids, one phantom B-scan of each of the 5 classes, both score modes) float16 kept every d within
    0.18-0.41 % of float32 (relative to the largest |d|), bfloat16's 8-bit mantissa only within 1.1-5.5 %, above
    the project's 1 % limit. bfloat16 stays available by name for models that overflow in float16.
    """
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in _PRECISIONS:
        raise ValueError(f"precision {precision!r} is not known: use 'auto', 'float32', 'bfloat16' or 'float16'")
    return _PRECISIONS[precision]


def describe_device(device: torch.device) -> str:
    """A one-line human description (the GPU's name on CUDA)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


class BatchSizeTuner:
    """Picks a CPU batch size from the first batches of real work, so that no pass is wasted on measuring: each
    candidate runs one untimed warm-up batch, then timed batches of at least ``images`` images in each of
    ``sweeps`` interleaved sweeps (interleaving spreads the machine's drift over all candidates); the size with the
    lowest time per image wins. Every batch's scores are kept like any other."""

    def __init__(self, candidates=CPU_BATCH_CANDIDATES, images: int = 16, sweeps: int = 2):
        self._plan = [(bs, False) for bs in candidates]
        for _ in range(sweeps):
            self._plan += [(bs, True) for bs in candidates for _ in range(max(1, -(-images // bs)))]
        self._seconds: dict[int, float] = defaultdict(float)
        self._images: dict[int, int] = defaultdict(int)
        self.best: int | None = None

    @property
    def size(self) -> int:
        """The batch size to use next."""
        return self._plan[0][0] if self._plan else self.best

    def start(self) -> float:
        return time.perf_counter()

    def record(self, images: int, started: float) -> None:
        """One batch of ``images`` finished; its time counts if it was a timed batch of the current candidate."""
        if not self._plan:
            return
        bs, timed = self._plan.pop(0)
        if timed:
            self._seconds[bs] += time.perf_counter() - started
            self._images[bs] += images
        if not self._plan:
            self.best = min(self._seconds, key=lambda b: self._seconds[b] / max(1, self._images[b]))
