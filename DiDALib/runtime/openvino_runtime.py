"""``openvino``: an ONNX graph compiled by OpenVINO for this CPU (``pip install openvino``).

OpenVINO reads the ONNX file itself (``Core.read_model``; its converter tools, which report usage over the
network, are never used). It is told to compute in float32 (on CPUs with bfloat16 or AMX units it would otherwise
choose bfloat16, far outside DiDA's exactness bound), to run one inference at a time (``LATENCY``, one stream: DiDA
sends one batch after another) on one thread per physical core, without pinning threads to cores that torch's
threads share.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from ..models.fixed_batch import batch_dimension, in_fixed_batches
from .context import BuildContext, RuntimeUnavailable


class OpenVinoModel:
    """A compiled OpenVINO model as a callable: (B, C, H, W) float images in, (B, K) float32 outputs out."""

    def __init__(self, compiled, fixed_batch_size: int | None):
        self._request = compiled.create_infer_request()
        self.fixed_batch_size = fixed_batch_size

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        a = x.detach().to("cpu", torch.float32).contiguous().numpy()
        out = self._request.infer({0: a})[0]
        return torch.from_numpy(np.array(out, dtype=np.float32, copy=True))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return in_fixed_batches(self._run, x, self.fixed_batch_size).to(x.device)


def import_openvino():
    """``openvino``, imported without its model converter (``openvino.tools.ovc``), whose import posts a usage event
    over the network from a forked process (``openvino_telemetry``) unless the user opted out: DiDA sends nothing at
    run time, and in the worker the fork copies the lock of the thread that reads stdin, so the child hangs and the
    worker never ends. DiDA reads ONNX with ``Core.read_model`` and needs no converter; a converter imported later by
    someone else is theirs (the block is lifted once openvino is in)."""
    blocked = "openvino" not in sys.modules and "openvino.tools.ovc" not in sys.modules
    if blocked:
        sys.modules["openvino.tools.ovc"] = None  # openvino's own try/except ImportError skips the converter
    try:
        import openvino as ov
    finally:
        if blocked and "openvino.tools.ovc" in sys.modules and sys.modules["openvino.tools.ovc"] is None:
            del sys.modules["openvino.tools.ovc"]
    return ov


def build(context: BuildContext) -> OpenVinoModel:
    try:
        ov = import_openvino()
    except ImportError:
        raise RuntimeUnavailable("OpenVINO is not installed (pip install openvino)") from None
    core = ov.Core()
    model = core.read_model(str(context.onnx_file()))
    shape = model.inputs[0].get_partial_shape()
    fixed = shape[0].get_length() if shape.rank.is_static and shape[0].is_static else None
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": str(context.threads),
        "ENABLE_CPU_PINNING": "NO",
    })
    return OpenVinoModel(compiled, batch_dimension([fixed]) if fixed else None)
