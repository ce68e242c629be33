"""The DiDA View: the paper's four panels as a Slicer layout (the B-scan, then the overlays of the run's top three
classes on the same B-scan, side by side, with the en-face view and the score plot below), and what every view of it
needs: finding its nodes, fitting a B-scan, what a view shows. ``views.DiDAViews`` keeps the four views together while they are read.

The layout is registered under ``LAYOUT_ID`` unless another extension's layout already holds that id: that one is
kept, and DiDA's takes the next free id (``register_layout`` returns it; ``layout_id`` finds it again).
"""

from __future__ import annotations

import numpy as np
from vtkmodules.util import numpy_support

from .results import DiDARun
from .volumes import nodes_of_class

#: The layout's preferred id: custom layouts live at 100 and above (vtkMRMLLayoutNode::SlicerLayoutUserView).
LAYOUT_ID = 5701
#: How many ids after it DiDA may take when another layout holds one.
LAYOUT_ID_RANGE = 100
#: A view group of their own keeps Slicer's Red/Yellow/Green linking away from the DiDA views.
VIEW_GROUP = 57
BSCAN_VIEW = "DiDABscan"
CLASS_VIEWS = ("DiDAClass1", "DiDAClass2", "DiDAClass3")
VIEW_NAMES = (BSCAN_VIEW, *CLASS_VIEWS)
PLOT_VIEW = "DiDAPlot"
#: The en-face view (``enface``): B-scans x A-scans seen from above, a view group of its own (it never scrolls with
#: the B-scan views: a click in it moves them instead).
ENFACE_VIEW = "DiDAEnFace"
ENFACE_GROUP = 58
VIEW_TEXT = "DiDA.ViewText"
_VIEW_LABELS = {BSCAN_VIEW: "B", CLASS_VIEWS[0]: "1", CLASS_VIEWS[1]: "2", CLASS_VIEWS[2]: "3"}
_VIEW_COLORS = {BSCAN_VIEW: "#8c8c8c", CLASS_VIEWS[0]: "#c8553d", CLASS_VIEWS[1]: "#b0763a", CLASS_VIEWS[2]: "#8a6e9e"}


def layout_xml() -> str:
    """The DiDA View layout: four axial slice views in a row (B-scan, classes 1 to 3); below, the en-face view
    (coronal for B-scans stored as axial slices; ``enface`` sets its exact plane) beside the score plot."""
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
        '<item splitSize="250"><layout type="horizontal" split="true">'
        f'<item splitSize="300"><view class="vtkMRMLSliceNode" singletontag="{ENFACE_VIEW}">'
        '<property name="orientation" action="default">Coronal</property>'
        '<property name="viewlabel" action="default">E</property>'
        '<property name="viewcolor" action="default">#5b8c5a</property>'
        f'<property name="viewgroup" action="default">{ENFACE_GROUP}</property></view></item>'
        f'<item splitSize="700"><view class="vtkMRMLPlotViewNode" singletontag="{PLOT_VIEW}">'
        '<property name="viewlabel" action="default">P</property></view></item>'
        "</layout></item></layout>"
    )


def is_dida_layout(description: str | None) -> bool:
    """Whether a layout description is DiDA's (of this or an earlier version): it has DiDA's B-scan view."""
    return f'singletontag="{BSCAN_VIEW}"' in (description or "")


def layout_id(layout_node) -> int | None:
    """The id the DiDA View is registered under in a layout node, or None."""
    for candidate in range(LAYOUT_ID, LAYOUT_ID + LAYOUT_ID_RANGE):
        if not layout_node.IsLayoutDescription(candidate):
            return None  # ids are taken in order: DiDA's is never after a free one
        if is_dida_layout(layout_node.GetLayoutDescription(candidate)):
            return candidate
    return None


def register_layout(layout_node) -> int:
    """Add (or refresh) the DiDA View and return its id: ``LAYOUT_ID``, or the first id after it that is free or
    already DiDA's. Another extension's layout is never replaced."""
    for candidate in range(LAYOUT_ID, LAYOUT_ID + LAYOUT_ID_RANGE):
        if not layout_node.IsLayoutDescription(candidate):
            layout_node.AddLayoutDescription(candidate, layout_xml())
            return candidate
        if is_dida_layout(layout_node.GetLayoutDescription(candidate)):
            if layout_node.GetLayoutDescription(candidate) != layout_xml():
                layout_node.SetLayoutDescription(candidate, layout_xml())
            return candidate
    raise RuntimeError(f"layout ids {LAYOUT_ID} to {LAYOUT_ID + LAYOUT_ID_RANGE - 1} are all taken by other "
                       "layouts: the DiDA View cannot be registered")


def shows_dida_layout(layout_node) -> bool:
    """Whether the layout on screen is the DiDA View."""
    if layout_node is None:
        return False
    arrangement = layout_node.GetViewArrangement()
    return bool(layout_node.IsLayoutDescription(arrangement)) and is_dida_layout(
        layout_node.GetLayoutDescription(arrangement))


def show_layout(layout_node) -> int:
    """Register and switch to the DiDA View (Slicer's layout logic creates its view nodes); returns its id."""
    chosen = register_layout(layout_node)
    layout_node.SetViewArrangement(chosen)
    return chosen


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
    """A score as a view label shows it, in its mode's own terms."""
    if score is None:
        return "not explained"
    if mode == "logits":
        return f"logit {score:.2f}"
    if mode == "log-odds":
        return f"log-odds {score:+.2f}"
    return f"p = {score:.2f}"


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


def follow_view(node, source, tol: float = 1e-9) -> None:
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
