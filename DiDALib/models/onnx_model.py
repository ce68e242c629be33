"""``architecture: "onnx"``: an ``.onnx`` file run by onnxruntime, wrapped as a ``torch.nn.Module``.

An ONNX file is a graph of standard operators, not code, so it is safe to open. It runs on the CPU, and on CUDA
where the GPU build of onnxruntime is installed and the input is on a CUDA device (then the images go through the
host: DiDA's batches are large enough for that not to dominate). Its one input is (batch, channels, height,
width); a batch dimension saved as a number is a fixed batch size, and the engine then batches to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .fixed_batch import batch_dimension, in_fixed_batches
from .registry import Source
from .spec import ModelPackageError, ModelSpec

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def _runtime():
    try:
        import onnxruntime
    except ImportError:
        raise ModelPackageError("an 'onnx' model package needs onnxruntime: pip install onnxruntime "
                                "(or onnxruntime-gpu for CUDA)") from None
    return onnxruntime


def _session(path: Path, device_type: str):
    ort = _runtime()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: onnxruntime's warnings about unused initialisers would alarm users
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device_type == "cuda" else ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


class OnnxModel(torch.nn.Module):
    """An ONNX classifier as a module: (B, C, H, W) float images in, (B, K) float32 outputs out, on the input's
    device. ``fixed_batch_size`` is the batch size the file insists on (None when it takes any); ``output_name`` the
    graph output that holds the scores (the package's ``output``: it picks its output itself)."""

    picks_output = True

    def __init__(self, path: Path, session, fixed_batch_size: int | None, output_name: str | None = None):
        super().__init__()
        self.path = path
        self._sessions = {"cpu": session}
        inp = session.get_inputs()[0]
        self.input_name, self.output_name = inp.name, output_name or session.get_outputs()[0].name
        self.input_dtype = _DTYPES[inp.type]
        self.fixed_batch_size = fixed_batch_size

    def _session_for(self, device: torch.device):
        kind = "cuda" if device.type == "cuda" and "CUDAExecutionProvider" in _runtime().get_available_providers() \
            else "cpu"
        if kind not in self._sessions:
            self._sessions[kind] = _session(self.path, kind)
        return self._sessions[kind]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        session = self._session_for(x.device)

        def run(chunk: torch.Tensor) -> torch.Tensor:
            a = chunk.detach().to("cpu", torch.float32).contiguous().numpy().astype(self.input_dtype, copy=False)
            (out,) = session.run([self.output_name], {self.input_name: a})
            return torch.from_numpy(np.asarray(out, dtype=np.float32))

        return in_fixed_batches(run, x, self.fixed_batch_size).to(x.device)


def _check_input(inp, spec: ModelSpec, where: Path) -> int | None:
    if inp.type not in _DTYPES:
        raise ModelPackageError(f"{where}: the ONNX input {inp.name!r} is {inp.type}: DiDA feeds float images")
    shape = list(inp.shape)
    if len(shape) != 4:
        raise ModelPackageError(f"{where}: the ONNX input {inp.name!r} has shape {shape}: expected 4 dimensions "
                                "(batch, channels, height, width)")
    want = [spec.channels, *spec.input_size]
    for got, expected, what in zip(shape[1:], want, ("'channels'", "'input_size' height", "'input_size' width")):
        if isinstance(got, int) and got != expected:
            flag = "--channels" if what == "'channels'" else "--input-size"
            raise ModelPackageError(f"{where}: the ONNX input is {shape} (batch, channels, height, width) but "
                                    f"model.json says {what} {expected}: make them agree (dida package {flag})")
    return batch_dimension(shape)


def load_onnx(spec: ModelSpec, source: Source) -> torch.nn.Module:
    """The ONNX model in the package's weights file, on onnxruntime's CPU provider (CUDA when asked and present)."""
    where = source.weights
    try:
        session = _session(where, "cpu")
    except ModelPackageError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if "external data" in first.lower():
            raise ModelPackageError(f"{where}: the ONNX model's weights are in an external data file that is not "
                                    "beside it: keep its external data file(s) (e.g. model.onnx.data) in the package "
                                    "under the names they were saved with") from None
        raise ModelPackageError(f"{where}: not a readable ONNX model ({type(exc).__name__}: {first[:200]})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelPackageError(f"{where}: the ONNX model takes {len(inputs)} inputs "
                                f"({', '.join(i.name for i in inputs)}): DiDA gives one image batch")
    fixed = _check_input(inputs[0], spec, where)
    return OnnxModel(where, session, fixed, _output_name(session.get_outputs(), spec, where))


def _output_name(outputs, spec: ModelSpec, where: Path) -> str:
    """The graph output that holds the scores: the one there is, or the one ``output`` names (by name or index)."""
    names = [o.name for o in outputs]
    listed = ", ".join(f"{k}: {o.name!r} {list(o.shape)}" for k, o in enumerate(outputs))
    if spec.output is None:
        if len(names) == 1:
            return names[0]
        raise ModelPackageError(f"{where}: the ONNX model has {len(names)} outputs ({listed}): say which holds the "
                                f"class scores with 'output' in model.json (its name or index, e.g. \"output\": "
                                f"{names[0]!r}; dida package --output)")
    if isinstance(spec.output, int):
        if spec.output < len(names):
            return names[spec.output]
    elif spec.output in names:
        return spec.output
    raise ModelPackageError(f"{where}: 'output' is {spec.output!r} but the ONNX model's outputs are {listed}: name "
                            "one of them or give its index")
