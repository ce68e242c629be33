"""OCT volumes as Slicer volume nodes and back, and the geometry every DiDA overlay shares with its B-scans.

The convention of ``io.volume``: ``array[k, j, i]`` is B-scan k, depth row j (row 0 = vitreous) and A-scan i;
IJK to RAS is ``diag(-lateral, -axial, distance)`` (the LPS identity), so that each B-scan is an axial slice,
upright and unflipped in Slicer's Red view, and the slice offset walks the B-scans.

Only Slicer's MRML API is used here, so this runs inside Slicer and on the ``slicer-core`` wheel alike.
"""

from __future__ import annotations

import json

import numpy as np
import vtk
from vtkmodules.util import numpy_support

from ..io.volume import GEOMETRIES, OCTVolume, to_unit_range

#: Node attributes that carry an ``OCTVolume``'s provenance through the scene (and a saved scene).
OCT_ATTRIBUTE = "DiDA.OCT"
_PROVENANCE = ("laterality", "source", "format", "spacing_placeholder", "spacing_unit", "geometry")


def nodes_of_class(scene, class_name: str) -> list:
    """The scene's nodes of a class (subclasses included), as a list."""
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def scene_hierarchy(scene):
    """The scene's subject hierarchy node."""
    import slicer

    return slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)


def remove_node(scene, node) -> None:
    """Remove a node and its subject hierarchy item. In Slicer the subject hierarchy plugin logic removes the item
    when the node goes (qSlicerSubjectHierarchyPluginLogic::onNodeAboutToBeRemoved); slicer-core has no such
    plugin, so the item is removed here first, the way that plugin does it."""
    if node is None or node.GetScene() is not scene:
        return
    sh = scene_hierarchy(scene)
    item = sh.GetItemByDataNode(node) if sh is not None else 0
    if item:
        sh.RemoveItem(item, False, False)  # the item only: its node is removed next
    scene.RemoveNode(node)


def ijk_to_ras(spacing: tuple[float, float, float], origin=(0.0, 0.0, 0.0)) -> vtk.vtkMatrix4x4:
    """The IJK to RAS matrix of B-scans with spacing (lateral, axial, distance): the LPS identity, scaled."""
    m = vtk.vtkMatrix4x4()
    for axis, (sign, s) in enumerate(zip((-1.0, -1.0, 1.0), spacing)):
        m.SetElement(axis, axis, sign * float(s))
        m.SetElement(axis, 3, sign * float(origin[axis]))
    return m


def volume_array(node) -> np.ndarray:
    """The voxels of a volume node as a (k, j, i) numpy view: writes go straight into the node's image data
    (call ``volume_modified`` afterwards)."""
    image = node.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise ValueError(f"volume {node.GetName()!r} has no voxels")
    dims = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0])


def volume_modified(node) -> None:
    """Tell the scene (and so the slice views) that voxels written through ``volume_array`` changed."""
    node.GetImageData().GetPointData().GetScalars().Modified()
    node.GetImageData().Modified()
    node.Modified()


def set_volume_array(node, array: np.ndarray) -> None:
    """Replace a volume node's voxels by a copy of a (k, j, i) array, keeping the node's geometry."""
    a = np.ascontiguousarray(array)
    if a.ndim != 3:
        raise ValueError(f"voxels must be a (k, j, i) array; got shape {a.shape}")
    if a.dtype == np.int64 or a.dtype == np.uint64:
        raise ValueError("64-bit integer voxels are not supported by Slicer's volume nodes: use int32 or uint16")
    image = vtk.vtkImageData()
    image.SetDimensions(a.shape[2], a.shape[1], a.shape[0])
    scalars = numpy_support.numpy_to_vtk(a.ravel(), deep=True)
    image.GetPointData().SetScalars(scalars)
    node.SetAndObserveImageData(image)


def add_volume(scene, array: np.ndarray, ijk_to_ras_matrix: vtk.vtkMatrix4x4, name: str,
               class_name: str = "vtkMRMLScalarVolumeNode"):
    """A new volume node in the scene holding a copy of ``array`` with the given geometry and display nodes."""
    node = scene.AddNewNodeByClass(class_name, name)
    node.SetIJKToRASMatrix(ijk_to_ras_matrix)
    set_volume_array(node, array)
    node.CreateDefaultDisplayNodes()
    return node


def add_oct_volume(scene, volume: OCTVolume, name: str | None = None):
    """The B-scans of an ``OCTVolume`` as a scalar volume node, grey 0..1 display, provenance in attributes."""
    node = add_volume(scene, volume.bscans, ijk_to_ras(volume.spacing), name or _default_name(volume))
    display = node.GetDisplayNode()
    if display is not None:
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 1.0)  # display intensities are what the classifier sees
        display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")
    for key in _PROVENANCE:
        value = getattr(volume, key)
        node.SetAttribute(f"{OCT_ATTRIBUTE}.{key}", "" if value is None else str(value))
    node.SetAttribute(f"{OCT_ATTRIBUTE}.metadata", json.dumps(volume.metadata, default=str))
    return node


def _default_name(volume: OCTVolume) -> str:
    from pathlib import PurePath

    name = PurePath(volume.source).name if volume.source else ""
    while "." in name.strip("."):  # "eye.nii.gz" -> "eye"
        name = name.rsplit(".", 1)[0]
    return name or "OCT"


def spacing_of(node) -> tuple[float, float, float]:
    """(lateral, axial, distance) of a volume node."""
    return tuple(float(s) for s in node.GetSpacing())  # type: ignore[return-value]


