"""A torch model as an ONNX graph (bytes), for onnxruntime and OpenVINO: exported once, with a dynamic batch.

Two exporters, tried in order:

1. torch's TorchScript-based exporter (``dynamo=False``): seconds for a CNN, and it needs no package beyond
   torch. It traces the model on one input, so a value that the model computes in Python from a tensor (an ``if``
   on a tensor, ``float(x.std())``) is frozen at that input's value: torch warns (``TracerWarning``) when that
   happens, and such a trace is not used.
2. the ``torch.export``-based exporter (``dynamo=True``, needs ``onnxscript``): slower, but it records such values
   or refuses the model; it is used when the first is unavailable (removed in a later torch), fails, or warned.

Either way the graph is only a candidate: the probe (``probe.py``) compares its d with torch's before any use.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings

import torch


class ExportFailed(RuntimeError):
    """The model cannot be exported to ONNX; the message says why, in one line."""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception in one line: its type and the first line of its message (terminal colours removed)."""
    lines = [ln.strip() for ln in _ANSI.sub("", str(exc)).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__


def _traced(model: torch.nn.Module, example: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.onnx.export(model, (example,), buf, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
    frozen = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)
              and "Converting a tensor to a Python" in str(w.message)]
    if frozen:
        raise ExportFailed("tracing froze a value the model computes from its input (TracerWarning: "
                           f"{str(frozen[0].message).splitlines()[0][:120]})")
    return buf.getvalue()


def _exported(model: torch.nn.Module, example: torch.Tensor) -> bytes:
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):  # it prints its steps and, on failure, the whole graph
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=({0: batch},),
                                    input_names=["x"], output_names=["y"], optimize=True, verbose=False)
    return program.model_proto.SerializeToString()


def export_onnx(model: torch.nn.Module, example: torch.Tensor) -> tuple[bytes, str]:
    """The model as ONNX bytes (float32, CPU, eval mode, dynamic batch) and the exporter that made them, from one
    example input (1, C, H, W). Raises ``ExportFailed`` with the reasons when neither exporter can."""
    x = example.detach().to("cpu", torch.float32).contiguous()
    model.eval()
    reasons = []
    for name, exporter in (("torchscript", _traced), ("dynamo", _exported)):
        try:
            with torch.no_grad():
                return exporter(model, x), name
        except ExportFailed as exc:
            reasons.append(f"{name} exporter: {exc}")
        except ImportError as exc:
            reasons.append(f"{name} exporter: needs a package that is not installed ({exc.name or exc})")
        except Exception as exc:  # noqa: BLE001 -- any exporter failure means: not this way
            reasons.append(f"{name} exporter: {first_line(exc)}")
    raise ExportFailed("; ".join(reasons))
