"""Networks that take one batch size only (an ONNX file or exported program saved with a fixed batch): any batch
is cut into that size, the last piece padded with copies of its last image, and the padding's outputs dropped.

Such a network says its size as ``fixed_batch_size``; ``DiDAEngine`` then batches to that size by itself, so
padding is needed at most once per run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def in_fixed_batches(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int | None) -> torch.Tensor:
    """``run`` over ``x`` (B, ...) in batches of exactly ``size`` (any batch when ``size`` is None)."""
    if size is None or x.shape[0] == size:
        return run(x)
    pieces = []
    for start in range(0, x.shape[0], size):
        chunk = x[start : start + size]
        n = chunk.shape[0]
        if n < size:
            chunk = torch.cat([chunk, chunk[-1:].expand(size - n, *chunk.shape[1:])])
        pieces.append(run(chunk)[:n])
    return torch.cat(pieces)


def batch_dimension(shape) -> int | None:
    """The fixed batch size of an input shape whose first entry is an int (None when it is symbolic)."""
    first = shape[0] if len(shape) else None
    return first if isinstance(first, int) and not isinstance(first, bool) and first > 0 else None
