"""``architecture: "timm:<name>"``: a timm network built with random weights (nothing is downloaded), then the
package's state dict loaded into it."""

from __future__ import annotations

import torch

from .registry import Source
from ..suggest import did_you_mean
from .spec import ModelPackageError, ModelSpec
from .weights import load_weights

PREFIX = "timm:"


def build_timm(spec: ModelSpec) -> torch.nn.Module:
    """The timm architecture of a spec, with random weights (nothing is downloaded)."""
    import timm

    name = spec.architecture.removeprefix(PREFIX)
    if not timm.is_model(name):
        raise ModelPackageError(
            f"architecture {spec.architecture!r} is not a timm model" + did_you_mean(name, timm.list_models())
            + "; use 'timm:<name>' with a name from timm.list_models(), or another architecture of "
            "DiDALib.models.registry (torchvision:<name>, python:<file.py>:<callable>, onnx, torch-export)"
        )
    try:
        return timm.create_model(
            name, pretrained=False, num_classes=len(spec.classes), in_chans=spec.channels, **spec.architecture_args
        )
    except Exception as exc:  # noqa: BLE001 -- a builder argument of the wrong kind fails anywhere inside timm
        raise ModelPackageError(f"'architecture_args' {spec.architecture_args} do not fit {name} "
                                f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}): check them in "
                                "model.json") from None


def load_timm(spec: ModelSpec, source: Source) -> torch.nn.Module:
    """The timm network of ``spec`` with the weights of the package."""
    return load_weights(build_timm(spec), source.weights, spec.architecture, len(spec.classes), source.notes)
