"""Job plans: the masked images the engine passes through the model for one image, and how their scores become
each grid's values.

A *job* is one masked image: a set of hidden cells of one grid. A plan is a run of *segments*, each the jobs of one
grid (or one fixed image: job 0 is always the original, with nothing hidden). A segment says which cells each of
its jobs hides, and the engine builds the pixel masks on the device by gathering that through the grid's cell of
every pixel (``hidden[cell of pixel]``), so one code path serves both estimators: leave-one-out (each job hides
one cell: the paper's d, this module) and Shapley permutation walks (each job hides one more cell, ``shapley.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .estimators import LEAVE_ONE_OUT
from .grid import GridKey, cell_index_map, grid_shape


@dataclass(frozen=True)
class Segment:
    """Jobs ``start .. start + count`` of a plan: each hides cells of one partition of the image.

    ``pixels`` (H * W,) gives every pixel of the image its cell, ``cells`` (never hidden) for a pixel outside the
    explained region; ``key`` is the grid (None for a fixed image such as the original), ``shape`` its (rows,
    columns) of cells."""

    key: GridKey | None
    shape: tuple[int, int]
    start: int
    count: int
    pixels: torch.Tensor

    @property
    def stop(self) -> int:
        return self.start + self.count

    @property
    def cells(self) -> int:
        return self.shape[0] * self.shape[1]

    def hidden(self, lo: int, hi: int) -> torch.Tensor:
        """(hi - lo, cells + 1) bool: the cells jobs lo..hi (plan numbers, within this segment) hide."""
        raise NotImplementedError

    def masks(self, lo: int, hi: int) -> torch.Tensor:
        """(hi - lo, H * W) bool: the pixels jobs lo..hi hide."""
        return self.hidden(lo, hi)[:, self.pixels]

    def values(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """This grid's values (K, rows, columns) float32 and their standard errors (None where exact), from the
        host scores (at least ``stop`` rows, K columns) of the plan's jobs."""
        raise NotImplementedError


@dataclass(frozen=True)
class Fixed(Segment):
    """One job that hides the cells in ``hide`` (none: the original; all: the whole region)."""

    hide: tuple[bool, ...] = ()

    def hidden(self, lo: int, hi: int) -> torch.Tensor:
        row = torch.tensor([*self.hide, False], dtype=torch.bool, device=self.pixels.device)
        return row[None].expand(hi - lo, -1)


@dataclass(frozen=True)
class LeaveOneOut(Segment):
    """Job ``start + c`` hides cell c alone; its value is ``d_c = C(I) - C(M_c)``."""

    def hidden(self, lo: int, hi: int) -> torch.Tensor:
        dev = self.pixels.device
        jobs = torch.arange(lo - self.start, hi - self.start, device=dev)
        return jobs[:, None] == torch.arange(self.cells + 1, device=dev)[None]

    def values(self, scores: np.ndarray) -> tuple[np.ndarray, None]:
        rows = scores[self.start : self.stop]
        return (scores[0][None, :] - rows).astype(np.float32).T.reshape(-1, *self.shape), None


@dataclass(frozen=True)
class JobPlan:
    """Every job of one image of ``image_shape`` (H, W), segment after segment, coarse grids first; ``estimator``
    names what the values of its grids are, ``details`` anything else they depend on (Shapley: permutations and
    seed)."""

    segments: tuple[Segment, ...]
    image_shape: tuple[int, int]
    estimator: str = LEAVE_ONE_OUT
    details: tuple = ()

    @property
    def num_jobs(self) -> int:
        return self.segments[-1].stop

    @property
    def grids(self) -> tuple[Segment, ...]:
        """The segments that are grids, in plan order (coarse to fine)."""
        return tuple(s for s in self.segments if s.key is not None)

    def masks(self, start: int, stop: int) -> torch.Tensor:
        """(stop - start, 1, H, W) bool, True where jobs start..stop hide a pixel."""
        parts = [s.masks(max(start, s.start), min(stop, s.stop)) for s in self.segments
                 if s.start < stop and s.stop > start]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        return out.view(stop - start, 1, *self.image_shape)


def pixel_cells(image_shape: tuple[int, int], region: tuple[int, int, int, int], key: GridKey,
                device: torch.device) -> torch.Tensor:
    """(H * W,) int32 on ``device``: the cell (``i * columns + j``) of grid ``key`` over ``region`` that holds each
    pixel of the image, and the cell count for pixels outside the region (a column no job hides). int32 halves the
    plan's device memory against int64 (a plan keeps one map per grid)."""
    top, left, h, w = region
    rows, cols = grid_shape(key)
    out = np.full(image_shape, rows * cols, dtype=np.int32)
    out[top : top + h, left : left + w] = cell_index_map(h, w, key)
    return torch.from_numpy(out.ravel()).to(device)


def original(image_shape: tuple[int, int], device: torch.device) -> Fixed:
    """Job 0: the image as it is (a one-cell partition that hides nothing)."""
    return Fixed(None, (1, 1), 0, 1, torch.ones(image_shape[0] * image_shape[1], dtype=torch.int32, device=device),
                 (False,))


def leave_one_out_plan(image_shape: tuple[int, int], region: tuple[int, int, int, int], grids: Sequence[GridKey],
                       device: torch.device) -> JobPlan:
    """The paper's plan: the original, then every cell of every grid hidden alone, grids in the order given."""
    segments: list[Segment] = [original(image_shape, device)]
    for g in grids:
        rows, cols = grid_shape(g)
        segments.append(LeaveOneOut(g, (rows, cols), segments[-1].stop, rows * cols,
                                    pixel_cells(image_shape, region, g, device)))
    return JobPlan(tuple(segments), tuple(image_shape))
