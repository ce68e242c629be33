"""The model formats a package's ``architecture`` can name, and the loader of each (one module per format).

| ``architecture`` | weights | module |
|---|---|---|
| ``timm:<name>`` | a state dict of that timm network | ``timm_models`` |
| ``torchvision:<name>`` | a state dict of that torchvision classifier (``head`` says which layer was resized) | ``torchvision_models`` |
| ``python:<file.py>:<callable>`` | a state dict of the module the package's own code builds (runs only when trusted) | ``python_code`` |
| ``onnx`` | an ``.onnx`` file, run by onnxruntime | ``onnx_model`` |
| ``torch-export`` | a ``.pt2`` program from ``torch.export.save`` | ``torch_export`` |
| ``torchscript`` | a TorchScript archive (``torch.jit.save``; deprecated by torch, still read) | ``torchscript`` |

A loader takes the package's spec and a ``Source`` (the package folder, its weights file, whether its code may
run) and returns the network on the CPU with its weights; it raises ``ModelPackageError`` with the reason when
they do not fit. An entry that ends with ``:`` is a prefix; any other is an exact value. A value that matches
no entry is taken as a timm name, whose loader then says whether timm knows it. Loaders are imported only when
used, so a package of one format never needs another format's library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

from .spec import ModelSpec

#: architecture value (or prefix ending in ':') -> "module:function" of its loader, relative to this package.
ARCHITECTURES: dict[str, str] = {
    "timm:": ".timm_models:load_timm",
    "torchvision:": ".torchvision_models:load_torchvision",
    "python:": ".python_code:load_python",
    "onnx": ".onnx_model:load_onnx",
    "torch-export": ".torch_export:load_torch_export",
    "torchscript": ".torchscript:load_torchscript",
}
_FALLBACK = ARCHITECTURES["timm:"]


@dataclass(frozen=True)
class Source:
    """Where a loader finds a package's files: its folder, its weights file, and whether its own Python code
    may run (only after the user said so); a loader appends to ``notes`` what it had to do to the weights (a
    checkpoint's wrapper or prefix removed), for the package to report."""

    root: Path
    weights: Path
    trust_code: bool = False
    notes: list[str] = field(default_factory=list)


def loader_for(architecture: str) -> Callable[[ModelSpec, Source], object]:
    """The loader of an ``architecture`` value: ``loader(spec, source) -> nn.Module``."""
    target = next((t for key, t in ARCHITECTURES.items()
                   if architecture == key or (key.endswith(":") and architecture.startswith(key))), _FALLBACK)
    module, function = target.split(":")
    return getattr(import_module(module, __package__), function)
