"""State dicts from weight files, read without unpickling anything, and fitted to a network with clear errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .spec import ModelPackageError


def read_state_dict(weights: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or of a ``torch.save`` state dict (``weights_only=True``), with a
    ``module.`` prefix (DataParallel) removed and a ``state_dict``/``model`` wrapper unpacked."""
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(weights), device="cpu")
        with warnings.catch_warnings():  # a refused pickle is said once, in our line, not with torch's warning too
            warnings.simplefilter("ignore")
            obj = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelPackageError(
            f"{weights}: the weights cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "expected a .safetensors file or a state dict saved with torch.save (loaded with weights_only=True)"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelPackageError(f"{weights}: does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _head_mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], classes: int) -> str | None:
    for key, value in state.items():
        if (key in own and own[key].shape != value.shape and own[key].shape[:1] == (classes,)
                and value.shape[:1] != (classes,)):  # a layer of another width with K outputs is not a head issue
            return (f"the weights' head {key!r} has {value.shape[0]} output(s) but model.json lists {classes} "
                    "classes: the class list and the weights must come from the same training")
    return None


def load_weights(model: torch.nn.Module, weights: Path, architecture: str, classes: int) -> torch.nn.Module:
    """Load the state dict in ``weights`` into ``model`` strictly, or say exactly what does not fit (a head sized
    for another class count, missing or unexpected keys)."""
    state = read_state_dict(weights)
    own = model.state_dict()
    mismatch = _head_mismatch(own, state, classes)
    if mismatch:
        raise ModelPackageError(f"{weights}: {mismatch}")
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ModelPackageError(
            f"{weights}: the weights do not fit {architecture}: "
            + (f"{len(missing)} missing key(s) (e.g. {missing[:3]})" if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[:3]})" if unexpected else "")
            + "; check that 'architecture' names the network the weights were trained with"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelPackageError(f"{weights}: the weights do not fit {architecture}: {exc}") from None
    return model