def grey_voxels(node) -> np.ndarray:
    """The voxels of a grey (one component) volume node, a (B-scans, depth, width) view; a ValueError saying what
    to do for anything else."""
    if node is None or node.GetImageData() is None:
        raise ValueError("no input volume: load an OCT volume first")
    if node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise ValueError(
            f"volume {node.GetName()!r} has {node.GetImageData().GetNumberOfScalarComponents()} components per "
            "voxel: DiDA needs grey B-scans (convert with Vector to Scalar Volume first)"
        )
    return volume_array(node)


def bscans_from_volume_node(node) -> tuple[np.ndarray, str]:
    """The B-scans of any scalar volume node as float32 display intensities in [0, 1] (a copy), and how the
    intensities were obtained: volumes read by DiDA pass through, others are scaled as ``io.volume`` does."""
    bscans, how = to_unit_range(grey_voxels(node), node.GetName())
    return np.array(bscans, dtype=np.float32, copy=True), how


def oct_from_volume_node(node) -> OCTVolume:
    """An ``OCTVolume`` from a volume node, with the provenance ``add_oct_volume`` stored (if any)."""
    bscans, how = bscans_from_volume_node(node)

    def attr(key: str) -> str | None:
        value = node.GetAttribute(f"{OCT_ATTRIBUTE}.{key}")
        return value if value else None

    try:
        metadata = json.loads(attr("metadata") or "{}")
    except json.JSONDecodeError:
        metadata = {}
    metadata.setdefault("intensity", how)
    return OCTVolume(
        bscans=bscans,
        spacing=spacing_of(node),
        laterality=attr("laterality"),
        source=attr("source") or node.GetName(),
        format=attr("format") or "slicer-volume",
        spacing_placeholder=(attr("spacing_placeholder") == "True"),
        spacing_unit=attr("spacing_unit") or "mm",
        metadata=metadata,
        geometry=scan_geometry(node),
    )


def scan_geometry(node) -> str:
    """How a volume node's B-scans lie: "cartesian" (parallel slices), "circle" or "radial" (``io.volume``), as
    DiDA's reader recorded it; volumes that DiDA did not read are taken as Cartesian."""
    value = node.GetAttribute(f"{OCT_ATTRIBUTE}.geometry") if node is not None else None
    return value if value in GEOMETRIES else "cartesian"


def add_volume_like(scene, reference, name: str, class_name: str = "vtkMRMLLabelMapVolumeNode",
                    dtype=np.uint8):
    """A zero-filled volume node with the reference volume's dimensions and geometry (IJK to RAS, parent
    transform), e.g. an overlay of the input's B-scans."""
    dims = reference.GetImageData().GetDimensions()
    m = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(m)
    node = add_volume(scene, np.zeros((dims[2], dims[1], dims[0]), dtype=dtype), m, name, class_name)
    node.SetAndObserveTransformNodeID(reference.GetTransformNodeID())
    return node


def same_geometry(a, b, tol: float = 1e-6) -> bool:
    """Whether two volume nodes have the same voxel grid in RAS (dimensions, IJK to RAS, parent transform)."""
    if a.GetImageData() is None or b.GetImageData() is None:
        return False
    if a.GetImageData().GetDimensions() != b.GetImageData().GetDimensions():
        return False
    ma, mb = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    a.GetIJKToRASMatrix(ma)
    b.GetIJKToRASMatrix(mb)
    same = all(abs(ma.GetElement(r, c) - mb.GetElement(r, c)) <= tol for r in range(4) for c in range(4))
    return same and a.GetTransformNodeID() == b.GetTransformNodeID()


def bscan_count(node) -> int:
    return int(node.GetImageData().GetDimensions()[2])


def bscan_center_ras(node, k: int) -> tuple[float, float, float]:
    """RAS of the centre of B-scan k of a volume node."""
    dims = node.GetImageData().GetDimensions()
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ras = m.MultiplyPoint(((dims[0] - 1) / 2.0, (dims[1] - 1) / 2.0, float(k), 1.0))
    return (ras[0], ras[1], ras[2])


def bscan_shown(node, slice_node) -> int | None:
    """The B-scan index a slice view shows of a volume (the voxel plane through the view's centre), or None
    where the view lies outside the volume."""
    if node is None or node.GetImageData() is None or slice_node is None:
        return None
    to_ras = slice_node.GetSliceToRAS()
    centre = (to_ras.GetElement(0, 3), to_ras.GetElement(1, 3), to_ras.GetElement(2, 3), 1.0)
    m = vtk.vtkMatrix4x4()
    node.GetRASToIJKMatrix(m)
    k = m.MultiplyPoint(centre)[2]
    index = int(np.floor(k + 0.5))
    return index if 0 <= index < bscan_count(node) else None


def show_bscan(slice_node, node, k: int) -> None:
    """Move a slice view (its plane, along its normal) onto B-scan k of a volume."""
    slice_node.JumpSliceByOffsetting(*bscan_center_ras(node, k))


def show_volume(app_logic, node, fit: bool = True) -> None:
    """Show a volume in Slicer's slice views as the Volumes reader does after Add Data: make it the active volume
    of the selection node and propagate the selection to the views (their background, fitted)."""
    selection = app_logic.GetSelectionNode() if app_logic is not None else None
    if selection is None or node is None:
        return
    if node.IsA("vtkMRMLLabelMapVolumeNode"):
        selection.SetActiveLabelVolumeID(node.GetID())
    else:
        selection.SetActiveVolumeID(node.GetID())
    app_logic.PropagateVolumeSelection(int(fit))


def load_oct_node(scene, path, name: str | None = None, app_logic=None):
    """Read an OCT file or folder (``io.registry``) into a new volume node, B-scans as axial slices; with
    ``app_logic`` it is shown in the slice views as the Volumes reader shows what Add Data reads."""
    from ..io.registry import load_oct

    node = add_oct_volume(scene, load_oct(path), name)
    if app_logic is not None:
        show_volume(app_logic, node)
    return node
