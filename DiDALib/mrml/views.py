"""The DiDA View kept in step while the clinician reads it (``DiDAViews``), and its view labels (``ViewLabels``).

- **Scrolling and zoom** are linked by DiDA's own observer on the four slice nodes (slice-to-RAS, pan and field of
  view are copied from the view that moved), so they work the same in Slicer and on ``slicer-core`` and do not
  depend on the link button. **Square B-scan pixels survive a resize**: Slicer resets a resized view's pixels to
  square millimetres (``vtkMRMLSliceLogic::ResizeSliceNode``), and DiDA stretches depth again.
- **The per-class overlays survive Slicer's linked-view controls.** The DiDA views have their own view group, so
  links among Red/Yellow/Green never reach them. Among themselves, Slicer's ``vtkMRMLSliceLinkLogic`` copies a
  layer change made in one linked view to the others; a change to a DiDA view's layers that was not made in that
  very view (its composite node is not ``Interacting``) is put back. A change made in the view itself is accepted.
  A volume loaded by Add Data is shown in Slicer's views, not in these (no volume-selection propagation).
- **The crosshair follows the mouse** in the DiDA views: when the cursor moves over one of them, the crosshair is
  placed there, so it is drawn at the same place in all four; its mode is given back when the DiDA View is left.
- **View labels**: each view's slice node carries its label text (class and score on the B-scan shown, updated as
  the B-scan changes) in the ``DiDA.ViewText`` attribute, and ``ViewLabels`` draws it in the view's corner; the
  labels go when the scene closes or the DiDA View is left.
"""

from __future__ import annotations

from collections.abc import Callable

import vtk

from .layout import (
    BSCAN_VIEW,
    CLASS_VIEWS,
    PLOT_VIEW,
    VIEW_NAMES,
    VIEW_TEXT,
    bscan_state,
    composite_node,
    crosshair_node,
    fit_bscan,
    follow_view,
    score_text,
    shows_dida_layout,
    view_node,
)
from .overlays import CONTRAST, set_display_mode
from .results import DiDARun, read_scores
from .volumes import bscan_center_ras, bscan_count, bscan_shown, nodes_of_class


class ViewLabels:
    """Each DiDA view's label in its top-left corner, drawn by a text actor of DiDA's own (the Data Probe rewrites
    Slicer's corner annotations). ``renderer(name)`` is a view's renderer (None while the view has none) and
    ``render(name)`` asks the view to redraw."""

    def __init__(self, renderer: Callable[[str], object], render: Callable[[str], None] | None = None):
        self._renderer = renderer
        self._render = render or (lambda name: None)
        self.actors: dict[str, tuple[object, object]] = {}  # view name -> (renderer, text actor)

    def show(self, texts: dict[str, str]) -> None:
        for name, text in texts.items():
            renderer = self._renderer(name)
            if renderer is None:
                continue
            held = self.actors.get(name)
            if held is None or held[0] is not renderer:
                if held is not None:
                    held[0].RemoveViewProp(held[1])
                actor = vtk.vtkTextActor()
                actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
                actor.GetPositionCoordinate().SetValue(0.02, 0.90)
                prop = actor.GetTextProperty()
                prop.SetFontSize(15)
                prop.SetColor(1.0, 1.0, 0.75)
                prop.ShadowOn()
                renderer.AddViewProp(actor)
                held = self.actors[name] = (renderer, actor)
            held[1].SetInput(text)
            self._render(name)

    def clear(self) -> None:
        """Remove every label from its view."""
        for name, (renderer, actor) in self.actors.items():
            renderer.RemoveViewProp(actor)
            self._render(name)
        self.actors.clear()


