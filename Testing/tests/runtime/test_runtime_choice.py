"""``auto``: a model the export changes is caught and stays on torch, with the reason; a missing runtime, a short
run, another device are said, not failed; a named runtime that cannot run the model exactly is an error that
names the fix; a runtime that fails mid-run hands over to torch."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from runtime_models import BranchingCNN, CustomOpCNN, SmallCNN, trained

from DiDALib import DiDAEngine
from DiDALib.runtime import RuntimeRequest
from DiDALib.runtime.choose import MIN_PASSES, Guarded
from DiDALib.runtime.context import RuntimeUnavailable
from DiDALib.runtime.threads import physical_cores

pytest.importorskip("onnxruntime")
GRIDS = (3, 5, 7, 9, 11, 13, 15, 17, 19)  # 1,140 passes: enough for auto to choose


def _image(dark: bool = False) -> torch.Tensor:
    img = torch.rand((1, 32, 32), generator=torch.Generator().manual_seed(5))
    return img


def _runs(model, runtime: str, fill=0.0):
    # One memory format for every run: #22's probe picks it by timing, and the two formats differ in the last bits
    engine = DiDAEngine(model, device="cpu", runtime=runtime, fill=fill, batch_size=32, channels_last=False)
    return engine, engine.explain(_image(), grids=GRIDS)


def test_auto_chooses_an_exact_runtime_and_says_why():
    engine, _ = _runs(trained(SmallCNN()), "auto")
    choice = engine.runtime_choice
    assert choice.name in ("torch", "onnxruntime", "openvino")
    assert set(choice.timings) >= {"torch", "onnxruntime"} and choice.exactness["onnxruntime"] <= 1e-4
    assert "images/s" in choice.reason and choice.seconds > 0
    assert choice.to_json()["runtime"] == choice.name


def test_a_custom_op_the_export_changes_is_caught_by_the_probe():
    """The custom op's ONNX form (a ReLU for a swish) exports without complaint; the probe's d tell them apart."""
    model = trained(CustomOpCNN())
    engine, result = _runs(model, "auto")
    assert engine.runtime_choice.name == "torch"
    assert "onnxruntime's d differs from torch's" in engine.runtime_choice.reason, engine.runtime_choice.reason
    torch_result = _runs(model, "torch")[1]
    for g in GRIDS:  # it ran on torch: the very same numbers
        np.testing.assert_array_equal(result.deltas[g], torch_result.deltas[g])
    with pytest.raises(RuntimeUnavailable, match="runtime 'onnxruntime' cannot be used: .*choose the runtime torch"):
        _runs(model, "onnxruntime")


def test_data_dependent_control_flow_is_not_trusted():
    """An ``if`` on the input's values: tracing freezes one branch (torch warns), the other exporter refuses
    data-dependent control flow or records it; either way no graph that differs from the model is used."""
    model = trained(BranchingCNN())
    engine, result = _runs(model, "auto", fill=-2.0)  # black cells take the other branch
    choice = engine.runtime_choice
    assert choice.name == "torch" or choice.exactness[choice.name] <= 1e-4, choice.reason
    if choice.name == "torch":
        assert "froze a value" in choice.reason or "differs from torch's" in choice.reason, choice.reason
    np.testing.assert_allclose(result.deltas[3], _runs(model, "torch", fill=-2.0)[1].deltas[3], rtol=0, atol=1e-5)


def test_a_missing_runtime_package_is_said_not_failed(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "openvino", None)
    engine, _ = _runs(trained(SmallCNN()), "auto")
    assert engine.runtime_choice.name == "torch"
    assert "onnxruntime is not installed (pip install onnxruntime)" in engine.runtime_choice.reason
    with pytest.raises(RuntimeUnavailable, match="OpenVINO is not installed"):
        _runs(trained(SmallCNN()), "openvino")


def test_auto_keeps_torch_where_no_runtime_applies():
    short = DiDAEngine(trained(SmallCNN()), device="cpu", runtime="auto")
    short.explain(_image(), grids=(3,))
    assert short.runtime_choice.name == "torch" and f"pays from {MIN_PASSES}" in short.runtime_choice.reason
    assert not short.runtime_choice.say
    half = DiDAEngine(trained(SmallCNN()), device="cpu", runtime="auto", precision="bfloat16")
    half.explain(_image(), grids=GRIDS)
    assert half.runtime_choice.name == "torch" and "float32" in half.runtime_choice.reason
    plain = DiDAEngine(lambda x: x.mean(dim=(2, 3)).repeat(1, 3), device="cpu", runtime="auto")
    plain.explain(_image(), grids=GRIDS)
    assert "plain function" in plain.runtime_choice.reason
    with pytest.raises(ValueError, match="use runtime='compile' alone"):
        DiDAEngine(trained(SmallCNN()), device="cpu", runtime="onnxruntime", compile=True)
    with pytest.raises(ValueError, match="runtime 'fastest' is not known"):
        RuntimeRequest("fastest")


def test_a_runtime_that_fails_mid_run_hands_over_to_torch():
    from DiDALib.runtime import RuntimeChoice

    model = trained(SmallCNN()).eval()
    choice = RuntimeChoice("onnxruntime", "chosen")

    def broken(x):
        raise RuntimeError("session lost")

    guarded = Guarded(broken, model, choice)
    x = torch.rand(2, 1, 32, 32)
    with pytest.warns(UserWarning, match="onnxruntime failed on a batch .*session lost.*goes on with torch"):
        out = guarded(x)
    with torch.inference_mode():
        np.testing.assert_array_equal(out.detach().numpy(), model(x).numpy())
    assert choice.name == "torch" and "session lost" in choice.reason


def test_physical_cores_reads_cpuinfo():
    two_cores_four_threads = "".join(f"processor\t: {cpu}\nphysical id\t: 0\ncore id\t\t: {cpu % 2}\n\n"
                                     for cpu in range(4))
    assert physical_cores(two_cores_four_threads, {0, 1, 2, 3}) == 2
    assert physical_cores(two_cores_four_threads, {0}) == 1
    assert physical_cores("", {0, 1, 2}) == 3  # nothing known: the usable CPUs


def test_an_onnx_package_gets_the_same_tuning_without_an_export(tmp_path):
    """An ONNX package already runs on onnxruntime (its default session is the reference): auto tries a tuned
    session and OpenVINO on the package's own file, exports nothing, and torch.compile cannot take a graph."""
    import io
    import warnings

    import onnxruntime as ort

    from DiDALib.models.onnx_model import OnnxModel

    model = trained(SmallCNN()).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 1, 32, 32),), buf, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    path = tmp_path / "model.onnx"
    path.write_bytes(buf.getvalue())
    graph = OnnxModel(path, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), None)
    engine, result = _runs(graph, "auto")
    choice = engine.runtime_choice
    assert "onnxruntime" in choice.exactness and choice.exactness["onnxruntime"] <= 1e-4, choice.reason
    assert "exported" not in choice.reason and "cache" not in choice.reason
    reference = _runs(model, "torch")[1]
    np.testing.assert_allclose(result.deltas[5], reference.deltas[5], rtol=0, atol=1e-5)
    with pytest.raises(RuntimeUnavailable, match="torch.compile needs a torch model"):
        _runs(graph, "compile")
