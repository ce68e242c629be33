"""The en-face view of the DiDA View: the retina seen from above, one row per B-scan and one column per A-scan, where
a click moves the B-scan views to that B-scan and puts the crosshair on that A-scan (issue 15).

Two one-slice volumes lie in the OCT volume's own RAS space, on the plane through its middle depth spanned by the
A-scan and B-scan axes (IJK (a, b, 0) of the en-face volumes is IJK (a, depth / 2, b) of the OCT volume, whatever
the volume's orientation), so a point clicked in the en-face view is a point of the volume: the background is the
mean of each A-scan over depth (a projection image of the scan), and the labelmap is the en-face evidence
(``maps.enface``: per A-scan the strongest evidence over depth) of the class shown in DiDA view 1, in the class
overlays' encoding and colour table (``maps.labels``), brightness as a Mixed Image's (square root of |d| over one
saturation scale for the run's shown classes); B-scans that were not explained stay transparent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import vtk

from ..explanation import VolumeExplanation
from ..maps.enface import EnFaceMap, enface_map, enface_scale
from ..maps.labels import encode_labels, label_dtype
from .layout import ENFACE_VIEW, VIEW_GROUP, VIEW_NAMES, composite_node, crosshair_node, view_node
from .overlays import CLASS_INDEX, CLASS_NAME, ROLE, color_table
from .volumes import add_volume, bscan_count, remove_node, set_volume_array, volume_array

#: The en-face nodes' roles (``overlays.ROLE``: DiDA's own volumes are never offered as input).
BACKGROUND_ROLE = "enface"
LABELS_ROLE = "enface-labels"


def enface_ijk_to_ras(volume) -> vtk.vtkMatrix4x4:
    """IJK to RAS of the en-face volumes: their voxel (a, b, 0) is the OCT volume's voxel (a, depth / 2, b)."""
    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    depth = volume.GetImageData().GetDimensions()[1]
    swap = vtk.vtkMatrix4x4()  # rows: OCT i, j, k; columns: en-face i (A-scan), j (B-scan), k (the one slice)
    swap.DeepCopy((1.0, 0.0, 0.0, 0.0,
                   0.0, 0.0, 1.0, (depth - 1) / 2.0,
                   0.0, 1.0, 0.0, 0.0,
                   0.0, 0.0, 0.0, 1.0))
    out = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Multiply4x4(m, swap, out)
    return out


def projection(volume) -> np.ndarray:
    """(n_bscans, width) float32: each A-scan's mean over depth."""
    return volume_array(volume).mean(axis=1, dtype=np.float64).astype(np.float32)


def enface_labels(m: EnFaceMap, scale: float) -> np.ndarray:
    """(n_bscans, width) labels of an en-face map: the class overlays' encoding of sqrt(|d| / scale) per sign, 0
    (transparent) on B-scans that were not explained."""
    if scale <= 0:
        return np.zeros(m.positive.shape, label_dtype())
    pos = np.sqrt(np.clip(np.nan_to_num(m.positive) / scale, 0.0, 1.0))
    neg = np.sqrt(np.clip(np.nan_to_num(m.negative) / scale, 0.0, 1.0))
    return encode_labels(pos, neg)


@dataclass
class EnFace:
    """The en-face view's two volumes, and the class its labelmap shows."""

    background: object  # vtkMRMLScalarVolumeNode
    labels: object  # vtkMRMLLabelMapVolumeNode
    class_index: int

    def remove(self, scene) -> None:
        for node in (self.background, self.labels):
            remove_node(scene, node)


def find_enface(scene, volume) -> EnFace | None:
    """The en-face volumes made for ``volume`` (they reference it), or None."""
    found = {}
    for node in _nodes(scene):
        if node.GetNodeReferenceID("DiDAEnFaceOf") == volume.GetID():
            found[node.GetAttribute(ROLE)] = node
    if BACKGROUND_ROLE in found and LABELS_ROLE in found:
        labels = found[LABELS_ROLE]
        return EnFace(found[BACKGROUND_ROLE], labels, int(labels.GetAttribute(CLASS_INDEX) or -1))
    return None


