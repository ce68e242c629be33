"""``compile``: the torch model through ``torch.compile`` (Inductor's C++ kernels on a CPU), at one batch size.

A compiled graph is specialised to its input shape, and a new shape compiles again (tens of seconds for a CNN on
two cores), so every batch is padded to one size (``fixed_batch.in_fixed_batches``) and the engine batches to it.
Compiling happens on the first call, which the probe makes; a model or machine where it fails (no C++ compiler,
an operator Inductor cannot lower) leaves the model on torch.
"""

from __future__ import annotations

import torch

from ..models.fixed_batch import in_fixed_batches
from .context import BuildContext, RuntimeUnavailable

#: The batch size of a compiled model when none was chosen (the engine's CPU sizes peak around 4-16).
COMPILED_BATCH_SIZE = 8


class CompiledModel:
    """``torch.compile(model)`` called at ``fixed_batch_size`` images per call."""

    def __init__(self, model: torch.nn.Module, batch_size: int):
        self._compiled = torch.compile(model, dynamic=False)
        self.fixed_batch_size = batch_size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return in_fixed_batches(self._compiled, x, self.fixed_batch_size)


def build(context: BuildContext) -> CompiledModel:
    if not isinstance(context.model, torch.nn.Module) or context.is_onnx:
        raise RuntimeUnavailable("torch.compile needs a torch model, and this one is an ONNX graph")
    try:
        return CompiledModel(context.model, context.batch_size or COMPILED_BATCH_SIZE)
    except Exception as exc:  # noqa: BLE001 -- torch.compile is unavailable on some builds and platforms
        raise RuntimeUnavailable(f"torch.compile is unavailable here ({type(exc).__name__}: {exc})") from None
