"""State dicts from weight files, read without unpickling anything (``checkpoints``), and fitted to a network with
clear errors: a head sized for another class count, a first layer for another number of channels, missing or
unexpected keys."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoints import fit_keys, prefix_hint, read_checkpoint
from .spec import ModelPackageError


def read_state_dict(weights: Path, own: set[str] | None = None, notes: list[str] | None = None
                    ) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or of a ``torch.save`` checkpoint (wrappers unpacked), with the one
    prefix removed that makes them the keys ``own`` of the network (``checkpoints.fit_keys``); what was done is
    appended to ``notes``."""
    state, done = read_checkpoint(weights)
    if own is not None:
        try:
            state, fitted = fit_keys(state, own)
        except ModelPackageError as exc:
            raise ModelPackageError(f"{weights}: {exc}") from None
        done += [fitted] if fitted else []
    if notes is not None and done:
        notes.append(f"weights: {', '.join(done)}")
    return state


def _head_mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], classes: int) -> str | None:
    for key, value in state.items():
        if (key in own and own[key].shape != value.shape and own[key].shape[:1] == (classes,)
                and value.shape[:1] != (classes,)):  # a layer of another width with K outputs is not a head issue
            return (f"the weights' head {key!r} has {value.shape[0]} output(s) but model.json lists {classes} "
                    "classes: the class list and the weights must come from the same training")
    return None


def _channel_mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """The first convolution trained for another number of input channels (grey 1 vs RGB 3), with the fix."""
    for key, value in state.items():
        mine = own.get(key)
        if (mine is not None and mine.ndim == value.ndim == 4 and mine.shape[1] != value.shape[1]
                and mine.shape[0] == value.shape[0] and mine.shape[2:] == value.shape[2:]
                and {int(mine.shape[1]), int(value.shape[1])} <= {1, 3}):
            n = int(value.shape[1])
            extra = (" and --normalisation imagenet if it was trained on ImageNet-normalised images" if n == 3
                     else "")
            return (f"the weights' first layer {key!r} takes {n} input channel{'s' if n > 1 else ''} but the "
                    f"package gives the network {int(mine.shape[1])}: set 'channels' to {n} (dida package --channels "
                    f"{n}{extra})")
    return None


def load_weights(model: torch.nn.Module, weights: Path, architecture: str, classes: int,
                 notes: list[str] | None = None) -> torch.nn.Module:
    """Load the state dict in ``weights`` into ``model`` strictly, or say exactly what does not fit (a head sized
    for another class count, a first layer for other channels, missing or unexpected keys); what had to be done to
    the checkpoint (a wrapper, a prefix) is appended to ``notes``."""
    own = model.state_dict()
    state = read_state_dict(weights, set(own), notes)
    mismatch = _head_mismatch(own, state, classes) or _channel_mismatch(own, state)
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
            + prefix_hint(state, own)
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelPackageError(f"{weights}: the weights do not fit {architecture}: {exc}") from None
    return model