def _nodes(scene) -> list:
    collection = scene.GetNodesByClass("vtkMRMLVolumeNode")
    nodes = [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
    return [n for n in nodes if n.GetAttribute(ROLE) in (BACKGROUND_ROLE, LABELS_ROLE)]


def show_enface(scene, volume, explanation: VolumeExplanation | None, class_index: int,
                classes: list[int] | None = None) -> EnFace:
    """Make (or refresh) the en-face volumes of ``volume`` for class ``class_index`` and show them in the en-face
    view; ``classes`` (default: that one) share the saturation scale. Without ``explanation`` (a run read back from
    a saved scene has its maps but not its d) the view shows the projection alone."""
    n = bscan_count(volume)
    labels = np.zeros((n, volume.GetImageData().GetDimensions()[0]), label_dtype())
    if explanation is not None and explanation.results and class_index >= 0:
        maps = [enface_map(explanation.results, k, n, explanation.bscan_shape, explanation.weights)
                for k in sorted(set(classes or []) | {class_index})]
        labels = enface_labels(next(m for m in maps if m.class_index == class_index), enface_scale(maps))
    enface = find_enface(scene, volume)
    matrix = enface_ijk_to_ras(volume)
    if enface is None:
        name = volume.GetName()
        background = add_volume(scene, projection(volume)[None], matrix, scene.GenerateUniqueName(f"{name} en face"))
        label_node = add_volume(scene, labels[None], matrix, scene.GenerateUniqueName(f"{name} en face evidence"),
                                "vtkMRMLLabelMapVolumeNode")
        label_node.GetDisplayNode().SetAndObserveColorNodeID(color_table(scene).GetID())
        for node, role in ((background, BACKGROUND_ROLE), (label_node, LABELS_ROLE)):
            node.SetAttribute(ROLE, role)
            node.SetNodeReferenceID("DiDAEnFaceOf", volume.GetID())
            node.SetAndObserveTransformNodeID(volume.GetTransformNodeID())
        display = background.GetDisplayNode()
        display.AutoWindowLevelOn()
        enface = EnFace(background, label_node, class_index)
    else:
        set_volume_array(enface.labels, labels[None])
        enface.class_index = class_index
    names = explanation.class_names if explanation is not None else ()
    enface.labels.SetAttribute(CLASS_INDEX, str(int(class_index)))
    enface.labels.SetAttribute(CLASS_NAME, names[class_index] if 0 <= class_index < len(names) else "")
    _show_in_view(scene, volume, enface)
    return enface


def _show_in_view(scene, volume, enface: EnFace) -> None:
    """The en-face view shows the two volumes, looking at their plane (A-scans across, B-scans up), fitted."""
    node = view_node(scene, ENFACE_VIEW)
    if node is None:
        return
    comp = composite_node(scene, ENFACE_VIEW)
    was = comp.StartModify()
    comp.SetDoPropagateVolumeSelection(False)
    comp.SetBackgroundVolumeID(enface.background.GetID())
    comp.SetLabelVolumeID(enface.labels.GetID())
    comp.SetLabelOpacity(1.0)
    comp.EndModify(was)
    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    lateral = _unit([m.GetElement(r, 0) for r in range(3)])
    across = _unit([m.GetElement(r, 2) for r in range(3)])
    normal = np.cross(lateral, across)  # the depth axis: the view looks along it
    dims = volume.GetImageData().GetDimensions()
    centre = m.MultiplyPoint(((dims[0] - 1) / 2.0, (dims[1] - 1) / 2.0, (dims[2] - 1) / 2.0, 1.0))[:3]
    node.SetSliceToRASByNTP(*normal, *lateral, *centre, 0)
    width_mm = dims[0] * np.linalg.norm([m.GetElement(r, 0) for r in range(3)])
    height_mm = dims[2] * np.linalg.norm([m.GetElement(r, 2) for r in range(3)])
    vw, vh, _ = node.GetDimensions()
    if vw and vh:
        per_pixel = max(width_mm / vw, height_mm / vh) * 1.05
        node.SetFieldOfView(per_pixel * vw, per_pixel * vh, node.GetFieldOfView()[2])
    node.SetXYZOrigin(0.0, 0.0, 0.0)


def _unit(v) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / max(float(np.linalg.norm(a)), 1e-12)


def jump_to(scene, volume, ras) -> tuple[int, int] | None:
    """A point of the en-face view (RAS) -> the DiDA B-scan views move to that B-scan and the crosshair goes to that
    A-scan (at middle depth). Returns (bscan, ascan), or None for a point outside the volume's B-scans."""
    m = vtk.vtkMatrix4x4()
    volume.GetRASToIJKMatrix(m)
    i, _, k = m.MultiplyPoint((*[float(v) for v in ras[:3]], 1.0))[:3]
    width, depth, n = volume.GetImageData().GetDimensions()
    ascan, bscan = int(np.floor(i + 0.5)), int(np.floor(k + 0.5))
    if not (0 <= ascan < width and 0 <= bscan < n):
        return None
    to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(to_ras)
    point = to_ras.MultiplyPoint((float(ascan), (depth - 1) / 2.0, float(bscan), 1.0))[:3]
    for name in VIEW_NAMES:  # the DiDA views (their own group): each moved along its normal onto the point
        node = view_node(scene, name)
        if node is not None and node.GetViewGroup() == VIEW_GROUP:
            node.JumpSliceByOffsetting(*point)
    crosshair = crosshair_node(scene)
    if crosshair is not None:
        crosshair.SetCrosshairRAS(*point)
    return bscan, ascan
