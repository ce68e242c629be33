"""``architecture: "torchscript"``: a TorchScript archive (``torch.jit.save``), which holds its own weights."""

from __future__ import annotations

import warnings

import torch

from .registry import Source
from .spec import ModelPackageError, ModelSpec


def load_torchscript(spec: ModelSpec, source: Source) -> torch.nn.Module:
    """The TorchScript module in the package's weights file (on the CPU)."""
    weights = source.weights
    try:
        with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript, but users still bring .pt files
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(weights), map_location="cpu")
    except Exception as exc:
        raise ModelPackageError(f"{weights}: not a readable TorchScript file ({type(exc).__name__})") from None
