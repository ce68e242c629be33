"""The raw outcome of DiDA on one image: base scores and the signed contribution d of every cell and class."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .grid import GridKey, cell_index_map


@dataclass
class DiDAResult:
    """DiDA on one image (one B-scan).

    ``base_scores`` (K,) are the scores of the unmasked image; ``deltas[n]`` (K, n, n) holds
    ``d_ij = C_k(I_o) - C_k(M_ij)`` in float32 for every class k. The grids cut ``region`` = (top, left, height,
    width) of the model input of shape ``image_shape`` = (H, W). A shifted grid (``OffsetGrid``) is a key like a
    size, its array (K, rows, columns) with one more row or column where it is shifted.

    ``estimator`` says what the values are: ``"leave-one-out"`` (the paper's d above) or ``"shapley"`` (each cell's
    Shapley value, read exactly like d: signed, in score units, one array per grid; ``engine/shapley.py``), whose
    standard errors ``stderr[n]`` has the same shapes (None for leave-one-out, which is exact).

    ``score`` names the unit of the scores and d (``"probabilities"``, ``"logits"`` or ``"log-odds"``);
    ``index`` is the image's index in its volume; ``class_names`` the classes in output order (when the engine was
    given them: then every function that takes a class takes its name too).

    Example
    -------
    >>> result = DiDAEngine(model).explain(image)          # DiDAEngine's example
    >>> result.top_classes(3)                               # class indices, best first
    >>> result.base_scores[result.top_classes(1)[0]]        # the top class's score
    >>> result.deltas[7][k]                                 # (7, 7): d of class k on the 7 x 7 grid
    >>> result.delta_map(7, k)                              # the same per pixel of the explained region
    """

    base_scores: np.ndarray
    deltas: dict[GridKey, np.ndarray]
    image_shape: tuple[int, int]
    region: tuple[int, int, int, int]
    score: str = "probabilities"
    index: int = 0
    class_names: tuple[str, ...] | None = field(default=None)
    estimator: str = "leave-one-out"
    stderr: dict[GridKey, np.ndarray] | None = None

    @property
    def grids(self) -> tuple[GridKey, ...]:
        """Grid keys (sizes, and any shifted grids), coarse to fine."""
        return tuple(sorted(self.deltas))

    @property
    def num_classes(self) -> int:
        return int(self.base_scores.shape[0])

    def top_classes(self, k: int = 3) -> np.ndarray:
        """Indices of the k highest-scoring classes, best first (ties keep class order)."""
        return np.argsort(-self.base_scores, kind="stable")[: min(k, self.num_classes)]

    def class_index(self, name_or_index: str | int) -> int:
        """A class index from its name (when ``class_names`` is set) or its number, checked."""
        if isinstance(name_or_index, str):
            if not self.class_names or name_or_index not in self.class_names:
                raise ValueError(f"class {name_or_index!r} is not one of {list(self.class_names or [])}")
            return self.class_names.index(name_or_index)
        k = int(name_or_index)
        if not 0 <= k < self.num_classes:
            raise ValueError(f"class index {k} is outside 0..{self.num_classes - 1}")
        return k

    def delta_map(self, n: GridKey, class_index: int) -> np.ndarray:
        """The per-pixel d of grid n for one class over the region, (height, width) float32."""
        _, _, h, w = self.region
        return self.deltas[n][class_index].ravel()[cell_index_map(h, w, n)]

    def max_abs_delta(self) -> float:
        """The largest |d| over all grids and classes."""
        return float(max(np.abs(d).max() for d in self.deltas.values()))
