"""The runtimes besides torch, each built by its own module on demand (a runtime's package is imported only when
that runtime is tried, so a missing one costs nothing until asked for)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from .context import BuildContext, RuntimeUnavailable
from .export import first_line

#: runtime name -> "module:function" of its builder, relative to this package.
BUILDERS: dict[str, str] = {
    "onnxruntime": ".onnxruntime_runtime:build",
    "openvino": ".openvino_runtime:build",
    "compile": ".compiled:build",
}
#: What ``auto`` tries against torch. ``compile`` is not among them: Inductor compiles for tens of seconds in every
#: new process (about as long as a whole B-scan on two cores), and onnxruntime matched or beat it on every model
#: measured (docs/speed.md); it stays available by name.
AUTO_CANDIDATES: tuple[str, ...] = ("onnxruntime", "openvino")

__all__ = ["AUTO_CANDIDATES", "BUILDERS", "BuildContext", "RuntimeUnavailable", "build"]


def build(name: str, context: BuildContext) -> Callable:
    """The callable of runtime ``name`` for the context's model. Raises ``RuntimeUnavailable`` with the reason."""
    module, function = BUILDERS[name].split(":")
    try:
        return getattr(import_module(module, __package__), function)(context)
    except RuntimeUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 -- a runtime that cannot load this model: say why, in one line
        raise RuntimeUnavailable(f"{name} cannot load the model ({first_line(exc)})") from None
