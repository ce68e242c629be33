"""DiDA's evidence map: one signed number per pixel, for readouts, rankings and every figure we report.

The Mixed Image is the method's picture: red and blue accumulated apart, brightness lifted by a gamma so faint
cells show. As a *measurement* it is biased by that display: the gamma flattens the order of |d| and a cell red at
one scale and blue at another counts twice. The evidence map reads the same passes plainly, in the units of d:

    E(x) = mean over grid sizes n of ( mean over the grids of size n of d(cell of that grid holding x) )

so each pixel carries the average score change of the cells that hid it, at every scale and offset alike. On the
paper's aligned grids a pixel sees one cell per size; on the evidence schedule (``EVIDENCE_GRIDS``: several sizes,
each at 2 x 2 half-cell offsets) it sees four, whose overlap localises evidence within a cell
(docs/faithfulness.md has the benchmark that chose this readout and schedule).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..engine.grid import size_groups
from ..engine.result import DiDAResult
from .mixing import cell_map


def evidence_map(result: DiDAResult, class_index: int | str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The signed evidence of one class at every pixel (float32, in the units of d: probability or logit): positive
    for the class, negative against it. On the explained region's pixels, or resampled (nearest, cells crisp)
    onto ``shape``, e.g. the B-scan's own (depth, width). Works on results of any grid schedule.

    At each pixel: the mean over grid sizes of the mean over that size's grids (aligned and shifted) of the value of
    the cell that hid the pixel. Linear, so it ranks and measures where the Mixed Image (gamma 0.5) only shows; the
    most faithful leave-one-out map on ``EVIDENCE_GRIDS`` (docs/faithfulness.md).

    Example
    -------
    >>> result = DiDAEngine(model, fill="background").explain(image, grids=EVIDENCE_GRIDS)
    >>> e = evidence_map(result, class_index=0)     # (H, W) float32: > 0 for, < 0 against
    >>> row, col = np.unravel_index(np.argmax(e), e.shape)   # the strongest evidence for the class
    """
    k = result.class_index(class_index)
    _, _, h, w = result.region
    out_shape = tuple(int(v) for v in shape) if shape is not None else (h, w)
    sizes = size_groups(result.grids)
    total = np.zeros(out_shape, dtype=np.float64)
    for grids in sizes.values():
        for g in grids:
            d = result.deltas[g][k].ravel().astype(np.float64)
            total += d[cell_map(result, g, shape)] / len(grids)
    return (total / len(sizes)).astype(np.float32)


def evidence_maps(result: DiDAResult, classes: Sequence[int | str], shape: tuple[int, int] | None = None
                  ) -> np.ndarray:
    """Evidence maps of several classes, stacked (len(classes), H, W)."""
    return np.stack([evidence_map(result, k, shape) for k in classes])


def strongest_point(maps: Sequence[np.ndarray] | np.ndarray) -> tuple[int, int]:
    """(row, col) where the given evidence maps are strongest in total, for or against (the largest sum of |E|)."""
    total = np.abs(np.asarray(maps, dtype=np.float64)).reshape(-1, *np.shape(maps)[-2:]).sum(axis=0)
    row, col = np.unravel_index(int(np.argmax(total)), total.shape)
    return int(row), int(col)
