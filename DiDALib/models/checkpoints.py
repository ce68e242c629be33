"""Checkpoints as people save them, read without unpickling and fitted to a network's keys, saying what was done.

- Wrappers: ``{"state_dict": ...}`` (Lightning), ``{"model_state_dict": ...}``, ``{"model": ...}`` around the state
  dict, next to epochs and optimiser states, are unpacked.
- Prefixes: ``module.`` (DataParallel), ``model.`` (Lightning), ``_orig_mod.`` (torch.compile) or any other that
  every key of the network carries: removed where exactly one prefix makes the keys those of the network (keys
  outside it, an EMA copy or a loss's buffers, are left out); where two would (a network and its EMA copy),
  ``--strip-prefix`` chooses.
- A whole pickled model (``torch.save(model)``) is refused with the two lines that save its state dict:
  ``torch.load(weights_only=True)`` refuses it before any of its code runs, and that refusal names its class.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch

from .spec import ModelPackageError

#: Entries of a checkpoint that hold the state dict, in the order they are looked for.
WRAPPERS = ("state_dict", "model_state_dict", "model")
#: A pickled class whose name ends so is a container of settings beside the weights (Lightning's hyper-parameters,
#: argparse or OmegaConf settings), not a model.
_SETTINGS = re.compile(r"(Dict|Namespace|Config|List|Container)$")


def _pickled_class(message: str) -> str | None:
    found = re.search(r"GLOBAL ([\w.]+)", message)
    return found.group(1) if found else None


def _refusal(weights: Path, exc: Exception) -> ModelPackageError:
    """The error for a file ``torch.load(weights_only=True)`` cannot read."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    cls = _pickled_class(text)
    if cls and _SETTINGS.search(cls.rsplit(".", 1)[-1]):
        return ModelPackageError(
            f"{weights}: the checkpoint holds a pickled {cls} beside its weights, which DiDA does not unpickle (a "
            f"pickle can run any code); save the state dict alone: ckpt = torch.load('{weights.name}', "
            f"weights_only=False) (only for a file you trust), then torch.save(ckpt['state_dict'], "
            f"'{weights.stem}_state_dict.pth'), and package that file")
    if cls:
        return ModelPackageError(
            f"{weights}: holds a whole pickled model ({cls}), not a state dict; DiDA never unpickles a file (a pickle "
            f"can run any code). Where {cls.rsplit('.', 1)[-1]} is defined, run model = torch.load("
            f"'{weights.name}', weights_only=False) (only for a file you trust), then torch.save(model.state_dict(), "
            f"'{weights.stem}_state_dict.pth'), and package that file")
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    return ModelPackageError(
        f"{weights}: the weights cannot be read ({type(exc).__name__}: {first}); expected a .safetensors file or a "
        "state dict saved with torch.save (loaded with weights_only=True)")


def read_checkpoint(weights: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of a ``.safetensors`` file or of a ``torch.save`` checkpoint (``weights_only=True``), a wrapper
    unpacked, and what was done, in words."""
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(weights), device="cpu"), []
        with warnings.catch_warnings():  # a refused pickle is said once, in our line, not with torch's warning too
            warnings.simplefilter("ignore")
            obj = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _refusal(weights, exc) from None
    notes = []
    unwrapped = True
    while unwrapped and isinstance(obj, dict):
        unwrapped = False
        for key in WRAPPERS:
            if isinstance(obj.get(key), dict) and obj[key]:
                notes.append(f"the checkpoint's {key!r} entry")
                obj, unwrapped = obj[key], True
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = ", ".join(repr(k) for k in list(obj)[:6]) if isinstance(obj, dict) else type(obj).__name__
        raise ModelPackageError(f"{weights}: does not hold a state dict of tensors (found {found}); save one with "
                                "torch.save(model.state_dict(), 'weights.pth')")
    return dict(obj), notes


def _prefixes(keys: Iterable[str]) -> set[str]:
    """The leading one and two dotted components of the keys, each with its dot."""
    out = set()
    for k in keys:
        parts = k.split(".")
        out.update(".".join(parts[:n]) + "." for n in (1, 2) if len(parts) > n)
    return out


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The keys that start with ``prefix``, without it (a ModelPackageError when none does)."""
    out = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not out:
        starts = sorted({k.split(".")[0] + "." for k in state})[:6]
        raise ModelPackageError(f"--strip-prefix: no key starts with {prefix!r} (the keys start with "
                                f"{', '.join(map(repr, starts))})")
    return out


def fit_keys(state: dict[str, torch.Tensor], own: Iterable[str]) -> tuple[dict[str, torch.Tensor], str | None]:
    """``state`` with the one prefix removed that makes its keys the network's ``own`` (and a note saying so), or
    unchanged when none does; two prefixes that would both fit are refused, naming them."""
    own = set(own)
    if set(state) == own:
        return state, None
    fits = [p for p in sorted(_prefixes(state)) if {k[len(p):] for k in state if k.startswith(p)} == own]
    if len(fits) > 1:
        raise ModelPackageError(f"the checkpoint holds the network {len(fits)} times, under the prefixes "
                                f"{' and '.join(map(repr, fits))} (e.g. a model and its EMA copy): choose one with "
                                f"--strip-prefix (e.g. --strip-prefix {fits[0]})")
    if not fits:
        return state, None
    prefix = fits[0]
    fitted = strip_prefix(state, prefix)
    left = len(state) - len(fitted)
    return fitted, (f"prefix {prefix!r} removed from {len(fitted)} keys" +
                    (f" ({left} other keys left out)" if left else ""))


def prefix_hint(state: Iterable[str], own: Iterable[str]) -> str:
    """A hint for keys that do not fit: the prefix most of them share, if removing it would match most of the
    network's keys."""
    own, keys = set(own), list(state)
    best = max(_prefixes(keys), key=lambda p: len({k[len(p):] for k in keys if k.startswith(p)} & own), default=None)
    if best is None or len({k[len(best):] for k in keys if k.startswith(best)} & own) < len(own) / 2:
        return ""
    return f"; most keys start with {best!r}: try --strip-prefix {best}"
