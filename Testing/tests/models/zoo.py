"""A zoo of tiny classifiers written the way people write them, each saved in every package format it allows.

Every model is the source text of its author's file (a ``python:`` package runs that file), small enough that a
DiDA run on a 24 x 24 input takes a few hundredths of a second. The idioms: ``.view`` after convolutions (the line
that broke under channels-last), ``reshape``/``flatten``, in-place activations and in-place normalisation of the
input, outputs that are a tuple, a dict or an object with ``.logits`` (``model.json``'s ``output`` says which),
BatchNorm and Dropout left in training mode, grey and RGB inputs normalised inside the model, a model that takes
one batch size only, a data-dependent branch, and a residual CNN whose ``forward`` ends in
``self.fc(x.view(x.size(0), -1))`` like the third-party Kermany classifier.

``write_zoo(folder)`` writes every model as a ``python:``, ``torchscript``, ``torch-export`` and ``onnx`` package
where the format can hold it (``FORMATS`` of each ``ZooModel``), and ``reference(model)`` builds the plain
``nn.Module`` in evaluation mode that DiDA's d on every package must match.
"""

from __future__ import annotations

import json
import linecache
import sys
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
INPUT = (24, 24)
ALL_FORMATS = ("python", "torchscript", "torch-export", "onnx")
#: The largest |d difference| / largest |d| a format may show against the plain module (float32, logits). The
#: torch formats run the same kernels; onnxruntime's differ in the last bits, as package_fidelity.py measures
#: (1.2e-5 with the black fill on the third-party CNN; 1e-4 is the bound the package tests assert).
BOUNDS = {"python": 1e-5, "torchscript": 1e-5, "torch-export": 1e-5, "onnx": 1e-4}

_HEADER = """
import torch
from torch import nn
import torch.nn.functional as F
"""

