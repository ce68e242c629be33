"""A model called the way its package says (``call_fields``): its class scores picked from what it returns
(``output``), and its batches cut to the one size it takes (``fixed_batch``).

``CalledModel`` wraps any torch model of a package. It keeps ``train``/``eval`` and ``to`` going to the model
itself (an exported program or a TorchScript module has its own), and says its batch size as
``fixed_batch_size``, which the engine then batches to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .fixed_batch import in_fixed_batches
from .spec import ModelPackageError


class OutputError(ValueError):
    """The model's outputs do not hold what ``output`` names (or it returns several and ``output`` is not set)."""


def describe(out) -> str:
    """What a model returned, in a few words: ``a tuple of 2 (tensor (1, 4), tensor (1, 5))``."""
    def one(v) -> str:
        return f"tensor {tuple(v.shape)}" if isinstance(v, torch.Tensor) else type(v).__name__

    if isinstance(out, Mapping):
        return f"a dict ({', '.join(f'{k!r}: {one(v)}' for k, v in list(out.items())[:8])})"
    if isinstance(out, Sequence) and not isinstance(out, str):
        return f"a {type(out).__name__} of {len(out)} ({', '.join(one(v) for v in list(out)[:8])})"
    fields = _tensor_attributes(out)
    return f"a {type(out).__name__}" + (f" (with {', '.join(f'.{k}' for k in fields)})" if fields else "")


def _tensor_attributes(out) -> list[str]:
    names = getattr(out, "_fields", None) or list(getattr(out, "__dict__", {}))
    return [n for n in names if isinstance(getattr(out, n, None), torch.Tensor)][:8]


def candidates(out, classes: int) -> list[int | str]:
    """The entries of a model's outputs that look like scores for ``classes`` classes: (B, classes) tensors."""
    def fits(v) -> bool:
        return isinstance(v, torch.Tensor) and v.ndim == 2 and v.shape[1] == classes

    if isinstance(out, Mapping):
        return [k for k, v in out.items() if fits(v)]
    if hasattr(out, "_fields"):  # a NamedTuple: by name, which outlives a reordering
        return [n for n in out._fields if fits(getattr(out, n))]
    if isinstance(out, Sequence) and not isinstance(out, str):
        return [k for k, v in enumerate(out) if fits(v)]
    return [n for n in _tensor_attributes(out) if fits(getattr(out, n))]


def unpicked(out, classes: int) -> str:
    """The sentence for a model that returns more than its scores while its package names no ``output``."""
    found = candidates(out, classes)
    example = found[0] if found else 0
    hint = f" ({', '.join(map(repr, found))} {'has' if len(found) == 1 else 'have'} one score per class)" if found \
        else ""
    return (f"the model returns {describe(out)}{hint}: say which output holds the class scores with 'output' in "
            f"model.json, e.g. \"output\": {json_text(example)} (dida package --output {example})")


def json_text(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def pick(out, output: int | str | None):
    """The entry ``output`` of a model's outputs (``out`` itself when ``output`` is None)."""
    if output is None:
        return out
    if isinstance(output, int):
        if isinstance(out, Sequence) and not isinstance(out, (str, torch.Tensor)):
            if output < len(out):
                return out[output]
            raise OutputError(f"'output' is {output} but the model returns {describe(out)}: give an index below "
                              f"{len(out)}")
        raise OutputError(f"'output' is {output} (an index) but the model returns {describe(out)}, not a tuple")
    if isinstance(out, Mapping):
        if output in out:
            return out[output]
        raise OutputError(f"'output' is {output!r} but the model returns {describe(out)}: name one of its keys")
    if isinstance(out, torch.Tensor) or not hasattr(out, output):
        raise OutputError(f"'output' is {output!r} but the model returns {describe(out)}, which has no {output!r}")
    return getattr(out, output)


class CalledModel(torch.nn.Module):
    """``model`` called as its package says: the scores picked by ``output`` from what it returns (``pick_output``
    False where the model picks them itself, as an ONNX session does by name), in batches of ``fixed_batch``."""

    def __init__(self, model: torch.nn.Module, output: int | str | None, fixed_batch: int | None,
                 pick_output: bool = True):
        super().__init__()
        self.inner = model
        self.output = output if pick_output else None
        self.fixed_batch_size = fixed_batch or getattr(model, "fixed_batch_size", None)

    def train(self, mode: bool = True) -> CalledModel:
        self.training = mode
        self.inner.train(mode)
        return self

    def to(self, *args, **kwargs) -> CalledModel:
        self.inner = self.inner.to(*args, **kwargs)
        return self

    def forward(self, x: torch.Tensor):
        return in_fixed_batches(lambda chunk: pick(self.inner(chunk), self.output), x, self.fixed_batch_size)


def call_as_packaged(model: torch.nn.Module, output: int | str | None, fixed_batch: int | None,
                     where) -> torch.nn.Module:
    """``model`` wrapped by ``CalledModel`` where its package asks for it (unchanged otherwise); a ``fixed_batch``
    that disagrees with the batch size the file itself fixes is refused."""
    own = getattr(model, "fixed_batch_size", None)
    if fixed_batch is not None and own is not None and own != fixed_batch:
        raise ModelPackageError(f"{where}: model.json's 'fixed_batch' is {fixed_batch} but the file takes batches "
                                f"of {own}: remove 'fixed_batch' (the file says it) or make them agree")
    picks = output is not None and not getattr(model, "picks_output", False)
    if not picks and (fixed_batch is None or fixed_batch == own):
        return model
    return CalledModel(model, output, fixed_batch, pick_output=picks)
