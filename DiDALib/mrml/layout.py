"""The DiDA View: the paper's four panels as a Slicer layout, kept in step while the clinician reads them.

Panels: the B-scan, then the overlays of the run's top three classes on the same B-scan, side by side, with the
score plot below. ``DiDAViews`` keeps them together:

- **Scrolling and zoom** are linked by DiDA's own observer on the four slice nodes (slice-to-RAS, pan and field of
  view are copied from the view that moved), so they work the same in Slicer and on ``slicer-core`` and do not
  depend on the link button.
- **The per-class overlays survive Slicer's linked-view controls.** The DiDA views have their own view group, so
  links among Red/Yellow/Green never reach them. Among themselves, Slicer's ``vtkMRMLSliceLinkLogic`` copies a
  layer change made in one linked view to the others; a change to a DiDA view's layers that was not made in that
  very view (its composite node is not ``Interacting``) is put back. A change made in the view itself is accepted.
- **The crosshair follows the mouse** in the DiDA views: when the cursor moves over one of them, the crosshair is
  placed there, so it is drawn at the same place in all four.
- **View labels**: each view's slice node carries its label text (class and score on the B-scan shown, updated as
  the B-scan changes) in the ``DiDA.ViewText`` attribute and passed to ``on_texts`` (the module's widget draws
  it in the view's corner).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from vtkmodules.util import numpy_support

from .overlays import set_display_mode
from .results import DiDARun, read_scores
from .volumes import bscan_center_ras, bscan_count, bscan_shown, nodes_of_class

#: The layout's id: custom layouts live at 100 and above (vtkMRMLLayoutNode::SlicerLayoutUserView).
LAYOUT_ID = 5701
#: A view group of their own keeps Slicer's Red/Yellow/Green linking away from the DiDA views.
VIEW_GROUP = 57
BSCAN_VIEW = "DiDABscan"
CLASS_VIEWS = ("DiDAClass1", "DiDAClass2", "DiDAClass3")
VIEW_NAMES = (BSCAN_VIEW, *CLASS_VIEWS)
PLOT_VIEW = "DiDAPlot"
VIEW_TEXT = "DiDA.ViewText"
_VIEW_LABELS = {BSCAN_VIEW: "B", CLASS_VIEWS[0]: "1", CLASS_VIEWS[1]: "2", CLASS_VIEWS[2]: "3"}
_VIEW_COLORS = {BSCAN_VIEW: "#8c8c8c", CLASS_VIEWS[0]: "#c8553d", CLASS_VIEWS[1]: "#b0763a", CLASS_VIEWS[2]: "#8a6e9e"}


def layout_xml() -> str:
    """The DiDA View layout: four axial slice views in a row (B-scan, classes 1 to 3), the score plot below."""
    views = "".join(
        f'<item><view class="vtkMRMLSliceNode" singletontag="{name}">'
        '<property name="orientation" action="default">Axial</property>'
        f'<property name="viewlabel" action="default">{_VIEW_LABELS[name]}</property>'
        f'<property name="viewcolor" action="default">{_VIEW_COLORS[name]}</property>'
        f'<property name="viewgroup" action="default">{VIEW_GROUP}</property>'
        "</view></item>"
        for name in VIEW_NAMES
    )
    return (
        '<layout type="vertical" split="true">'
        f'<item splitSize="700"><layout type="horizontal" split="true">{views}</layout></item>'
        f'<item splitSize="250"><view class="vtkMRMLPlotViewNode" singletontag="{PLOT_VIEW}">'
        '<property name="viewlabel" action="default">P</property></view></item>'
        "</layout>"
    )


def register_layout(layout_node) -> None:
    """Add (or refresh) the DiDA View description in the layout node."""
    if layout_node.IsLayoutDescription(LAYOUT_ID):
        layout_node.SetLayoutDescription(LAYOUT_ID, layout_xml())
    else:
        layout_node.AddLayoutDescription(LAYOUT_ID, layout_xml())


def show_layout(layout_node) -> None:
    """Register and switch to the DiDA View (Slicer's layout logic creates its view nodes)."""
    register_layout(layout_node)
    layout_node.SetViewArrangement(LAYOUT_ID)


def view_node(scene, layout_name: str, class_name: str = "vtkMRMLSliceNode"):
    for node in nodes_of_class(scene, class_name):
        if node.GetLayoutName() == layout_name:
            return node
    return None


def composite_node(scene, layout_name: str):
    """The slice composite node of a view, created when no slice logic has made it yet (it then adopts it)."""
    node = view_node(scene, layout_name, "vtkMRMLSliceCompositeNode")
    if node is not None:
        return node
    node = scene.CreateNodeByClass("vtkMRMLSliceCompositeNode")
    node.UnRegister(None)
    node.SetLayoutName(layout_name)
    node.SetSingletonTag(layout_name)
    return scene.AddNode(node)


def crosshair_node(scene):
    """The application's crosshair node (singleton "default" in Slicer), or the first one."""
    nodes = nodes_of_class(scene, "vtkMRMLCrosshairNode")
    return next((n for n in nodes if n.GetCrosshairName() == "default"), nodes[0] if nodes else None)


def view_rgba(slice_logic) -> np.ndarray:
    """What a slice view shows: the slice logic's blended RGBA image as (rows, columns, 4) uint8, top row first."""
    logic_output = slice_logic.GetImageDataConnection()
    producer = logic_output.GetProducer()
    producer.Update()
    image = producer.GetOutputDataObject(logic_output.GetIndex())
    width, height, _ = image.GetDimensions()
    rgba = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
    return np.ascontiguousarray(rgba[::-1])


def bscan_state(run: DiDARun, k: int) -> str:
    """A B-scan's state in a run: "finished", "being explained", "cancelled", "failed" or "not explained"."""
    if k in run.finished:
        return "finished"
    if k in run.unfinished:
        return {"running": "being explained", "cancelled": "cancelled", "failed": "failed"}.get(run.status,
                                                                                               "not explained")
    return "not explained"


def score_text(score: float | None, mode: str | None) -> str:
    if score is None:
        return "not explained"
    return f"logit {score:.2f}" if mode == "logits" else f"p = {score:.2f}"


class DiDAViews:
    """Shows a ``DiDARun`` in the DiDA View and keeps the four views together (see the module docstring).

    Create it after the layout's view nodes exist (``show_layout``); ``detach()`` (also called when the scene
    closes) removes every observer.
    """

    def __init__(self, scene, on_texts: Callable[[dict[str, str]], None] | None = None):
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
        self.on_texts = on_texts
        self._assigned: dict[str, tuple] = {}
        self._busy = False
        self._observations: list[tuple] = []
        self._run_observation: tuple | None = None
        self._crosshair_mode: int | None = None
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

    # -- observers ---------------------------------------------------------------------------------------------------

    def _observe(self, obj, event, callback) -> None:
        self._observations.append((obj, obj.AddObserver(event, callback)))

    def detach(self) -> None:
        """Stop linking and guarding; give the crosshair its mode back."""
        for obj, tag in self._observations:
            obj.RemoveObserver(tag)
        self._observations = []
        self._watch_run(None)
        if self.crosshair is not None and self._crosshair_mode is not None:
            self.crosshair.SetCrosshairMode(self._crosshair_mode)
            self._crosshair_mode = None

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

    def _assign_layers(self) -> None:
        """Views show the input volume; view i (1..3) shows the overlay of the run's class ranked i."""
        volume_id = self.run.volume.GetID()
        for i, name in enumerate(VIEW_NAMES):
            overlay = self.run.overlays[i - 1] if 0 < i <= len(self.run.overlays) else None
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
        self._sync(caller)
        self.update_texts()

    def _sync(self, source) -> None:
        self._busy = True
        try:
            for node in self.slice_nodes:
                if node is not source:
                    _follow(node, source)
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

    # -- labels --------------------------------------------------------------------------------------------------------

    def texts(self) -> dict[str, str]:
        """The label of every view for the B-scan shown: its number and state, then each class with its score."""
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
        for i, name in enumerate(CLASS_VIEWS):
            if i >= len(run.overlays):
                out[name] = ""
                continue
            cls = run.overlays[i].class_name
            if state == "finished":
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
        if self.on_texts is not None:
            self.on_texts(texts)


def fit_bscan(slice_node, volume, stretch: float = 1.0) -> None:
    """Fit an axial slice view to a volume's B-scans (width x depth), depth drawn ``stretch`` times taller than
    its true proportion: the view's pixels become rectangles in millimetres, which Slicer's slice views support."""
    width, height, _ = slice_node.GetDimensions()
    if not width or not height or stretch <= 0:
        return
    dims = volume.GetImageData().GetDimensions()
    lateral, axial, _ = volume.GetSpacing()
    per_pixel = max(dims[0] * lateral / width, dims[1] * axial * stretch / height)  # mm across, per view pixel
    slice_node.SetXYZOrigin(0.0, 0.0, 0.0)
    slice_node.SetFieldOfView(per_pixel * width, per_pixel * height / stretch, slice_node.GetFieldOfView()[2])


def _follow(node, source, tol: float = 1e-9) -> None:
    """Make a slice node show what ``source`` shows: plane (slice to RAS), pan (XYZ origin) and zoom (the size of
    a view pixel in millimetres along each axis, so views of any size show the same magnification)."""
    was = node.StartModify()
    a, b = node.GetSliceToRAS(), source.GetSliceToRAS()
    if any(abs(a.GetElement(r, c) - b.GetElement(r, c)) > tol for r in range(4) for c in range(4)):
        a.DeepCopy(b)
        node.UpdateMatrices()
    if tuple(node.GetXYZOrigin()) != tuple(source.GetXYZOrigin()):
        node.SetXYZOrigin(*source.GetXYZOrigin())
    fov, own, dims, source_dims = source.GetFieldOfView(), node.GetFieldOfView(), node.GetDimensions(), \
        source.GetDimensions()
    if all(source_dims[:2]) and all(dims[:2]):
        want = (fov[0] / source_dims[0] * dims[0], fov[1] / source_dims[1] * dims[1])
        if abs(own[0] - want[0]) > tol or abs(own[1] - want[1]) > tol:
            node.SetFieldOfView(want[0], want[1], own[2])
    node.EndModify(was)
