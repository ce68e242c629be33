"""The ``model.json`` fields that say how the model is called (no torch): ``output``, which of its outputs holds the
class scores, and ``fixed_batch``, the one batch size it takes.

- ``output``: ``0`` (an index into a tuple or list the model returns, e.g. ``(logits, features)``), or a name:
  ``"logits"`` is a dict's key (``{"logits": ...}``), an object's attribute (``out.logits``, as Hugging Face and
  NamedTuple outputs have it), or an ONNX graph's output name. Absent: the model returns the scores tensor itself.
- ``fixed_batch``: a model written for one batch size (``x.view(4, -1)``) is given exactly that many images per
  call, the last call padded (``fixed_batch.in_fixed_batches``). ONNX and torch.export files that fix their batch
  dimension say so themselves; for them the field, where given, must agree.
"""

from __future__ import annotations



def _error(message: str) -> ValueError:
    from .spec import ModelPackageError  # spec imports this module: the error class is looked up when raised

    return ModelPackageError(message)


def check_output(value, where: str) -> int | str | None:
    """``output`` as given, if it is a non-negative index or a non-empty name (None when absent)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip() and len(value) <= 200:
        return value
    raise _error(f"{where}: 'output' is {value!r}: give the index of the scores in the tuple the model "
                            "returns (e.g. 0) or their name (a dict key or attribute such as \"logits\")")


def check_fixed_batch(value, where: str) -> int | None:
    """``fixed_batch`` as given, if it is a whole number from 1 to 4096 (None when absent)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096:
        return value
    raise _error(f"{where}: 'fixed_batch' is {value!r}: give the one batch size the model takes, a whole "
                            "number such as 8, or remove the field if it takes any")
