"""From an OCT volume and a model package to DiDA results on the B-scans' own pixel grid.

This is the one path shared by the ``dida`` command and the Slicer module: choose B-scans, preprocess each as the
model package says, run the engine, pick the classes to show, and map Mixed Images back onto every B-scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .engine.core import DiDAEngine, GridCallback, Progress
from .engine.grid import DEFAULT_GRIDS, GridKey, check_weights, validate_grids
from .engine.masks import FILL_NAMES
from .engine.result import DiDAResult
from .maps.evidence import evidence_map
from .maps.mixing import MixedImage, mixed_image, mixed_peak
from .models.package import ModelPackage
from .models.preprocess import input_region, preprocess_bscan


@dataclass
class ExplainSettings:
    """What a user chooses for a run; ``score=None`` takes the model package's default. The default fill is the
    B-scan's own lateral median (``"background"``): the faithfulness benchmark found that black, the paper's fill,
    looks like fluid to an OCT classifier (README, "Faithfulness"); ``fill="black"`` gives the paper's."""

    grids: tuple[GridKey, ...] = DEFAULT_GRIDS
    weights: tuple[float, ...] | None = None
    fill: str | float = "background"
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
        grids = validate_grids(self.grids, 1 << 20, 1 << 20)  # the region's own limits are checked per B-scan
        if self.weights is not None:
            check_weights(self.weights, grids)
        if isinstance(self.classes, str):
            parse_top(self.classes)


def parse_top(spec: str) -> int | None:
    """``'top3'`` → 3, ``'all'`` → None (every class); other strings are not a top-N rule."""
    s = spec.strip().lower()
    if s == "all":
        return None
    if s.startswith("top") and s[3:].isdigit() and int(s[3:]) >= 1:
        return int(s[3:])
    raise ValueError(f"classes {spec!r} is not 'topN' (e.g. top3), 'all' or a list of class names")


def class_indices(class_names: Sequence[str], rule: str | Sequence[str], ranking=None) -> list[int]:
    """Class indices to show: names as given (each checked against ``class_names``), or by a ``topN``/``all`` rule
    the classes ranked by ``ranking`` (one value per class, highest first; the model's order when None)."""
    if isinstance(rule, str):
        top = parse_top(rule)
        order = np.argsort(-np.asarray(ranking), kind="stable") if ranking is not None else np.arange(len(class_names))
        return [int(k) for k in (order if top is None else order[:top])]
    unknown = [c for c in rule if c not in class_names]
    if unknown:
        raise ValueError(f"class(es) {unknown} are not among the model's classes {list(class_names)}")
    return [list(class_names).index(c) for c in rule]


def chosen_bscans(n_bscans: int, indices: Sequence[int] | None) -> list[int]:
    """The B-scans to explain (all when ``indices`` is None), each checked to exist and given once."""
    chosen = list(range(n_bscans)) if indices is None else [int(i) for i in indices]
    for i in chosen:
        if not 0 <= i < n_bscans:
            raise ValueError(f"B-scan {i} does not exist: the volume has B-scans 0..{n_bscans - 1}")
    if len(set(chosen)) != len(chosen):
        raise ValueError("a B-scan index is repeated")
    return chosen


def engine_fill(fill: str | float, package: ModelPackage):
    """A user's fill in the engine's model-input domain: 'black' (raw 0, the paper) or a raw intensity in [0, 1]
    is normalised with the package's mean/std; 'mean', 'blur' and 'background' pass through."""
    if isinstance(fill, str):
        if fill in FILL_NAMES:
            return fill
        if fill == "black":
            return package.spec.fill_value(0.0)
        try:
            fill = float(fill)
        except ValueError:
            raise ValueError(f"fill {fill!r} is not known: use black, {', '.join(FILL_NAMES)} or an intensity "
                             "in [0, 1]") from None
    value = float(fill)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"fill intensity {value} must be within [0, 1] (display intensities)")
    return package.spec.fill_value(value)


@dataclass
class VolumeExplanation:
    """Results of a run over some B-scans of one volume."""

    class_names: tuple[str, ...]
    results: dict[int, DiDAResult] = field(default_factory=dict)  # B-scan index → result
    bscan_shape: tuple[int, int] = (0, 0)
    weights: tuple[float, ...] | None = None
    _peaks: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def indices(self) -> list[int]:
        return sorted(self.results)

    def scores(self) -> np.ndarray:
        """Base scores (explained B-scans in index order × classes)."""
        return np.stack([self.results[i].base_scores for i in self.indices]) if self.results else np.zeros((0, len(self.class_names)))

    def scale(self) -> float:
        """One saturation scale for all classes and all B-scans of the run (``mixing.saturation_scale``)."""
        peaks = self._peaks
        for i, r in self.results.items():
            if peaks.get(i, (None,))[0] is not r:  # each result's peak is computed once, however often this is asked
                peaks[i] = (r, mixed_peak(r, self.weights))
        return max((peaks[i][1] for i in self.results), default=0.0)

    def select_classes(self, rule: str | Sequence[str]) -> list[int]:
        """Class indices to show: names as given, or the top N ranked by their highest score over the B-scans."""
        return class_indices(self.class_names, rule, self.scores().max(axis=0) if self.results else None)

    def mixed(self, index: int, class_index: int, scale: float | None = None) -> MixedImage:
        """The Mixed Image of one class on B-scan ``index``, on the B-scan's own pixel grid."""
        r = self.results[index]
        return mixed_image(r, class_index, self.weights, self.scale() if scale is None else scale, self.bscan_shape)

    def evidence(self, index: int, class_index: int) -> np.ndarray:
        """The evidence map (``maps.evidence``) of one class on B-scan ``index``, on the B-scan's own pixel grid:
        the signed readout for points, rankings and reported numbers."""
        return evidence_map(self.results[index], class_index, self.bscan_shape)


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