class DiDAViews:
    """Shows a ``DiDARun`` in the DiDA View and keeps the four views together (see the module docstring).

    Create it after the layout's view nodes exist (``show_layout``). ``detach()`` removes every observer, gives
    the crosshair its mode back and removes the view labels; it happens by itself when the scene closes or another
    layout replaces the DiDA View. ``labels`` draws each view's label in the view (``ViewLabels``).
    """

    def __init__(self, scene, labels: ViewLabels | None = None):
        self.scene = scene
        self.slice_nodes = [view_node(scene, name) for name in VIEW_NAMES]
        missing = [n for n, s in zip(VIEW_NAMES, self.slice_nodes) if s is None]
        if missing:
            raise ValueError(f"the DiDA View's slice views {missing} do not exist: show the DiDA View layout first")
        self.composites = [composite_node(scene, name) for name in VIEW_NAMES]
        self.run: DiDARun | None = None
        self.opacity = 0.6
        self.square_voxels = True
        self.bscan: int | None = None
        self.labels = labels
        self.comparison = None  # a compare.Comparison shown in views 1 to 3 instead of the top three classes
        self.explanation = None  # the shown run's d, where this session has them: the feature-scale readout needs them
        self.readout: tuple[str, str] = ("", "")  # (view, feature-scale sentence under the cursor)
        self._scales: dict[tuple[int, int], object] = {}
        self._assigned: dict[str, tuple] = {}
        self._busy = False
        self._observations: list[tuple] = []
        self._run_observation: tuple | None = None
        self._crosshair_mode: int | None = None
        self._dimensions = {node.GetID(): tuple(node.GetDimensions()) for node in self.slice_nodes}
        for node in self.composites:
            node.SetDoPropagateVolumeSelection(False)  # a volume loaded by Add Data goes to Slicer's views, not these
        for node in self.slice_nodes:
            self._observe(node, "ModifiedEvent", self._on_slice_modified)
        for node in self.composites:
            self._observe(node, "ModifiedEvent", self._on_composite_modified)
        self.crosshair = crosshair_node(scene)
        if self.crosshair is not None:
            self._observe(self.crosshair, self.crosshair.CursorPositionModifiedEvent, self._on_cursor)
            self._crosshair_mode = self.crosshair.GetCrosshairMode()
            # A small cross, as the paper's small square: it marks the place without hiding the overlay.
            self.crosshair.SetCrosshairMode(self.crosshair.ShowSmallBasic)
        self._observe(scene, scene.StartCloseEvent, lambda *_: self.detach())
        self.layout_node = next(iter(nodes_of_class(scene, "vtkMRMLLayoutNode")), None)
        if self.layout_node is not None:
            self._observe(self.layout_node, "ModifiedEvent", self._on_layout_modified)

    # -- observers ---------------------------------------------------------------------------------------------------

    def _observe(self, obj, event, callback) -> None:
        self._observations.append((obj, obj.AddObserver(event, callback)))

    def detach(self) -> None:
        """Stop linking and guarding; give the crosshair its mode back; remove the view labels."""
        for obj, tag in self._observations:
            obj.RemoveObserver(tag)
        self._observations = []
        self._watch_run(None)
        if self.crosshair is not None and self._crosshair_mode is not None:
            self.crosshair.SetCrosshairMode(self._crosshair_mode)
            self._crosshair_mode = None
        if self.labels is not None:
            self.labels.clear()

    def _on_layout_modified(self, caller=None, event=None) -> None:
        if not shows_dida_layout(self.layout_node):
            self.detach()  # the DiDA View was left: Slicer's views get their crosshair back, without DiDA's labels

    def _watch_run(self, run: DiDARun | None) -> None:
        if self._run_observation is not None:
            obj, tag = self._run_observation
            obj.RemoveObserver(tag)
            self._run_observation = None
        if run is not None:
            tag = run.table.AddObserver("ModifiedEvent", self._on_run_modified)
            self._run_observation = (run.table, tag)

    def _on_run_modified(self, caller=None, event=None) -> None:
        """New results, classes or status: follow the run's current overlays and relabel the views."""
        if self.run is None:
            return
        self._scales.clear()  # new results: the feature-scale maps are computed again on the next hover
        self._assign_layers()
        self.update_texts(force=True)

    @property
    def attached(self) -> bool:
        """Whether the views are still linked and guarded (not detached, e.g. by closing the scene)."""
        return bool(self._observations)

    # -- showing a run -----------------------------------------------------------------------------------------------

    def show(self, run: DiDARun, bscan: int | None = None) -> None:
        """Show a run: the input volume in every view, the overlays of its first three classes (best first) in
        views 1 to 3, fitted to the B-scans and on B-scan ``bscan`` (default: the one shown, else the first
        finished)."""
        self.run = run
        self._scales.clear()
        self._watch_run(run)
        self._assigned.clear()
        self._assign_layers()
        self.set_opacity(self.opacity)
        plot_view = view_node(self.scene, PLOT_VIEW, "vtkMRMLPlotViewNode")
        if plot_view is not None and run.chart is not None:
            plot_view.SetPlotChartNodeID(run.chart.GetID())
        if bscan is None:
            bscan = bscan_shown(run.volume, self.slice_nodes[0])
            bscan = bscan if bscan is not None else (run.finished or [bscan_count(run.volume) // 2])[0]
        self.fit(int(bscan))
        self.update_texts(force=True)

    def fit(self, bscan: int | None = None) -> None:
        """Centre the views on a B-scan (the one shown by default) and fit it, with square voxels (as OCT devices
        show B-scans, depth stretched) or in true proportions (``square_voxels = False``)."""
        if self.run is None:
            return
        volume, node = self.run.volume, self.slice_nodes[0]
        k = bscan if bscan is not None else bscan_shown(volume, node)
        k = k if k is not None else bscan_count(volume) // 2
        node.JumpSliceByCentering(*bscan_center_ras(volume, k))
        lateral, axial, _ = volume.GetSpacing()
        fit_bscan(node, volume, lateral / axial if self.square_voxels else 1.0)
        self._sync(node)
        self.update_texts()

    def set_square_voxels(self, square: bool) -> None:
        """Square voxels (as OCT devices show B-scans) or true proportions; the views are refitted on a change."""
        if self.square_voxels == bool(square):
            return
        self.square_voxels = bool(square)
        self.fit()

    @property
    def overlays(self) -> list:
        """What views 1 to 3 show: the run's classes, best first, or a comparison's A, B and A vs B."""
        if self.comparison is not None:
            return self.comparison.overlays
        return self.run.overlays if self.run is not None else []

    def set_comparison(self, comparison) -> None:
        """Show a ``compare.Comparison`` in views 1 to 3, or (None) the run's top three classes again."""
        self.comparison = comparison
        if self.run is not None:
            self._assign_layers()
            self.update_texts(force=True)

    def _assign_layers(self) -> None:
        """Views show the input volume; view i (1..3) shows the overlay of the run's class ranked i (or of a
        comparison: A, B, A vs B)."""
        volume_id = self.run.volume.GetID()
        overlays = self.overlays
        for i, name in enumerate(VIEW_NAMES):
            overlay = overlays[i - 1] if 0 < i <= len(overlays) else None
            wanted = (volume_id, None, overlay.labels.GetID() if overlay is not None else None)
            if self._assigned.get(name) != wanted:
                self._assigned[name] = wanted
                self._apply(i)

    def _apply(self, i: int) -> None:
        background, foreground, label = self._assigned[VIEW_NAMES[i]]
        node = self.composites[i]
        self._busy = True
        try:
            was = node.StartModify()
            node.SetBackgroundVolumeID(background)
            node.SetForegroundVolumeID(foreground)
            node.SetLabelVolumeID(label)
            node.EndModify(was)
        finally:
            self._busy = False

    def set_opacity(self, opacity: float) -> None:
        """The overlays' opacity in every class view."""
        if not 0.0 <= opacity <= 1.0:
            raise ValueError(f"opacity {opacity} must be within 0..1")
        self.opacity = float(opacity)
        self._busy = True
        try:
            for node in self.composites[1:]:
                node.SetLabelOpacity(self.opacity)
        finally:
            self._busy = False

    def set_display_mode(self, mode: str) -> None:
        """Both sides, positive only or negative only: one colour table, so all DiDA views change together."""
        set_display_mode(self.scene, mode)

    # -- linking -------------------------------------------------------------------------------------------------------

    def _on_slice_modified(self, caller, event=None) -> None:
        if self._busy:
            return
        dims = tuple(caller.GetDimensions())
        if dims != self._dimensions.get(caller.GetID()):
            self._dimensions[caller.GetID()] = dims
            self._restore_proportions(caller)
        self._sync(caller)
        self.update_texts()

    def _restore_proportions(self, node) -> None:
        """vtkMRMLSliceLogic::ResizeSliceNode makes a resized view's pixels square in millimetres: stretch depth
        again as the views show it (the zoom, the field of view's height, is kept)."""
        if self.run is None:
            return
        width, height, _ = node.GetDimensions()
        if not width or not height:
            return
        lateral, axial, _ = self.run.volume.GetSpacing()
        stretch = lateral / axial if self.square_voxels else 1.0
        fov = node.GetFieldOfView()
        self._busy = True
        try:
            node.SetFieldOfView(stretch * fov[1] * width / height, fov[1], fov[2])
        finally:
            self._busy = False

    def _sync(self, source) -> None:
        self._busy = True
        try:
            for node in self.slice_nodes:
                if node is not source:
                    follow_view(node, source)
        finally:
            self._busy = False

    def _on_composite_modified(self, caller, event=None) -> None:
        if self._busy or self.run is None:
            return
        name = caller.GetLayoutName()
        wanted = self._assigned.get(name)
        if wanted is None:
            return
        current = (caller.GetBackgroundVolumeID(), caller.GetForegroundVolumeID(), caller.GetLabelVolumeID())
        if current == wanted:
            return
        if any(i is not None and self.scene.GetNodeByID(i) is None for i in wanted):
            self._assigned[name] = current  # a volume of the view was removed from the scene: nothing to keep
            return
        if caller.GetInteracting() or caller.GetInteractionFlags():
            # Slicer's slice controller sets the interaction flags of its own view's composite node around a
            # change (vtkMRMLSliceLogic::StartSliceCompositeNodeInteraction): the user changed this view itself.
            self._assigned[name] = current
            return
        self._apply(VIEW_NAMES.index(name))  # a linked-view broadcast or a scene-wide change: keep DiDA's layers

    def _on_cursor(self, caller, event=None) -> None:
        xyz = [0.0, 0.0, 0.0]
        over = caller.GetCursorPositionXYZ(xyz)
        if over is None or over.GetLayoutName() not in VIEW_NAMES:
            return
        ras = [0.0, 0.0, 0.0]
        if caller.GetCursorPositionRAS(ras):
            caller.SetCrosshairRAS(ras)
            readout = (over.GetLayoutName(), self.scale_readout(over.GetLayoutName(), ras))
            if readout != self.readout:
                self.readout = readout
                self.update_texts(force=True)

    def scale_readout(self, name: str, ras) -> str:
        """Under the cursor in class view ``name``: the grid size at which that class's evidence is strongest and
        its cell size in mm (``maps.scale``), or "" where nothing is known (no d here, outside the B-scan)."""
        from ..maps.scale import feature_scale, scale_readout

        ex, overlays, i = self.explanation, self.overlays, CLASS_VIEWS.index(name) if name in CLASS_VIEWS else -1
        if ex is None or not 0 <= i < len(overlays) or overlays[i].class_index < 0:
            return ""
        to_ijk = vtk.vtkMatrix4x4()
        self.run.volume.GetRASToIJKMatrix(to_ijk)
        col, row, k = (round(v) for v in to_ijk.MultiplyPoint([*ras, 1.0])[:3])
        depth, width = ex.bscan_shape
        if k not in ex.results or not (0 <= row < depth and 0 <= col < width):
            return ""
        key = (k, overlays[i].class_index)
        if key not in self._scales:  # one map per B-scan and class, computed on the first hover
            self._scales[key] = feature_scale(ex.results[k], key[1], ex.bscan_shape)
        lateral, axial, _ = self.run.volume.GetSpacing()
        return scale_readout(self._scales[key], row, col, ex.bscan_shape, (lateral, axial))

    # -- labels --------------------------------------------------------------------------------------------------------

    def texts(self) -> dict[str, str]:
        """The label of every view for the B-scan shown: its number and state, then each class with its score (and,
        in the view under the cursor, the feature-scale readout)."""
        out = self._texts()
        name, readout = self.readout
        if readout and out.get(name):
            out[name] += "\n" + readout
        return out

    def _texts(self) -> dict[str, str]:
        run = self.run
        if run is None:
            return {name: "" for name in VIEW_NAMES}
        k = self.bscan
        if k is None:
            return {name: ("outside the volume" if name == BSCAN_VIEW else "") for name in VIEW_NAMES}
        state = bscan_state(run, k)
        out = {BSCAN_VIEW: f"B-scan {k}" + ("" if state == "finished" else f" ({state})")}
        mode = run.setting("Score")
        indices, names, scores = read_scores(run.table) if state == "finished" else ([], [], None)
        overlays = self.overlays
        for i, name in enumerate(CLASS_VIEWS):
            if i >= len(overlays):
                out[name] = ""
                continue
            cls = overlays[i].class_name
            pair = overlays[i].labels.GetAttribute(CONTRAST)
            if pair:
                a, _, b = pair.partition("\t")
                out[name] = f"{a} vs {b}  (red: {a} rather than {b}; blue: {b} rather than {a})"
            elif state == "finished":
                found = cls in names and k in indices
                score = float(scores[indices.index(k), names.index(cls)]) if found else None
                out[name] = f"{cls}  {score_text(score, mode)}"
            else:
                out[name] = f"{cls}  ({'preview' if state == 'being explained' else state})"
        return out

    def update_texts(self, force: bool = False) -> None:
        """Recompute the labels when the B-scan shown (or, with ``force``, the scores) changed."""
        k = bscan_shown(self.run.volume, self.slice_nodes[0]) if self.run is not None else None
        if k == self.bscan and not force:
            return
        self.bscan = k
        texts = self.texts()
        self._busy = True
        try:
            for node in self.slice_nodes:
                node.SetAttribute(VIEW_TEXT, texts[node.GetLayoutName()])
        finally:
            self._busy = False
        if self.labels is not None:
            self.labels.show(texts)
