"""Model packages: a folder with ``model.json`` and weights, loaded safely and checked against each other.

The fields of ``model.json`` are listed and checked in ``spec``, the architectures a package can name are in
``registry``, and ``preprocess`` makes the model input. Weights are never unpickled: safetensors first,
``torch.load(weights_only=True)`` for ``.pth``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .registry import loader_for
from .spec import ModelPackageError, ModelSpec, read_spec


@dataclass
class ModelPackage:
    """A loaded package: its spec, the ready model (eval mode, CPU) and where it came from."""

    spec: ModelSpec
    model: torch.nn.Module
    path: Path


def load_model_package(package: str | Path) -> ModelPackage:
    """Load a model package, checking that the weights fit the architecture and the class list."""
    path = Path(package)
    if not path.exists():
        raise ModelPackageError(f"{path}: no such model package folder")
    spec = read_spec(path)
    root = path if path.is_dir() else path.parent
    weights = root / spec.weights
    if not weights.is_file():
        raise ModelPackageError(f"{root}: the weights file {spec.weights!r} named in model.json is missing")
    model = loader_for(spec.architecture)(spec, weights)
    model.eval()
    _check_output(model, spec, weights)
    return ModelPackage(spec, model, root)


def _check_output(model: torch.nn.Module, spec: ModelSpec, where: Path) -> None:
    x = torch.zeros((1, spec.channels, *spec.input_size))
    try:
        with torch.inference_mode():
            out = model(x)
    except Exception as exc:
        raise ModelPackageError(
            f"{where}: the model fails on a {tuple(x.shape)} input ({type(exc).__name__}: {exc}); "
            "check 'input_size' and 'channels' in model.json"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, len(spec.classes)):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelPackageError(
            f"{where}: the model returns {shape} for one image but model.json lists {len(spec.classes)} classes"
        )


def save_model_package(folder: str | Path, spec: ModelSpec, model: torch.nn.Module) -> Path:
    """Write ``model.json`` and ``model.safetensors`` for a timm model (used by the demo model's training)."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / spec.weights))
    (out / "model.json").write_text(json.dumps(spec.to_dict(), indent=2) + "\n", encoding="utf-8")
    return out


def demo_model_path() -> Path:
    """The bundled demo model package (``Resources/DemoModel``): beside the package in a source checkout, or the
    folder named by ``DIDA_DEMO_MODEL``. It is a demonstration model trained on synthetic phantoms, not for
    clinical use."""
    import os

    env = os.environ.get("DIDA_DEMO_MODEL")
    library = Path(__file__).resolve().parents[1]  # DiDALib, beside Resources/ in a checkout and in Slicer
    candidates = ([Path(env)] if env else []) + [library.parent / "Resources" / "DemoModel",
                                                   library / "Resources" / "DemoModel"]
    for c in candidates:
        if (c / "model.json").is_file():
            return c
    raise ModelPackageError(
        "the bundled demo model was not found (looked in " + ", ".join(str(c) for c in candidates) + "); "
        "reinstall DiDA from a complete checkout or set DIDA_DEMO_MODEL to the package folder"
    )
