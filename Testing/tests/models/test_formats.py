"""Every model format a package can name, loaded safely from a model built in the test, with the same outputs
as the network it came from and one clear error for each way it can be wrong."""

from __future__ import annotations

import json
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from third_party import CLASSES, INPUT, NET_SOURCE, finetuned_torchvision, third_party  # noqa: F401 (fixture)

from DiDALib.engine.core import DiDAEngine
from DiDALib.models.fixed_batch import in_fixed_batches
from DiDALib.models.package import UntrustedCodeError, code_to_trust, load_model_package
from DiDALib.models.spec import ModelPackageError


def _package(folder: Path, files: dict[str, Path | str], **fields) -> Path:
    """A package folder: ``files`` copied (or written, for str) under their names, and model.json from ``fields``."""
    folder.mkdir(parents=True)
    for name, src in files.items():
        if isinstance(src, str):
            (folder / name).write_text(src, encoding="utf-8")
        else:
            shutil.copy(src, folder / name)
    data = dict(classes=list(CLASSES), input_size=list(INPUT), channels=1, normalisation="none")
    data.update(fields)
    (folder / "model.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def _same_outputs(model, reference, batch: int = 5, channels: int = 1) -> None:
    x = torch.rand(batch, channels, *INPUT)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)


# -- python: the package's own code, only when trusted ------------------------------------------------------------

def _python_package(tmp_path, third_party, source: str = NET_SOURCE, **fields) -> Path:
    fields.setdefault("architecture", "python:oct_resnet.py:OCTResNet")
    return _package(tmp_path / "py", {"oct_resnet.py": source, "oct_resnet.pth": third_party.state_dict},
                    weights="oct_resnet.pth", **fields)


def test_python_package_never_runs_its_code_without_consent(tmp_path, third_party):
    marker = tmp_path / "ran.txt"
    source = f"open({str(marker)!r}, 'w').write('x')\n" + NET_SOURCE
    folder = _python_package(tmp_path, third_party, source)
    assert code_to_trust(folder) == folder / "oct_resnet.py"
    with pytest.raises(UntrustedCodeError, match="oct_resnet.py.*own Python code.*--trust-code") as info:
        load_model_package(folder)
    assert info.value.code_file == folder / "oct_resnet.py"
    assert not marker.exists()  # refused before a line of it ran
    assert not list(folder.rglob("__pycache__"))
    pkg = load_model_package(folder, trust_code=True)
    assert marker.exists() and not list(folder.rglob("__pycache__"))  # run from source: the package is not written
    _same_outputs(pkg.model, third_party.net)


def test_python_package_builder_function_and_arguments(tmp_path, third_party):
    from third_party import trained_net

    narrow = trained_net(width=4, seed=3)
    folder = tmp_path / "narrow"
    folder.mkdir()
    torch.save({"state_dict": narrow.state_dict()}, folder / "w.pth")
    pkg_dir = _package(tmp_path / "p", {"net.py": NET_SOURCE, "w.pth": folder / "w.pth"},
                       architecture="python:net.py:build", architecture_args={"width": 4}, weights="w.pth")
    _same_outputs(load_model_package(pkg_dir, trust_code=True).model, narrow)
    assert code_to_trust(tmp_path / "p") is not None


@pytest.mark.parametrize("architecture,source,match", [
    ("python:oct_resnet.py:Missing", NET_SOURCE, "defines no callable 'Missing'.*OCTResNet"),
    ("python:oct_resnet.py:OCTResNet", NET_SOURCE + "\nraise RuntimeError('broken install')\n",
     "fails when run.*broken install"),
    ("python:oct_resnet.py:make", NET_SOURCE + "\ndef make():\n    return 3\n", "returned a int"),
    ("python:oct_resnet.py:OCTResNet", NET_SOURCE.replace("width=8", "width=6"), "do not fit"),
    ("python:../oct_resnet.py:OCTResNet", NET_SOURCE, "outside the package"),
    ("python:oct_resnet:OCTResNet", NET_SOURCE, "python:<file.py>:<callable>"),
])  # fmt: skip
def test_python_package_errors(tmp_path, third_party, architecture, source, match):
    folder = _python_package(tmp_path, third_party, source, architecture=architecture)
    with pytest.raises(ModelPackageError, match=match):
        load_model_package(folder, trust_code=True)


def test_other_packages_need_no_trust(tmp_path, third_party):
    folder = _package(tmp_path / "x", {"m.pt2": third_party.export}, architecture="torch-export", weights="m.pt2")
    assert code_to_trust(folder) is None


# -- torchvision ---------------------------------------------------------------------------------------------------

