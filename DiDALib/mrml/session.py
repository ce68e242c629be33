"""One DiDA session on one volume: the worker process explains the B-scans, and what it streams (per-grid previews
of a B-scan, then finished B-scans) is applied to the scene by ``poll()``, on the thread that calls it (in Slicer the
main thread, from the module's QTimer). No thread is started here.

The scene stays consistent whatever happens: a B-scan's overlays hold either its finished Mixed Image, its preview
while it is being computed, or nothing; when a run ends (complete, cancelled, failed, or its worker died), previews
of B-scans that did not finish are cleared, the run's nodes say which B-scans are finished, and every overlay is
re-drawn at one saturation scale so that brightness compares across classes and B-scans. When the scene closes the
session stops: the job is cancelled and nothing more reaches the scene.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..engine.grid import GridKey, check_weights
from ..engine.result import DiDAResult
from ..engine.saturation import saturation_warning
from ..engine.schedule import grid_key
from ..explanation import VolumeExplanation, chosen_bscans, class_indices
from ..io.volume import unit_range_rule
from ..maps.mixing import mixed_image, saturation_scale
from ..models.spec import read_spec
from ..worker.client import Job, StagedBScans, WorkerClient
from ..worker.protocol import DIED, Event, JobRequest, ModelRequest, decode_array, decode_result, encode_result
from .overlays import ClassOverlay, add_class_overlay
from .results import DiDARun
from .volumes import grey_voxels

#: The score plot's axis title for each score mode.
SCORE_LABELS = {"probabilities": "probability", "logits": "logit", "log-odds": "log-odds"}


class ExplainSession:
    """Explains B-scans of ``volume`` in ``worker`` with a model package and settings (``ExplainSettings`` fields as
    plain values), and keeps the results in one ``DiDARun``.

    ``start(indices)`` sends a job; call ``poll()`` (a timer in Slicer) until it returns False, or ``wait()`` /
    ``run_blocking(indices)`` to block. Starting again adds B-scans to the same run.
    """

    def __init__(self, scene, volume, worker: WorkerClient | None, model: ModelRequest | str | Path | None,
                 settings: Mapping | None = None, classes: str | Sequence[str] = "top3", name: str | None = None):
        self.scene = scene
        self.volume = volume
        self.worker = worker
        self.model = model if isinstance(model, ModelRequest) or model is None else ModelRequest(str(model))
        self.settings = dict(settings or {})
        self.classes = classes if isinstance(classes, str) else tuple(classes)
        if self.model is not None:  # a bad rule or class name fails here, not in the worker
            class_indices(read_spec(self.model.path).classes, self.classes)
        self.name = name or f"DiDA {volume.GetName()}"
        # The voxels as the node holds them; a job's B-scans are made display intensities when they are written,
        # a few at a time (``_intensities``): no copy of a large volume on Slicer's main thread.
        self.shape = grey_voxels(volume).shape  # (B-scans, depth, width)
        self.intensity: str | None = None  # how the intensities were obtained (``io.volume.to_unit_range``)
        self._rule: tuple[int, Callable[[np.ndarray], np.ndarray]] | None = None  # for the image data's MTime
        self.info: dict | None = None  # the worker's "ready" event: model, classes, score, device, grids, weights
        self.explanation: VolumeExplanation | None = None
        self.run: DiDARun | None = None
        self.state = "idle"  # then "running", "complete", "cancelled" or "failed"
        self.error: str | None = None
        self.error_kind: str | None = None  # "device", "died", or the worker's exception type
        self.progress: dict | None = None
        self.runtime: dict | None = None  # the worker's "runtime" event: what runs the model's passes, and why
        self.ended: dict | None = None  # the fields of the last job's final event
        self.requested: set[int] = set()
        self.job: Job | None = None
        self.closed = False
        self._pending: deque[Event] = deque()
        self._drawn_scale: dict[int, float] = {}
        self._previews: dict[int, dict[int, np.ndarray]] = {}
        self._close_tag = scene.AddObserver(scene.StartCloseEvent, lambda *_: self.close())

    # -- running -----------------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.state == "running"

    def start(self, indices: Sequence[int] | None = None, preview: bool | None = None) -> None:
        """Explain B-scans (all by default) in the worker; ``preview`` draws each grid as it completes (default:
        when explaining a single B-scan)."""
        if self.closed:
            raise RuntimeError("this session was closed with its scene: start a new one")
        if self.running:
            raise RuntimeError("this session is already running: cancel it or wait for it to finish")
        if self.worker is None or self.model is None:
            raise RuntimeError("this session has no worker and model to run: it only shows stored results")
        chosen = chosen_bscans(self.shape[0], indices)  # bad indices fail here, not in the worker
        preview = len(chosen) == 1 if preview is None else preview
        bscans = StagedBScans(len(chosen), self.shape[1:], self._intensities(chosen))
        self.job = self.worker.submit(JobRequest(self.model, self.settings, chosen, preview), bscans)
        self.requested |= set(chosen)
        self.state, self.error, self.error_kind, self.progress, self.ended = "running", None, None, None, None
        self._pending.clear()
        if self.run is not None:
            self._mark("running")

    def _intensities(self, chosen: Sequence[int]) -> Iterator[np.ndarray | None]:
        """The chosen B-scans as display intensities, after the volume's rule (``io.volume.unit_range_rule``: its
        minimum and maximum, found one B-scan per step, unless the voxels did not change since the last time)."""
        voxels = grey_voxels(self.volume)
        stamp = self.volume.GetImageData().GetMTime()
        if self._rule is None or self._rule[0] != stamp:
            lo = hi = None
            for bscan in voxels:
                lo = bscan.min() if lo is None else np.minimum(lo, bscan.min())  # NaN stays NaN
                hi = bscan.max() if hi is None else np.maximum(hi, bscan.max())
                yield None
            convert, self.intensity = unit_range_rule(voxels, self.volume.GetName(), bounds=(lo, hi))
            self._rule = (stamp, convert)
        for k in chosen:
            yield self._rule[1](voxels[k])

    def poll(self, max_seconds: float | None = None) -> bool:
        """Apply what the worker has produced, without waiting for more; True while the run goes on. With
        ``max_seconds`` the rest waits for the next poll once that much time was spent (the UI stays fluid)."""
        if self.job is not None and self.running and not self._pending:  # a bounded share (client.READ_BYTES)
            share = {} if max_seconds is not None else {"max_bytes": None, "seconds": None}
            self._pending.extend(self.job.poll(**share))
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while self._pending and not self.closed:
            event = self._pending.popleft()
            # A preview superseded by the next event of the same B-scan is recorded but not drawn.
            following = self._pending[0] if self._pending else None
            draw = not (event.kind == "grid" and following is not None and following.kind in ("grid", "result")
                        and following.data.get("index") == event.data.get("index"))
            self.handle(event.kind, event.data, draw=draw)
            if deadline is not None and time.monotonic() > deadline:
                break
        return self.running or bool(self._pending)

    def cancel(self) -> None:
        """Stop after the batch in flight; finished B-scans are kept, the one in progress is dropped."""
        if self.job is not None and self.running:
            self.job.cancel()

    def wait(self, timeout: float | None = None, interval: float = 0.01) -> str:
        """Poll until the run ends (a blocking loop for scripts and tests); returns the final state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll():
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"the DiDA run did not finish within {timeout} s; it was cancelled")
            time.sleep(interval)
        return self.state

    def run_blocking(self, indices: Sequence[int] | None = None, preview: bool | None = None,
                     timeout: float | None = None) -> str:
        self.start(indices, preview)
        return self.wait(timeout)

    def replay(self, explanation: VolumeExplanation, source: str = "stored results") -> str:
        """Apply a finished explanation (e.g. read back with ``io.results.load_results``) through the same events
        the worker streams: ``DiDATest`` shows stored results this way where torch is absent."""
        first = explanation.results[explanation.indices[0]]
        grids = list(first.grids)
        self.settings.setdefault("weights", list(explanation.weights) if explanation.weights is not None else None)
        self.requested |= set(explanation.indices)
        self.state = "running"
        self.handle("ready", {"model": source, "path": source, "demo": True, "classes": list(explanation.class_names),
                              "score": first.score, "device": "none", "device_name": source, "grids": grids,
                              "weights": [float(w) for w in check_weights(explanation.weights, grids)],
                              "input_size": list(first.image_shape), "region": list(first.region),
                              "estimator": first.estimator})
        for i in explanation.indices:
            self.handle("result", encode_result(explanation.results[i], i))
        self.handle("done", {})
        return self.state

    def close(self) -> None:
        """Stop for good (the scene is closing): the job is cancelled, its folder goes once the worker is done
        with it, and nothing more is written to the scene."""
        if self.closed:
            return
        self.closed = True
        if self.job is not None:
            self.job.release()
        if self.running:
            self.state = "cancelled"
        self._pending.clear()
        self._previews.clear()
        self.run = None
        self.scene.RemoveObserver(self._close_tag)

    # -- applying events ---------------------------------------------------------------------------------------------

    def handle(self, kind: str, data: dict, draw: bool = True) -> None:
        """Apply one event of the worker (``protocol`` says what each holds) to the scene."""
        if kind == "ready":
            self._on_ready(data)
        elif kind == "progress":
            self.progress = data
        elif kind == "runtime":
            self.runtime = data
        elif kind == "grid":
            self.info["score"] = data.get("score", self.info["score"])  # the mode in use, once a run settled it
            self._on_grid(int(data["index"]), grid_key(data["n"]), decode_array(data["deltas"]),
                          decode_array(data["base"]), draw)
        elif kind == "result":
            self.info["score"] = data["score"]
            self._on_result(decode_result(data, self.explanation.class_names))
        elif kind in ("done", "cancelled", "error"):
            self.ended = data
            if kind == "error":
                self.error, self.error_kind = str(data.get("message", "unknown error")), data.get("kind")
            self._finish({"done": "complete", "cancelled": "cancelled", "error": "failed"}[kind])

    def _on_ready(self, info: dict) -> None:
        info = {**info, "grids": [grid_key(g) for g in info["grids"]]}  # a shifted grid comes as its text
        names = tuple(info["classes"])
        if self.explanation is not None and self.explanation.class_names != names:
            raise ValueError(f"the model's classes changed during the session ({names}): start a new run")
        self.info = info
        if self.explanation is None:
            weights = self.settings.get("weights")
            self.explanation = VolumeExplanation(names, {}, tuple(self.shape[1:]),
                                                 tuple(weights) if weights is not None else None)

    def _on_grid(self, index: int, n: GridKey, deltas: np.ndarray, base: np.ndarray, draw: bool = True) -> None:
        grids = self._previews.setdefault(index, {})
        grids[n] = deltas
        if not draw:
            return
        partial = DiDAResult(base_scores=base, deltas=dict(grids), image_shape=tuple(self.info["input_size"]),
                             region=tuple(self.info["region"]), score=self.info["score"], index=index,
                             class_names=self.explanation.class_names,
                             estimator=self.info.get("estimator", "leave-one-out"))
        self._ensure_overlays(base)
        # The preview is drawn at the run's scale, widened to the preview's own peak while nothing else is known.
        weights = self._weights_for(partial.grids)
        scale = max(self.explanation.scale() if self.explanation.results else 0.0,
                    saturation_scale(partial, weights=weights))
        for overlay in self.run.overlays:
            overlay.write(index, mixed_image(partial, overlay.class_index, weights, scale, self.shape[1:]))
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
        if self.job is not None:
            self.job.release()  # its folder goes now (or once the worker is done with it)
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
        finished = self.explanation.indices if self.explanation is not None else []
        self.run.set_status("running" if state == "running" else state, finished,
                            sorted(self.requested - set(finished)))

    def _run_settings(self) -> dict[str, str]:
        info, s = self.info, self.settings
        return {
            "Model": info["model"],
            "ModelPath": info["path"],
            "Grids": " ".join(str(n) for n in info["grids"]),
            "Weights": " ".join(f"{w:.6g}" for w in info["weights"]),
            "Fill": str(info.get("fill", s.get("fill", ""))),  # the worker says which fill it used
            "Score": info["score"],
            "Estimator": info.get("estimator", "leave-one-out"),
            "Classes": self.classes if isinstance(self.classes, str) else ", ".join(self.classes),
            "Device": info["device"],
            "Intensity": self.intensity,
        }

    def _selected(self, base: np.ndarray | None = None) -> list[int]:
        """The classes to show: the rule applied to the finished B-scans, or to a preview's scores before any."""
        if self.explanation.results:
            return self.explanation.select_classes(self.classes)
        return class_indices(self.explanation.class_names, self.classes, base)

    def _ensure_overlays(self, base: np.ndarray | None = None) -> None:
        """Create the run on first use and make its overlays the selected classes, best first; a class that
        joins later is drawn for every finished B-scan."""
        names = self.explanation.class_names
        if self.run is None:
            score_label = SCORE_LABELS.get(self.info["score"], self.info["score"])
            self.run = DiDARun.create(self.scene, self.volume, names, self._run_settings(), self.name, score_label)
            self._mark("running")  # the B-scans asked for are in progress
        wanted = self._selected(base)
        have = {o.class_index: o for o in self.run.overlays}
        if [o.class_index for o in self.run.overlays] == wanted:
            return
        overlays, new = [], []
        for k in wanted:
            overlay = have.get(k)
            if overlay is None:
                overlay = add_class_overlay(self.scene, self.volume, names[k], k, "DiDA")
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

    def _weights_for(self, grids: Sequence[GridKey]) -> np.ndarray:
        """The run's weights restricted to the grids done so far, rescaled to the same total (for previews)."""
        full_grids, full = list(self.info["grids"]), np.asarray(self.info["weights"], dtype=np.float64)
        part = np.array([full[full_grids.index(n)] for n in grids])
        return part * (full.sum() / part.sum()) if part.sum() > 0 else part

    # -- for the widget ------------------------------------------------------------------------------------------------

    def fraction_done(self) -> float:
        """Progress in [0, 1] over the B-scans of the current start (model passes within a B-scan count)."""
        p = self.progress
        if not p or not p.get("images_total"):
            return 0.0
        return min(1.0, p["passes_done"] / (p["passes_per_image"] * p["images_total"]))

    def _runtime_text(self) -> str:
        """The runtime and the first part of why, for the status line ("" until the worker said, and for torch
        asked for by name or kept for a run too short to choose)."""
        if not self.runtime or not self.runtime.get("say", True):
            return ""
        return f" (runtime {self.runtime['runtime']}: {str(self.runtime.get('runtime_reason', '')).split('; ')[0]})"

    def summary(self) -> str:
        """One line on where the run stands, for the status label (with the saturation warning of its results)."""
        line = self._state_line()
        warning = saturation_warning(self.explanation.results.values()) if self.explanation is not None else None
        return f"{line}. Warning: {warning}" if line and warning else line

    def _state_line(self) -> str:
        done = len(self.explanation.results) if self.explanation is not None else 0
        if self.state == "running":
            if self.info is None:
                return "Starting: loading the model in DiDA's worker process (the first run takes longest)..."
            p = self.progress or {}
            total = p.get("images_total") or len(self.requested)
            return f"Explaining: {p.get('images_done', 0)} of {total} B-scan(s) done{self._runtime_text()}"
        if self.state == "complete":
            return f"Done: {done} B-scan(s) explained{self._runtime_text()}"
        if self.state == "cancelled":
            return f"Cancelled: {done} finished B-scan(s) kept, the rest marked unfinished"
        if self.state == "failed":
            if self.error_kind == DIED:
                return f"Stopped after {done} finished B-scan(s): {self.error}"
            return f"Failed after {done} finished B-scan(s): {self.error}"
        return ""
