"""``architecture: "torchvision:<name>"``: a torchvision classifier built with random weights (nothing is
downloaded), then the package's state dict loaded into it.

Without ``head`` the network is built for the package's class count (``num_classes``). With ``head`` (e.g.
``"classifier.1"``, ``"fc"``) it is built as for ImageNet and only that layer is replaced by one of the same kind
sized to the classes: the usual fine-tuning recipe, which leaves any other classifier (an auxiliary head) as it
was.
"""

from __future__ import annotations

import torch

from .registry import Source
from ..suggest import did_you_mean
from .spec import ModelPackageError, ModelSpec
from .weights import load_weights

PREFIX = "torchvision:"


def _resized(layer: torch.nn.Module, classes: int, where: str) -> torch.nn.Module:
    bias = getattr(layer, "bias", None) is not None
    if isinstance(layer, torch.nn.Linear):
        return torch.nn.Linear(layer.in_features, classes, bias=bias)
    if isinstance(layer, torch.nn.Conv2d):  # squeezenet's classifier is a 1 x 1 convolution
        return torch.nn.Conv2d(layer.in_channels, classes, layer.kernel_size, layer.stride, layer.padding, bias=bias)
    raise ModelPackageError(f"'head' {where!r} is a {type(layer).__name__}: name the Linear (or Conv2d) layer that "
                            "was resized to the classes")


def _replace_head(model: torch.nn.Module, head: str, classes: int) -> None:
    parent_name, _, child = head.rpartition(".")
    try:
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = parent.get_submodule(child)
    except AttributeError:
        layers = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-3:]
        raise ModelPackageError(f"'head' {head!r} is not a layer of this network (its last layers: "
                                f"{', '.join(layers)})") from None
    setattr(parent, child, _resized(layer, classes, head))


def build_torchvision(spec: ModelSpec) -> torch.nn.Module:
    """The torchvision classifier of a spec, with random weights and its head sized to the classes."""
    import torchvision.models as tvm

    name = spec.architecture.removeprefix(PREFIX)
    known = tvm.list_models(module=tvm)  # classifiers only, not detection or segmentation models
    if name not in known:
        raise ModelPackageError(
            f"architecture {spec.architecture!r} is not a torchvision classifier" + did_you_mean(name, known)
            + "; use 'torchvision:<name>' with a name from torchvision.models.list_models(module=torchvision.models)"
        )
    if spec.channels != 3:
        raise ModelPackageError(f"torchvision classifiers take 3 channels but 'channels' is {spec.channels}: set it "
                                "to 3 (the grey B-scan is repeated), or build a changed network with python:")
    args = dict(spec.architecture_args)
    if spec.head is None:
        args.setdefault("num_classes", len(spec.classes))
    try:
        model = tvm.get_model(name, weights=None, **args)
    except Exception as exc:  # noqa: BLE001 -- a builder argument of the wrong kind fails anywhere inside torchvision
        raise ModelPackageError(f"'architecture_args' {spec.architecture_args} do not fit {name} "
                                f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}): check them in "
                                "model.json") from None
    if spec.head is not None:
        _replace_head(model, spec.head, len(spec.classes))
    return model


def load_torchvision(spec: ModelSpec, source: Source) -> torch.nn.Module:
    """The torchvision classifier of ``spec`` with the weights of the package."""
    return load_weights(build_torchvision(spec), source.weights, spec.architecture, len(spec.classes),
                        source.notes)
