"""From an OCT volume and a model package to DiDA results on the B-scans' own pixel grid.

This is the one path shared by the ``dida`` command and the Slicer module: choose B-scans, preprocess each as the
model package says, run the engine, pick the classes to show, and map Mixed Images back onto every B-scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .engine.core import DiDAEngine, GridCallback, Progress
from .engine.grid import DEFAULT_GRIDS, GridKey, check_weights, validate_grids
from .engine.masks import FILL_NAMES
from .engine.result import DiDAResult
from .engine.scores import AUTO, check_score_mode, choose_auto
from .engine.estimators import ESTIMATORS, LEAVE_ONE_OUT, SHAPLEY_GRIDS, Shapley, estimator_passes
from .explanation import VolumeExplanation, chosen_bscans, class_indices, parse_top  # noqa: F401 (re-export)
from .models.package import ModelPackage
from .models.preprocess import input_region, preprocess_bscan
from .runtime import RuntimeRequest, check_runtime


@dataclass
class ExplainSettings:
    """What a user chooses for a run; ``score=None`` takes the model package's default, ``"auto"`` lets the
    explainer choose from the model's outputs on the explained B-scans (``engine.scores.choose_auto``). The default
    fill is the B-scan's own lateral median (``"background"``): the faithfulness benchmark found that black, the
    paper's fill, looks like fluid to an OCT classifier (docs/faithfulness.md, "Fill"); ``fill="black"`` gives the
    paper's. ``runtime`` is what runs the model's passes on a CPU (``DiDALib.runtime``): ``auto`` the fastest
    exact one, ``torch`` eager PyTorch as before.
    ``estimator`` is ``"leave-one-out"`` (the paper's d) or ``"shapley"`` (Shapley values from
    ``permutations`` per grid, None: the paper's budget split, drawn from ``seed``); ``grids=None`` takes the
    estimator's own: the paper's for leave-one-out, ``SHAPLEY_GRIDS`` for Shapley. ``channels_last`` fixes the
    memory format (None: the engine's probe picks the faster on the first image, ``engine.memory_format``; a run
    whose bits must not depend on timing, such as an audit's workers, fixes it)."""

    grids: tuple[GridKey, ...] | None = None
    weights: tuple[float, ...] | None = None
    fill: str | float = "background"
    score: str | None = None
    classes: str | Sequence[str] = "top3"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    compile: bool | str = False
    runtime: str = "auto"
    estimator: str = LEAVE_ONE_OUT
    permutations: tuple[int, ...] | int | None = None
    seed: int = 0
    channels_last: bool | None = None

    def __post_init__(self):
        if self.grids is None:
            self.grids = SHAPLEY_GRIDS if self.estimator == "shapley" else DEFAULT_GRIDS

    def engine_estimator(self) -> str | Shapley:
        """The estimator as the engine takes it (``engine.shapley.as_estimator``)."""
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator {self.estimator!r} is not known: use {', '.join(ESTIMATORS)}")
        if self.estimator == LEAVE_ONE_OUT:
            if self.permutations is not None:
                raise ValueError("permutations are for the Shapley estimator: leave-one-out hides each cell once")
            return LEAVE_ONE_OUT
        return Shapley(self.permutations, self.seed)

    def passes_per_image(self) -> int:
        """Model passes per B-scan of these grids with this estimator."""
        return estimator_passes(validate_grids(self.grids, 1 << 20, 1 << 20), self.engine_estimator())

    def check(self) -> None:
        """Validate what can be checked before a volume is read."""
        if not self.grids:
            raise ValueError("no grid sizes given: use e.g. 7,9,11,13,15,17,19,21")
        grids = validate_grids(self.grids, 1 << 20, 1 << 20)  # the region's own limits are checked per B-scan
        if self.weights is not None:
            check_weights(self.weights, grids)
        if isinstance(self.classes, str):
            parse_top(self.classes)
        if self.score is not None:
            check_score_mode(self.score, allow_auto=True)
        check_runtime(self.runtime)
        self.passes_per_image()  # the estimator, and Shapley's permutations for these grids


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


class VolumeExplainer:
    """Runs DiDA with one model package over the B-scans of OCT volumes: each B-scan preprocessed as the package
    says, explained with the settings' grids, fill, score mode, estimator and runtime, and mapped back.

    ``explain_bscan(bscan)`` explains one (depth, width) B-scan in [0, 1]; ``explain(bscans, indices)`` streams
    the results of a (n_bscans, depth, width) stack; ``explain_all`` collects them in a ``VolumeExplanation``.
    Writing the files of ``dida explain`` is ``DiDALib.cli.run_explain``'s job.

    Example
    -------
    >>> volume = load_oct("scan.vol")
    >>> explainer = VolumeExplainer(load_model_package("Resources/Models/kermany-oct"),
    ...                             ExplainSettings(grids=(7, 11), device="cpu"))
    >>> run = explainer.explain_all(volume.bscans, indices=[0])
    >>> run.results[0].top_classes(3), run.scores()
    """

    def __init__(self, package: ModelPackage, settings: ExplainSettings | None = None):
        self.package = package
        self.settings = settings or ExplainSettings()
        self.settings.check()
        spec = package.spec
        if not isinstance(self.settings.classes, str):
            class_indices(spec.classes, self.settings.classes)  # fail on unknown names before any long run
        requested = self.settings.score or spec.score
        self._auto = requested == AUTO
        #: how the score mode was chosen (a sentence for run records), or None when it was not ``auto``
        self.score_note: str | None = None
        self.engine = DiDAEngine(
            package.model,
            device=self.settings.device,
            score="probabilities" if self._auto else requested,  # auto is settled by resolve_score before any run
            fill=engine_fill(self.settings.fill, package),
            batch_size=self.settings.batch_size,
            precision=self.settings.precision,
            compile=self.settings.compile,
            channels_last=self.settings.channels_last,
            class_names=spec.classes,
            # torch.compile asked for by its own setting (CUDA graphs on a GPU) is the torch path's business
            runtime=RuntimeRequest("torch" if self.settings.compile else self.settings.runtime, package.path),
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.package.spec.classes

    @property
    def runtime_choice(self):
        """The runtime the passes run on and why (``runtime.RuntimeChoice``), once the first B-scan settled it."""
        return self.engine.runtime_choice

    def _checked(self, bscans: np.ndarray) -> np.ndarray:
        b = np.asarray(bscans)
        if b.ndim == 2:
            b = b[None]
        if b.ndim != 3:
            raise ValueError(f"B-scans must be (n_bscans, depth, width); got shape {b.shape}")
        return b

    def resolve_score(self, bscans: np.ndarray | Sequence[np.ndarray], indices: Sequence[int] | None = None) -> str:
        """The score mode of this explainer's runs. ``auto`` is settled here, once per explainer, from the model's
        outputs on the chosen B-scans (all by default: one model pass each); every run calls this first, and a
        caller that explains a volume B-scan by B-scan should call it with the whole volume up front. ``bscans``
        is a (n, depth, width) stack or a sequence of B-scans of any sizes (independent images)."""
        if self._auto:
            import torch

            b = bscans if isinstance(bscans, Sequence) else self._checked(bscans)
            chosen = chosen_bscans(len(b), indices)
            outputs = []
            for start in range(0, len(chosen), 16):
                x = torch.stack([preprocess_bscan(np.asarray(b[i]), self.package.spec)[0]
                                 for i in chosen[start : start + 16]])
                x = x.to(self.engine.device)  # the engine puts it in the model's memory format
                outputs.append(self.engine.outputs(x))
            self.engine.score, self.score_note = choose_auto(torch.cat(outputs))
            self._auto = False
        return self.engine.score

    def explain_bscan(self, bscan: np.ndarray, index: int = 0, on_grid: GridCallback | None = None,
                      cancel=None) -> DiDAResult:
        """DiDA of one B-scan (depth, width) in [0, 1]; ``result.index`` is set to ``index``."""
        self.resolve_score(np.asarray(bscan)[None])
        x, region = preprocess_bscan(bscan, self.package.spec)
        call = None if on_grid is None else (lambda _i, n, d, base: on_grid(index, n, d, base))
        result = self.engine.explain(x, grids=self.settings.grids, region=region, on_grid=call, cancel=cancel,
                                     estimator=self.settings.engine_estimator())
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
        self.resolve_score(b, chosen)
        region = input_region(b.shape[1:], self.package.spec)
        inputs = (preprocess_bscan(b[i], self.package.spec)[0] for i in chosen)
        call = None if on_grid is None else (lambda j, n, d, base: on_grid(chosen[j], n, d, base))
        for result in self.engine.explain_volume(inputs, grids=self.settings.grids, region=region, progress=progress,
                                                 cancel=cancel, on_grid=call, total=len(chosen),
                                                 estimator=self.settings.engine_estimator()):
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
