"""From an OCT volume and a model package to DiDA results on the B-scans' own pixel grid.

This is the one path shared by the ``dida`` command and the Slicer module: choose B-scans, preprocess each as the
model package says, run the engine, pick the classes to show, and map Mixed Images back onto every B-scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .engine.core import DiDAEngine, GridCallback, Progress
from .engine.grid import DEFAULT_GRIDS, check_weights, validate_grids
from .engine.result import DiDAResult
from .explanation import VolumeExplanation, chosen_bscans, class_indices, parse_top  # noqa: F401 (re-export)
from .models.package import ModelPackage
from .models.preprocess import input_region, preprocess_bscan


@dataclass
class ExplainSettings:
    """What a user chooses for a run; ``score=None`` takes the model package's default."""

    grids: tuple[int, ...] = DEFAULT_GRIDS
    weights: tuple[float, ...] | None = None
    fill: str | float = "black"
    score: str | None = None
    classes: str | Sequence[str] = "top3"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    compile: bool | str = False

    def check(self) -> None:
        """Validate what can be checked before a volume is read."""
        if not self.grids:
            raise ValueError("no grid sizes given: use e.g. 7,9,11,13,15,17,19,21")
        validate_grids(self.grids, max(self.grids), max(self.grids))
        if self.weights is not None:
            check_weights(self.weights, sorted(self.grids))
        if isinstance(self.classes, str):
            parse_top(self.classes)


def engine_fill(fill: str | float, package: ModelPackage):
    """A user's fill in the engine's model-input domain: 'black' (raw 0, the paper) or a raw intensity in [0, 1]
    is normalised with the package's mean/std; 'mean' and 'blur' pass through."""
    if isinstance(fill, str):
        if fill in ("mean", "blur"):
            return fill
        if fill == "black":
            return package.spec.fill_value(0.0)
        try:
            fill = float(fill)
        except ValueError:
            raise ValueError(f"fill {fill!r} is not known: use black, mean, blur or an intensity in [0, 1]") from None
    value = float(fill)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"fill intensity {value} must be within [0, 1] (display intensities)")
    return package.spec.fill_value(value)


class VolumeExplainer:
    """Runs DiDA with one model package over the B-scans of OCT volumes."""

    def __init__(self, package: ModelPackage, settings: ExplainSettings | None = None):
        self.package = package
        self.settings = settings or ExplainSettings()
        self.settings.check()
        spec = package.spec
        if not isinstance(self.settings.classes, str):
            class_indices(spec.classes, self.settings.classes)  # fail on unknown names before any long run
        self.engine = DiDAEngine(
            package.model,
            device=self.settings.device,
            score=self.settings.score or spec.score,
            fill=engine_fill(self.settings.fill, package),
            batch_size=self.settings.batch_size,
            precision=self.settings.precision,
            compile=self.settings.compile,
            class_names=spec.classes,
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.package.spec.classes

    def _checked(self, bscans: np.ndarray) -> np.ndarray:
        b = np.asarray(bscans)
        if b.ndim == 2:
            b = b[None]
        if b.ndim != 3:
            raise ValueError(f"B-scans must be (n_bscans, depth, width); got shape {b.shape}")
        return b

    def explain_bscan(self, bscan: np.ndarray, index: int = 0, on_grid: GridCallback | None = None,
                      cancel=None) -> DiDAResult:
        """DiDA of one B-scan (depth, width) in [0, 1]; ``result.index`` is set to ``index``."""
        x, region = preprocess_bscan(bscan, self.package.spec)
        call = None if on_grid is None else (lambda _i, n, d, base: on_grid(index, n, d, base))
        result = self.engine.explain(x, grids=self.settings.grids, region=region, on_grid=call, cancel=cancel)
        result.index = index
        return result

    def explain(
        self,
        bscans: np.ndarray,
        indices: Sequence[int] | None = None,
        progress: Callable[[Progress], None] | None = None,
        cancel=None,
        on_grid: GridCallback | None = None,
    ) -> Iterator[DiDAResult]:
        """DiDA of the chosen B-scans (all by default) of a (n_bscans, depth, width) stack, one result per B-scan
        as it completes, with ``result.index`` the B-scan's index in the stack."""
        b = self._checked(bscans)
        chosen = chosen_bscans(b.shape[0], indices)
        region = input_region(b.shape[1:], self.package.spec)
        inputs = (preprocess_bscan(b[i], self.package.spec)[0] for i in chosen)
        call = None if on_grid is None else (lambda j, n, d, base: on_grid(chosen[j], n, d, base))
        for result in self.engine.explain_volume(inputs, grids=self.settings.grids, region=region, progress=progress,
                                                 cancel=cancel, on_grid=call, total=len(chosen)):
            result.index = chosen[result.index]
            yield result

    def explain_all(self, bscans: np.ndarray, indices: Sequence[int] | None = None, progress=None,
                    cancel=None) -> VolumeExplanation:
        """Run ``explain`` to the end and collect the results."""
        b = self._checked(bscans)
        out = self.new_explanation(b.shape[1:])
        for result in self.explain(b, indices, progress=progress, cancel=cancel):
            out.results[result.index] = result
        return out

    def new_explanation(self, bscan_shape: tuple[int, int]) -> VolumeExplanation:
        """An empty ``VolumeExplanation`` for this model and these settings, to fill as results stream in."""
        w = self.settings.weights
        return VolumeExplanation(self.class_names, {}, (int(bscan_shape[0]), int(bscan_shape[1])),
                                 tuple(w) if w is not None else None)