def test_torchvision_state_dict_with_and_without_head(tmp_path, third_party):
    files = {"squeezenet.pth": third_party.torchvision_state}
    fields = dict(architecture="torchvision:squeezenet1_1", weights="squeezenet.pth", channels=3)
    with_head = load_model_package(_package(tmp_path / "h", files, head="classifier.1", **fields))
    _same_outputs(with_head.model, third_party.torchvision, channels=3)
    # num_classes builds the same head here: the state dict fits without 'head' as well
    _same_outputs(load_model_package(_package(tmp_path / "n", files, **fields)).model, third_party.torchvision,
                  channels=3)


def test_torchvision_head_keeps_the_auxiliary_classifiers_as_built(tmp_path):
    # googlenet fine-tuned the usual way: only 'fc' replaced, its auxiliary classifiers still sized for ImageNet
    net = finetuned_torchvision("googlenet", "fc", init_weights=False)
    folder = tmp_path / "g"
    folder.mkdir()
    torch.save(net.state_dict(), folder / "g.pth")
    fields = dict(weights="g.pth", channels=3, architecture="torchvision:googlenet",
                  architecture_args={"init_weights": False})
    pkg = load_model_package(_package(tmp_path / "pkg", {"g.pth": folder / "g.pth"}, head="fc", **fields))
    _same_outputs(pkg.model, net, batch=1, channels=3)
    with pytest.raises(ModelPackageError, match="head 'aux1.fc2.weight' has 1000 output"):  # num_classes resizes all
        load_model_package(_package(tmp_path / "all", {"g.pth": folder / "g.pth"}, **fields))


@pytest.mark.parametrize("fields,match", [
    ({"architecture": "torchvision:squeezenet1"}, "not a torchvision classifier.*squeezenet1_1"),
    ({"head": "classifier.9"}, "not a layer of this network.*classifier.1"),
    ({"head": "features"}, "is a Sequential"),
    ({"channels": 1}, "take 3 channels"),
    ({"architecture": "timm:test_efficientnet", "head": "fc"}, "'head' names the layer of a torchvision"),
    ({"architecture_args": {"dropout": "high"}}, "'dropout' is 'high': it must be a number from 0 to 1"),
])  # fmt: skip
def test_torchvision_errors(tmp_path, third_party, fields, match):
    base = dict(architecture="torchvision:squeezenet1_1", weights="m.pth", channels=3)
    base.update(fields)
    folder = _package(tmp_path / "t", {"m.pth": third_party.torchvision_state}, **base)
    with pytest.raises(ModelPackageError, match=match):
        load_model_package(folder)


# -- onnx ----------------------------------------------------------------------------------------------------------

def _onnx_files(path: Path) -> dict[str, Path]:
    """An exported .onnx file and the external data file torch.onnx.export wrote beside it."""
    data = path.with_name("oct_resnet.onnx.data")
    return {path.name: path, data.name: data}


def test_onnx_dynamic_batch(tmp_path, third_party):
    pkg = load_model_package(_package(tmp_path / "o", _onnx_files(third_party.onnx), architecture="onnx",
                                      weights=third_party.onnx.name))
    assert pkg.model.fixed_batch_size is None
    for batch in (1, 7):
        _same_outputs(pkg.model, third_party.net, batch)


def test_onnx_fixed_batch_is_batched_to_its_size(tmp_path, third_party):
    pkg = load_model_package(_package(tmp_path / "o", _onnx_files(third_party.onnx_fixed), architecture="onnx",
                                      weights=third_party.onnx_fixed.name))
    assert pkg.model.fixed_batch_size == 3
    _same_outputs(pkg.model, third_party.net, batch=7)  # two full batches and one padded
    assert DiDAEngine(pkg.model, device="cpu").batch_size == 3  # the engine batches to the file's size