SOURCES = {
    # conv, pool, then the classic flatten: .view over a map of more than one pixel
    "view": """
class Net(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 6 * 6, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc(x)
""",
    # torch.flatten and reshape, two branches concatenated
    "reshape": """
class Net(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.a = nn.Conv2d(1, 3, 5, stride=4, padding=2)
        self.b = nn.Conv2d(1, 2, 3, stride=3)
        self.fc = nn.Linear(3 * 6 * 6 + 2 * 8 * 8, num_classes)

    def forward(self, x):
        a = torch.flatten(torch.tanh(self.a(x)), 1)
        b = torch.sigmoid(self.b(x))
        b = b.reshape(b.shape[0], -1)
        return self.fc(torch.cat([a, b], dim=1))
""",
    # in-place everything: the input normalised in place, inplace ReLU, += on a residual, relu_
    "inplace": """
class Net(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        x.sub_(0.3).div_(0.2)
        x = self.act(self.stem(x))
        identity = x
        out = self.conv(x)
        out += identity
        F.relu_(out)
        return self.fc(out.mean(dim=(2, 3)))
""",
    # a tuple (logits, features): model.json says "output": 0
    "tuple": """
class Net(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.conv = nn.Conv2d(1, 5, 3, stride=2, padding=1)
        self.fc = nn.Linear(5, num_classes)

    def forward(self, x):
        features = F.relu(self.conv(x)).mean(dim=(2, 3))
        return self.fc(features), features
""",
    # a dict with the logits under "logits": model.json says "output": "logits"
    "dict": """
class Net(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.conv = nn.Conv2d(1, 5, 3, stride=2, padding=1)
        self.fc = nn.Linear(5, num_classes)

    def forward(self, x):
        features = F.relu(self.conv(x)).amax(dim=(2, 3))
        return {"features": features, "logits": self.fc(features)}
""",
    # an object with .logits (a NamedTuple, which TorchScript also carries): "output": "logits"
    "object": """
from typing import NamedTuple


class ClassifierOutput(NamedTuple):
    hidden: torch.Tensor
    logits: torch.Tensor


class Net(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.conv = nn.Conv2d(1, 5, 3, stride=2, padding=1)
        self.fc = nn.Linear(5, num_classes)

    def forward(self, x) -> ClassifierOutput:
        hidden = torch.tanh(self.conv(x)).mean(dim=(2, 3))
        return ClassifierOutput(hidden, self.fc(hidden))
""",
    # BatchNorm and Dropout; build() hands the model over in training mode, as nn.Module starts
    "train_mode": """
class Net(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return self.fc(self.drop(x.mean(dim=(2, 3))))


def build():
    return Net().train()
""",
    # an RGB network with ImageNet normalisation inside (package: 3 channels, normalisation none)
    "rgb": """
class Net(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6 * 12 * 12, num_classes)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = F.relu(self.conv(x))
        return self.fc(x.view(x.shape[0], -1))
""",
    # trained with batches of 4 and written for them: .view(4, -1)
    "fixed_batch": """
class Net(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, stride=3)
        self.fc = nn.Linear(3 * 8 * 8, num_classes)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).reshape(4, -1))
""",
    # a branch on the data (0-255 or 0-1 input?) and on the channels: TorchScript keeps it, torch.export cannot
    "branch": """
class Net(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        if x.max() > 2.0:
            x = x / 255.0
        if x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)
        return self.fc(torch.tanh(self.conv(x)).mean(dim=(2, 3)))
""",
    # the third-party Kermany classifier's shape: a residual CNN ending in self.fc(x.view(x.size(0), -1))
    "resnet": """
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = BasicBlock(8, 8)
        self.layer2 = BasicBlock(8, 12, stride=2)
        self.avgpool = nn.AvgPool2d(6)
        self.fc = nn.Linear(12 * 2 * 2, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = self.avgpool(x)
        return self.fc(x.view(x.size(0), -1))
""",
}


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo: its source key, builder, the formats it can be saved in, and its package fields."""

    name: str
    builder: str = "Net"
    formats: tuple[str, ...] = ALL_FORMATS
    fields: dict = field(default_factory=dict)  # model.json fields beyond the common ones
    channels: int = 1
    batch: int | None = None  # the one batch size the model takes
    left_in_training: bool = False  # saved in training mode, as its author left it

    @property
    def source(self) -> str:
        return _HEADER + SOURCES[self.name]


ZOO = {m.name: m for m in (
    ZooModel("view"),
    ZooModel("reshape"),
    ZooModel("inplace", fields={"normalisation": "none"}),
    ZooModel("tuple", fields={"output": 0}),
    ZooModel("dict", fields={"output": "logits"}),
    # torch.export.save needs a NamedTuple registered by name, and loading would need the class: not portable
    ZooModel("object", formats=("python", "torchscript", "onnx"), fields={"output": "logits"}),
    ZooModel("train_mode", builder="build", left_in_training=True),
    ZooModel("rgb", channels=3, fields={"normalisation": "none"}),
    ZooModel("fixed_batch", batch=4, fields={"fixed_batch": 4}),
    ZooModel("branch", formats=("python", "torchscript"), fields={"normalisation": "none"}),
    ZooModel("resnet", builder="ResNet"),
)}  # fmt: skip


def module(model: ZooModel) -> types.ModuleType:
    """The author's file as a module of the test (its source kept where ``inspect`` looks, for TorchScript)."""
    filename = f"<zoo {model.name}>"
    linecache.cache[filename] = (len(model.source), None, model.source.splitlines(True), filename)
    mod = types.ModuleType(f"zoo_{model.name}")
    mod.__file__ = filename
    sys.modules[mod.__name__] = mod  # TorchScript and typing look classes up by module
    exec(compile(model.source, filename, "exec"), mod.__dict__)
    return mod


