"""Models in the styles users bring, built in the tests: a small residual OCT CNN published as a Python class plus
a plain ``torch.save`` state dict (like the Kermany 2018 classifiers), the same network exported to ONNX and with
``torch.export``, and a fine-tuned torchvision classifier's state dict."""

from __future__ import annotations

import types
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
INPUT = (48, 48)

# The author's file, as published: it imports only torch and builds the network from its class.
NET_SOURCE = '''
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class OCTResNet(nn.Module):
    def __init__(self, num_classes=4, width=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 5, stride=2, padding=2), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(Block(width), Block(width))
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def build(width=8):
    return OCTResNet(num_classes=4, width=width)
'''


def net_module() -> types.ModuleType:
    """The author's file as a module of the test (the reference: a plain nn.Module)."""
    module = types.ModuleType("third_party_net")
    exec(compile(NET_SOURCE, "third_party_net.py", "exec"), module.__dict__)
    return module


def trained_net(width: int = 8, seed: int = 0) -> torch.nn.Module:
    """The residual CNN with random weights of a trained network's scale, running statistics included."""
    g = torch.Generator().manual_seed(seed)
    net = net_module().OCTResNet(num_classes=len(CLASSES), width=width)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.4)
    return net.eval()


def write_python_style(folder: Path, net: torch.nn.Module) -> tuple[Path, Path]:
    """The published files: ``oct_resnet.py`` and ``oct_resnet.pth`` (a plain state dict)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "oct_resnet.py").write_text(NET_SOURCE, encoding="utf-8")
    torch.save(net.state_dict(), folder / "oct_resnet.pth")
    return folder / "oct_resnet.py", folder / "oct_resnet.pth"


def write_onnx(path: Path, net: torch.nn.Module) -> Path:
    """``torch.onnx.export`` (the dynamo exporter) with a dynamic batch; it writes the weights as external data
    beside the file (``<name>.data``), as it does for users."""
    x = torch.rand(2, 1, *INPUT)
    torch.onnx.export(net, (x,), str(path), dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},),
                      verbose=False)
    return path


def with_fixed_batch(src: Path, dst: Path, batch: int) -> Path:
    """A copy of an exported .onnx file whose input insists on one batch size (what exporting with a fixed batch
    writes at the input; a second export would cost seconds). Its external data stays shared under its name."""
    import onnx

    model = onnx.load(str(src), load_external_data=False)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(model, str(dst))
    return dst


def write_export(path: Path, net: torch.nn.Module, fixed_batch: int | None = None) -> Path:
    """``torch.export.save`` of ``torch.export.export``, batch dynamic unless ``fixed_batch``."""
    x = torch.rand(fixed_batch or 2, 1, *INPUT)
    shapes = None if fixed_batch else ({0: torch.export.Dim("batch")},)
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=shapes), str(path))
    return path


def finetuned_torchvision(name: str = "squeezenet1_1", head: str = "classifier.1", **args) -> torch.nn.Module:
    """A torchvision classifier fine-tuned the usual way: built for ImageNet, its last layer replaced by one for
    the four classes (squeezenet's is a 1 x 1 convolution, most others' a Linear layer)."""
    import torchvision

    net = torchvision.models.get_model(name, weights=None, **args)
    parent, _, child = head.rpartition(".")
    owner = net.get_submodule(parent) if parent else net
    old = getattr(owner, child)
    if isinstance(old, torch.nn.Conv2d):
        setattr(owner, child, torch.nn.Conv2d(old.in_channels, len(CLASSES), kernel_size=1))
    else:
        setattr(owner, child, torch.nn.Linear(old.in_features, len(CLASSES)))
    return net.eval()


def bscans(n: int = 2, depth: int = 40, width: int = 60, seed: int = 0) -> np.ndarray:
    """Speckled B-scans in [0, 1] with a dark vitreous and a bright band (a retina-like layout)."""
    rng = np.random.default_rng(seed)
    b = rng.random((n, depth, width), dtype=np.float32) * 0.3
    b[:, depth // 2 : depth // 2 + 6] += 0.6
    b[:, : depth // 5] *= 0.1
    return np.clip(b, 0, 1)


class ThirdParty(NamedTuple):
    net: torch.nn.Module  # the residual CNN as a plain nn.Module (the reference)
    code: Path  # its author's .py file
    state_dict: Path  # its plain torch.save state dict
    onnx: Path  # torch.onnx.export, dynamic batch (with its external data file beside it)
    onnx_fixed: Path  # the same with its input fixed to a batch of 3 (sharing oct_resnet.onnx.data)
    export: Path  # torch.export.save, dynamic batch
    export_fixed: Path  # torch.export.save with a fixed batch of 3
    torchvision: torch.nn.Module  # a fine-tuned squeezenet1_1 (its 'classifier.1' replaced)
    torchvision_state: Path  # its state dict


def write_all(folder: Path) -> ThirdParty:
    """Every third-party style's files in ``folder`` (exporting takes seconds: build them once)."""
    torch.manual_seed(0)
    net = trained_net()
    code, state = write_python_style(folder / "published", net)
    tv = finetuned_torchvision()
    torch.save(tv.state_dict(), folder / "squeezenet_oct.pth")
    onnx = write_onnx(folder / "oct_resnet.onnx", net)
    return ThirdParty(
        net=net, code=code, state_dict=state, onnx=onnx,
        onnx_fixed=with_fixed_batch(onnx, folder / "oct_resnet_b3.onnx", 3),
        export=write_export(folder / "oct_resnet.pt2", net),
        export_fixed=write_export(folder / "oct_resnet_b3.pt2", net, fixed_batch=3),
        torchvision=tv, torchvision_state=folder / "squeezenet_oct.pth",
    )  # fmt: skip


_BUILT: dict[str, ThirdParty] = {}


@pytest.fixture(scope="session")
def third_party(tmp_path_factory) -> ThirdParty:
    """The files of ``write_all``, built once per session however many test modules import this fixture (a
    conftest.py here would shadow the top-level one that other tests import from)."""
    if "files" not in _BUILT:
        _BUILT["files"] = write_all(tmp_path_factory.mktemp("third_party"))
    return _BUILT["files"]