def _onnx_two_inputs(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, *INPUT]) for n in ("a", "b")]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, *INPUT])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "two", inputs, [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("case,match", [
    ("input_size", "'input_size' height 40"),
    ("channels", "'channels' 3"),
    ("garbage", "not a readable ONNX model"),
    ("two inputs", "takes 2 inputs"),
    ("no external data", "keep its external data"),
])  # fmt: skip
def test_onnx_errors(tmp_path, third_party, case, match):
    files = _onnx_files(third_party.onnx)
    fields = dict(architecture="onnx", weights=third_party.onnx.name)
    if case == "input_size":
        fields["input_size"] = [40, 48]
    elif case == "channels":
        fields.update(channels=3)
    elif case == "garbage":
        files = {third_party.onnx.name: "this is not protobuf"}
    elif case == "two inputs":
        files = {third_party.onnx.name: _onnx_two_inputs(tmp_path / "two.onnx")}
    elif case == "no external data":
        files.pop(third_party.onnx.name + ".data")
    with pytest.raises(ModelPackageError, match=match):
        load_model_package(_package(tmp_path / "o", files, **fields))


# -- torch-export -------------------------------------------------------------------------------------------------

def test_torch_export_dynamic_and_fixed_batch(tmp_path, third_party):
    dynamic = load_model_package(_package(tmp_path / "d", {"m.pt2": third_party.export}, architecture="torch-export",
                                          weights="m.pt2"))
    assert dynamic.model.fixed_batch_size is None and not dynamic.model.training
    for batch in (1, 6):
        _same_outputs(dynamic.model, third_party.net, batch)
    fixed = load_model_package(_package(tmp_path / "f", {"m.pt2": third_party.export_fixed},
                                        architecture="torch-export", weights="m.pt2"))
    assert fixed.model.fixed_batch_size == 3
    _same_outputs(fixed.model, third_party.net, batch=4)
    fixed.model.to("cpu", memory_format=torch.channels_last)  # what the engine does: kept working
    _same_outputs(fixed.model, third_party.net, batch=2)


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """A copy of a .pt2 archive with ``edit(name, data) -> (name, data)`` applied to every member."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            name, data = edit(item.filename, zin.read(item.filename))
            zout.writestr(name, data)
    return dst


def test_torch_export_refuses_pickles_and_foreign_calls(tmp_path, third_party, capsys):
    def pickled_weight(name, data):
        if name.endswith("_weights_config.json"):
            config = json.loads(data)
            next(iter(config["config"].values()))["use_pickle"] = True
            data = json.dumps(config).encode()
        return name, data

    def foreign_call(name, data):  # the graph names os.system through torch's namespace instead of relu
        if name.endswith("models/model.json"):
            data = data.replace(b"torch.ops.aten.relu.default", b"torch.os.system")
        return name, data

    def legacy(name, data):
        return (name.replace("weight_0", "model.pt") if name.endswith("weights/weight_0") else name), data

    for edit, match in ((pickled_weight, "refused: .*pickled object"),
                        (foreign_call, "calls torch.os.system .*--trust-code"), (legacy, "refused: .*pickled tensors")):
        pt2 = _rewrite(third_party.export, tmp_path / f"{edit.__name__}.pt2", edit)
        folder = _package(tmp_path / edit.__name__, {"m.pt2": pt2}, architecture="torch-export", weights="m.pt2")
        with pytest.raises(ModelPackageError, match=match):
            load_model_package(folder)
    (tmp_path / "bad.pt2").write_bytes(b"PK\x03\x04 not really a zip")
    folder = _package(tmp_path / "bad", {"m.pt2": tmp_path / "bad.pt2"}, architecture="torch-export", weights="m.pt2")
    with pytest.raises(ModelPackageError, match="not a readable torch.export"):
        load_model_package(folder)
    assert "Traceback" not in capsys.readouterr().err


def test_torch_export_refuses_operators_outside_pytorch(tmp_path, third_party):
    class Custom(torch.nn.Module):
        def forward(self, x):
            return third_party.net(torch.ops.dida_test.double(x))

    with torch.library._scoped_library("dida_test", "FRAGMENT") as lib:  # registered for this test only
        lib.define("double(Tensor x) -> Tensor")
        lib.impl("double", lambda x: x * 2, "CompositeExplicitAutograd")
        torch.library.register_fake("dida_test::double", lambda x: torch.empty_like(x), lib=lib)
        _refuse_custom(tmp_path, Custom())


def _refuse_custom(tmp_path, custom) -> None:
    path = tmp_path / "custom.pt2"
    torch.export.save(torch.export.export(custom, (torch.rand(1, 1, *INPUT),)), str(path))
    folder = _package(tmp_path / "c", {"m.pt2": path}, architecture="torch-export", weights="m.pt2")
    with pytest.raises(UntrustedCodeError, match="calls dida_test::double .*--trust-code"):
        load_model_package(folder)


# -- torchscript: still read, quietly -------------------------------------------------------------------------------

def test_torchscript_loads_and_runs_without_deprecation_warnings(tmp_path, third_party):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # building TorchScript is what torch deprecates; reading it is what we test
        scripted = torch.jit.trace(third_party.net, torch.zeros(1, 1, *INPUT))
        scripted.save(str(tmp_path / "m.pt"))
    folder = _package(tmp_path / "ts", {"m.pt": tmp_path / "m.pt"}, architecture="torchscript", weights="m.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pkg = load_model_package(folder)
        _same_outputs(pkg.model, third_party.net)


# -- fixed batches ---------------------------------------------------------------------------------------------------

def test_in_fixed_batches_pads_only_the_last_piece():
    seen = []

    def run(x):
        seen.append(x.shape[0])
        return x.sum(dim=(1, 2, 3))[:, None]

    x = torch.arange(7 * 2 * 2, dtype=torch.float32).reshape(7, 1, 2, 2)
    out = in_fixed_batches(run, x, 3)
    assert seen == [3, 3, 3] and out.shape == (7, 1)
    np.testing.assert_array_equal(out[:, 0].numpy(), x.sum(dim=(1, 2, 3)).numpy())
    assert in_fixed_batches(run, x, None).shape == (7, 1) and seen[-1] == 7