def build(model: ZooModel, seed: int = 0) -> torch.nn.Module:
    """The network as its author's builder returns it (training mode stays as the author left it), with random
    weights of a trained network's scale, running statistics included."""
    torch.manual_seed(seed)
    net = getattr(module(model), model.builder)()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
            elif t.is_floating_point() and name not in ("mean", "std"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)
    return net


def reference(model: ZooModel, seed: int = 0) -> torch.nn.Module:
    """The plain network in evaluation mode, as DiDA's d on every package must see it, returning its logits."""
    net = build(model, seed).eval()
    select = model.fields.get("output")

    def logits(x: torch.Tensor) -> torch.Tensor:
        out = net(x)
        if select is None:
            return out
        return out[select] if isinstance(select, int) or isinstance(out, dict) else getattr(out, select)

    return logits


def example(model: ZooModel, batch: int | None = None) -> torch.Tensor:
    return torch.rand(batch or model.batch or 2, model.channels, *INPUT)


def _model_json(folder: Path, model: ZooModel, architecture: str, weights: str) -> Path:
    data = {"format": "dida-model/1", "name": f"zoo {model.name} ({architecture.split(':')[0]})",
            "architecture": architecture, "weights": weights, "classes": list(CLASSES), "input_size": list(INPUT),
            "channels": model.channels, "mean": [0.3] * model.channels, "std": [0.2] * model.channels}
    data.update(model.fields)
    if data.get("normalisation", "mean-std") != "mean-std":
        del data["mean"], data["std"]
    (folder / "model.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    return folder


def write_package(folder: Path, model: ZooModel, fmt: str, seed: int = 0) -> Path:
    """``model`` saved as a package of format ``fmt`` in the new folder ``folder``."""
    folder.mkdir(parents=True)
    net = build(model, seed)
    if not model.left_in_training:
        net.eval()
    x = example(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript and the TorchScript-based ONNX exporter are deprecated
        if fmt == "python":
            (folder / "net.py").write_text(model.source, encoding="utf-8")
            torch.save(net.state_dict(), folder / "net.pth")
            return _model_json(folder, model, f"python:net.py:{model.builder}", "net.pth")
        if fmt == "torchscript":
            torch.jit.save(torch.jit.script(net), str(folder / "net.pt"))  # in the mode the author left it
            return _model_json(folder, model, "torchscript", "net.pt")
        if fmt == "torch-export":
            shapes = None if model.batch else ({0: torch.export.Dim("batch")},)
            torch.export.save(torch.export.export(net, (x,), dynamic_shapes=shapes), str(folder / "net.pt2"))
            return _model_json(folder, model, "torch-export", "net.pt2")
        if fmt == "onnx":  # the TorchScript-based exporter (a tenth of a second; the dynamo one takes seconds)
            names = _onnx_output_names(model, net, x)
            axes = None if model.batch else {"image": {0: "batch"}, **{n: {0: "batch"} for n in names}}
            torch.onnx.export(net.eval(), (x,), str(folder / "net.onnx"), dynamo=False, input_names=["image"],
                              output_names=names, dynamic_axes=axes)
            return _model_json(folder, model, "onnx", "net.onnx")
    raise ValueError(f"unknown format {fmt!r}")


def _onnx_output_names(model: ZooModel, net: torch.nn.Module, x: torch.Tensor) -> list[str]:
    """The graph's output names: a dict's keys or a NamedTuple's fields, as exporters name them for users."""
    with torch.no_grad():
        out = net.eval()(x)
    if isinstance(out, dict):
        return list(out)
    if hasattr(out, "_fields"):
        return list(out._fields)
    return [f"output{k}" for k in range(len(out))] if isinstance(out, tuple) else ["scores"]


def write_zoo(folder: Path, names=None) -> dict[tuple[str, str], Path]:
    """Every (model, format) package of the zoo under ``folder``."""
    out = {}
    for name, model in ZOO.items():
        if names is not None and name not in names:
            continue
        for fmt in model.formats:
            out[name, fmt] = write_package(folder / f"{name}-{fmt}", model, fmt)
    return out
