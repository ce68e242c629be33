"""The model formats a package's ``architecture`` can name, and the loader of each.

A loader takes the package's spec and its weights file and returns the network on the CPU with its weights;
it raises ``ModelPackageError`` with the reason when they do not fit. An entry that ends with ``:`` is a prefix
(``timm:<name>``); any other is an exact value (``torchscript``). A value that matches no entry is taken as a
timm name, whose loader then says whether timm knows it. Loaders are imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from .spec import ModelSpec

#: architecture value (or prefix ending in ':') -> "module:function" of its loader, relative to this package.
ARCHITECTURES: dict[str, str] = {
    "timm:": ".timm_models:load_timm",
    "torchscript": ".torchscript:load_torchscript",
}
_FALLBACK = ARCHITECTURES["timm:"]


def loader_for(architecture: str) -> Callable[[ModelSpec, Path], object]:
    """The loader of an ``architecture`` value: ``loader(spec, weights_path) -> nn.Module``."""
    target = next((t for key, t in ARCHITECTURES.items()
                   if architecture == key or (key.endswith(":") and architecture.startswith(key))), _FALLBACK)
    module, function = target.split(":")
    return getattr(import_module(module, __package__), function)
