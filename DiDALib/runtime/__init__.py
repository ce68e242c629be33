"""Runtimes for the engine's model passes on a CPU: the same classifier, run by whichever exact runtime is fastest.

DiDA passes some 1,700 masked images of one fixed shape through one model per B-scan: the ideal case for an
ahead-of-time runtime. ``runtime="auto"`` (``choose.py``) exports a torch model to ONNX once (``export.py``,
cached by the package's content in the user's cache folder: ``cache.py``), runs a probe batch of the B-scan's own
masked images through every candidate and keeps only those whose d equals torch's within ``probe.EXACTNESS_BOUND``
(``probe.py``), times them briefly on that input (``timing.py``) and keeps the fastest; any failure leaves the
model on torch with one sentence saying why. One module per runtime builds its callable on (B, C, H, W) batches:
``onnxruntime_runtime``, ``openvino_runtime``, ``compiled`` (``torch.compile``); ``registry.py`` names them,
``threads.py`` gives each the machine's physical cores. ``torch`` is the engine's own path, unchanged.

This module needs no torch (the command line's parser and the Slicer module read the names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: The runtime names a user can choose: ``auto`` picks the fastest exact one (the default of ``dida explain``, the
#: worker and the Slicer module), ``torch`` is eager PyTorch as before, the others are forced.
RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnxruntime", "openvino", "compile")


def check_runtime(name: str) -> str:
    """``name`` if it is a known runtime, else a ValueError naming them."""
    if name not in RUNTIMES:
        raise ValueError(f"runtime {name!r} is not known: use {', '.join(RUNTIMES)}")
    return name


@dataclass(frozen=True)
class RuntimeRequest:
    """What the engine is asked to run the model on: a runtime name and, for the export cache, the model package
    the model came from (``None`` for a model given in Python: its export is then never cached)."""

    name: str = "torch"
    package: Path | None = None

    def __post_init__(self):
        check_runtime(self.name)


@dataclass
class RuntimeChoice:
    """The runtime a run uses and why, as ``run.json``, the console and the Slicer status line say it.

    ``forward`` is its callable on (B, C, H, W) batches (``None``: the engine's own torch path); ``batch_size`` a
    batch size it needs (``None``: the engine chooses); ``timings`` the images/s each candidate reached on the
    probe; ``exactness`` the largest |d difference| / largest |d| of each candidate that ran the probe; ``say``
    whether the console should say it (not for torch asked for by name, nor for a run too short to choose)."""

    name: str
    reason: str
    forward: object = None
    batch_size: int | None = None
    threads: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    exactness: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    say: bool = True

    def describe(self) -> str:
        """One line: the runtime and why."""
        return f"runtime {self.name}: {self.reason}"

    def to_json(self) -> dict:
        """The fields ``run.json`` and the worker's events carry."""
        return {"runtime": self.name, "runtime_reason": self.reason,
                "runtime_images_per_s": {k: round(v, 2) for k, v in self.timings.items()},
                "runtime_exactness": {k: float(f"{v:.3g}") for k, v in self.exactness.items()},
                "runtime_choice_seconds": round(self.seconds, 2)}
