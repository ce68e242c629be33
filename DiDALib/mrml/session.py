"""One DiDA session on one volume: ``VolumeExplainer`` runs in a background thread, and what it streams (per-grid
previews of a B-scan, then finished B-scans) is applied to the scene on the main thread.

The scene stays consistent whatever happens: a B-scan's overlays hold either its finished Mixed Image, its
preview while it is being computed, or nothing; when a run ends (complete, cancelled or failed), previews of
B-scans that did not finish are cleared, the run's nodes say which B-scans are finished, and every overlay is
re-drawn at one saturation scale so that brightness compares across classes and B-scans.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..engine.core import DiDACancelled, Progress
from ..engine.grid import check_weights
from ..engine.result import DiDAResult
from ..maps.mixing import mixed_image, saturation_scale
from ..models.preprocess import input_region
from ..pipeline import VolumeExplainer, chosen_bscans, class_indices
from .background import BackgroundJob
from .overlays import ClassOverlay, add_class_overlay
from .results import DiDARun
from .volumes import bscans_from_volume_node


class ExplainSession:
    """Explains B-scans of ``volume`` with ``explainer`` and keeps the results in one ``DiDARun``.

    ``start(indices)`` runs in the background; call ``poll()`` on the main thread (a timer in Slicer) until it
    returns False, or ``run(indices)`` to block. Starting again adds B-scans to the same run.
    """

    def __init__(self, scene, volume, explainer: VolumeExplainer, classes: str | Sequence[str] = "top3",
                 name: str | None = None):
        self.scene = scene
        self.volume = volume
        self.explainer = explainer
        self.classes = classes if isinstance(classes, str) else tuple(classes)
        class_indices(explainer.class_names, self.classes)  # a bad rule or name fails here, not in the run
        self.name = name or f"DiDA {volume.GetName()}"
        self.bscans, self.intensity = bscans_from_volume_node(volume)
        self.explanation = explainer.new_explanation(self.bscans.shape[1:])
        self.run: DiDARun | None = None
        self.state = "idle"  # then "running", "complete", "cancelled" or "failed"
        self.error: BaseException | None = None
        self.progress: Progress | None = None
        self.requested: set[int] = set()
        self.job: BackgroundJob | None = None
        self._drawn_scale: dict[int, float] = {}
        self._previews: dict[int, dict[int, np.ndarray]] = {}
        spec = explainer.package.spec
        self._region = input_region(self.bscans.shape[1:], spec)
        self._input_size = tuple(spec.input_size)

    # -- running -----------------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.state == "running"

    def start(self, indices: Sequence[int] | None = None, preview: bool | None = None) -> None:
        """Explain B-scans (all by default) in the background; ``preview`` draws each grid as it completes
        (default: when explaining a single B-scan)."""
        if self.running:
            raise RuntimeError("this session is already running: cancel it or wait for it to finish")
        chosen = chosen_bscans(self.bscans.shape[0], indices)  # bad indices fail here, not in the background
        preview = len(chosen) == 1 if preview is None else preview
        self.requested |= set(chosen)
        self.state, self.error, self.progress = "running", None, None
        explainer, bscans = self.explainer, self.bscans

        def work(emit, cancel):
            on_grid = (lambda i, n, d, base: emit("grid", (i, n, d, base))) if preview else None
            for result in explainer.explain(bscans, chosen, progress=lambda p: emit("progress", p), cancel=cancel,
                                            on_grid=on_grid):
                emit("result", result)

        self.job = BackgroundJob(work, cancelled_types=(DiDACancelled,)).start()
        if self.run is not None:
            self._mark("running")

    def poll(self) -> bool:
        """Apply what the background run has produced; True while it is still running."""
        if self.job is not None:
            for kind, payload in self.job.poll():
                self.handle(kind, payload)
        return self.running

    def cancel(self) -> None:
        """Stop after the batch in flight; finished B-scans are kept, the one in progress is dropped."""
        if self.job is not None:
            self.job.cancel()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ends; returns the final state."""
        if self.job is not None and not self.job.finished:
            self.job.wait(self.handle, timeout)
        return self.state

    def run_blocking(self, indices: Sequence[int] | None = None, preview: bool | None = None,
                     timeout: float | None = None) -> str:
        self.start(indices, preview)
        return self.wait(timeout)

    # -- applying events (main thread) ---------------------------------------------------------------------------

    def handle(self, kind: str, payload) -> None:
        """Apply one event of the background run to the scene."""
        if kind == "progress":
            self.progress = payload
        elif kind == "grid":
            self._on_grid(*payload)
        elif kind == "result":
            self._on_result(payload)
        elif kind == "done":
            self._finish("complete")
        elif kind == "cancelled":
            self._finish("cancelled")
        elif kind == "error":
            self.error = payload
            self._finish("failed")

    def _on_grid(self, index: int, n: int, deltas: np.ndarray, base: np.ndarray) -> None:
        grids = self._previews.setdefault(index, {})
        grids[n] = deltas
        partial = DiDAResult(base_scores=base, deltas=dict(grids), image_shape=self._input_size,
                             region=self._region, score=self.explainer.engine.score, index=index,
                             class_names=self.explainer.class_names)
        self._ensure_overlays(base)
        # The preview is drawn at the run's scale, widened to the preview's own peak while nothing else is known.
        weights = self._weights_for(partial.grids)
        scale = max(self.explanation.scale() if self.explanation.results else 0.0,
                    saturation_scale(partial, weights=weights))
        for overlay in self.run.overlays:
            overlay.write(index, mixed_image(partial, overlay.class_index, weights, scale, self.bscans.shape[1:]))
        self._drawn_scale.pop(index, None)

    def _on_result(self, result: DiDAResult) -> None:
        self.explanation.results[result.index] = result
        self._previews.pop(result.index, None)
        self._ensure_overlays()
        scale = self.explanation.scale()
        self._draw(result.index, scale, self.run.overlays)
        was = self.run.table.StartModify()  # scores and status reach the views as one change
        self.run.write_scores(self.explanation.class_names, self.explanation.indices, self.explanation.scores())
        self._mark("running")
        self.run.table.EndModify(was)

    def _finish(self, state: str) -> None:
        self.state = state
        if self.run is None:
            return  # nothing reached the scene
        for index in list(self._previews):
            for overlay in self.run.overlays:
                overlay.write(index, None)  # a preview of a B-scan that did not finish is not a result
        self._previews.clear()
        scale = self.explanation.scale() if self.explanation.results else None
        if scale is not None:
            self._ensure_overlays()
            for index in self.explanation.indices:
                if self._drawn_scale.get(index) != scale:
                    self._draw(index, scale, self.run.overlays)
        self.run.table.SetAttribute("DiDA.Scale", f"{scale:.6g}" if scale is not None else "")
        self._mark(state)

    # -- scene helpers ---------------------------------------------------------------------------------------------

    def _mark(self, state: str) -> None:
        finished = self.explanation.indices
        self.run.set_status("running" if state == "running" else state, finished,
                            sorted(self.requested - set(finished)))

    def _settings(self) -> dict[str, str]:
        s = self.explainer.settings
        spec = self.explainer.package.spec
        return {
            "Model": spec.name,
            "ModelPath": str(self.explainer.package.path),
            "Grids": " ".join(str(n) for n in sorted(s.grids)),
            "Weights": " ".join(f"{w:.6g}" for w in check_weights(s.weights, sorted(s.grids))),
            "Fill": str(s.fill),
            "Score": self.explainer.engine.score,
            "Classes": self.classes if isinstance(self.classes, str) else ", ".join(self.classes),
            "Device": str(self.explainer.engine.device),
            "Intensity": self.intensity,
        }

    def _selected(self, base: np.ndarray | None = None) -> list[int]:
        """The classes to show: the rule applied to the finished B-scans, or to a preview's scores before any."""
        if self.explanation.results:
            return self.explanation.select_classes(self.classes)
        return class_indices(self.explainer.class_names, self.classes, base)

    def _ensure_overlays(self, base: np.ndarray | None = None) -> None:
        """Create the run on first use and make its overlays the selected classes, best first; a class that
        joins later is drawn for every finished B-scan."""
        if self.run is None:
            score_label = "probability" if self.explainer.engine.score == "probabilities" else "logit"
            self.run = DiDARun.create(self.scene, self.volume, self.explainer.class_names, self._settings(),
                                      self.name, score_label)
            self._mark("running")  # the B-scans asked for are in progress
        wanted = self._selected(base)
        have = {o.class_index: o for o in self.run.overlays}
        if [o.class_index for o in self.run.overlays] == wanted:
            return
        overlays, new = [], []
        for k in wanted:
            overlay = have.get(k)
            if overlay is None:
                overlay = add_class_overlay(self.scene, self.volume, self.explainer.class_names[k], k, "DiDA")
                new.append(overlay)
            overlays.append(overlay)
        self.run.set_overlays(self.scene, overlays)
        if new and self.explanation.results:
            scale = self.explanation.scale()
            for index in self.explanation.indices:
                self._draw(index, scale, new, record=False)

    def _draw(self, index: int, scale: float, overlays: Sequence[ClassOverlay], record: bool = True) -> None:
        for overlay in overlays:
            overlay.write(index, self.explanation.mixed(index, overlay.class_index, scale))
        if record:
            self._drawn_scale[index] = scale

    def _weights_for(self, grids: Sequence[int]) -> np.ndarray:
        """The run's weights restricted to the grids done so far, rescaled to the same total (for previews)."""
        full_grids = sorted(self.explainer.settings.grids)
        full = check_weights(self.explainer.settings.weights, full_grids)
        part = np.array([full[full_grids.index(n)] for n in grids])
        return part * (full.sum() / part.sum()) if part.sum() > 0 else part

    # -- for the widget ------------------------------------------------------------------------------------------------

    def fraction_done(self) -> float:
        """Progress in [0, 1] over the B-scans of the current start (model passes within a B-scan count)."""
        p = self.progress
        if p is None or not p.images_total:
            return 0.0
        return min(1.0, p.passes_done / (p.passes_per_image * p.images_total))

    def summary(self) -> str:
        """One line on where the run stands, for the status label."""
        done = len(self.explanation.results)
        if self.state == "running":
            p = self.progress
            total = p.images_total if p is not None and p.images_total else len(self.requested)
            return f"Explaining: {p.images_done if p else 0} of {total} B-scan(s) done"
        if self.state == "complete":
            return f"Done: {done} B-scan(s) explained"
        if self.state == "cancelled":
            return f"Cancelled: {done} finished B-scan(s) kept, the rest marked unfinished"
        if self.state == "failed":
            return f"Failed after {done} finished B-scan(s): {type(self.error).__name__}: {self.error}"
        return ""
