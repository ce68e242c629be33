"""DiDA overlays in the scene: the red/blue colour table node and, per explained class, a labelmap and a float map
on the input volume's voxel grid, written one B-scan at a time.

The labelmap holds ``labels.encode_labels`` values (positive level x negative level), so red and blue evidence
stay apart as METHOD.md asks; the colour table maps them to red, blue or purple with an opacity that grows with
the evidence, label 0 transparent. The float map holds the signed net readout (positive minus negative
brightness, 1 = saturation) for the Data Probe and for saving. Which side is shown (both, positive only,
negative only) is a property of the one shared colour table, so it changes every DiDA view at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..maps.labels import COLOR_TABLE_NAME, LEVELS, color_table_entries, encode_labels, label_color, label_dtype
from ..maps.mixing import MixedImage
from .volumes import add_volume_like, nodes_of_class, remove_node, volume_array, volume_modified

#: What a DiDA node is (node attribute): "colors", "labels" (the overlay) or "net" (the float map).
ROLE = "DiDA.Role"
CLASS_NAME = "DiDA.Class"
CLASS_INDEX = "DiDA.ClassIndex"
#: On a contrast overlay's labelmap (``compare``): "A\tB", the two classes it contrasts.
CONTRAST = "DiDA.Contrast"
DISPLAY_MODE = "DiDA.DisplayMode"
DISPLAY_MODES = ("both", "positive", "negative")
#: Slicer's built-in diverging map for the float map (blue below 0, red above).
NET_COLOR_NODE_ID = "vtkMRMLColorTableNodeFileDivergingBlueRed.txt"
#: Reference from an overlay's labelmap to its float map.
NET_REFERENCE = "DiDANet"


def mode_entries(mode: str = "both", levels: int = LEVELS) -> list[tuple[int, str, tuple[float, float, float, float]]]:
    """The colour table for one display mode: ``positive`` drops the negative level of every label (blue is
    hidden), ``negative`` drops the positive level; names always describe the full label."""
    if mode not in DISPLAY_MODES:
        raise ValueError(f"display mode {mode!r} is not one of {DISPLAY_MODES}")
    entries = color_table_entries(levels)
    if mode == "both":
        return entries
    keep = (lambda p, q: p * levels) if mode == "positive" else (lambda p, q: q)
    return [(i, name, label_color(keep(*divmod(i, levels)), levels)) for i, name, _ in entries]


def find_color_table(scene):
    """The scene's DiDA colour table node, or None."""
    for node in nodes_of_class(scene, "vtkMRMLColorTableNode"):
        if node.GetAttribute(ROLE) == "colors":
            return node
    return None


def color_table(scene):
    """The scene's DiDA colour table node, created on first use (one per scene, shared by all overlays)."""
    node = find_color_table(scene)
    if node is not None:
        return node
    node = scene.CreateNodeByClass("vtkMRMLColorTableNode")
    node.UnRegister(None)
    node.SetName(COLOR_TABLE_NAME)
    node.SetTypeToUser()
    node.SetNumberOfColors(LEVELS * LEVELS)
    # A hidden node with a storage node is not saved with the scene: keep the table visible so it round-trips.
    node.SetHideFromEditors(False)
    node.SetAttribute(ROLE, "colors")
    node.SetAttribute("Category", "DiDA")
    _fill(node, "both")
    scene.AddNode(node)
    return node


def _fill(node, mode: str) -> None:
    was = node.StartModify()
    for i, name, (r, g, b, a) in mode_entries(mode):
        node.SetColor(i, name, r, g, b, a)
    node.SetAttribute(DISPLAY_MODE, mode)
    node.EndModify(was)


def set_display_mode(scene, mode: str) -> None:
    """Show both sides, positive (red) only or negative (blue) only, in every DiDA overlay at once."""
    node = color_table(scene)
    if node.GetAttribute(DISPLAY_MODE) != mode:
        _fill(node, mode)


def display_mode(scene) -> str:
    node = find_color_table(scene)
    return (node.GetAttribute(DISPLAY_MODE) if node is not None else None) or "both"


@dataclass
class ClassOverlay:
    """One class's overlay pair on the input volume's grid: ``labels`` (labelmap, uint8) and ``net`` (float32)."""

    labels: object  # vtkMRMLLabelMapVolumeNode
    net: object  # vtkMRMLScalarVolumeNode

    @property
    def class_name(self) -> str:
        return self.labels.GetAttribute(CLASS_NAME) or ""

    @property
    def class_index(self) -> int:
        return int(self.labels.GetAttribute(CLASS_INDEX) or -1)

    @property
    def nodes(self) -> tuple:
        return (self.labels, self.net)

    def write(self, k: int, mixed: MixedImage | None) -> None:
        """Write one B-scan's Mixed Image into slice k (``None`` clears it: nothing known there)."""
        labels = volume_array(self.labels)
        net = volume_array(self.net)
        if mixed is None:
            labels[k] = 0
            net[k] = 0.0
        else:
            if mixed.positive.shape != labels.shape[1:]:
                raise ValueError(f"Mixed Image {mixed.positive.shape} does not fit B-scans {labels.shape[1:]}")
            labels[k] = encode_labels(mixed.positive, mixed.negative)
            net[k] = mixed.net
        volume_modified(self.labels)
        volume_modified(self.net)

    def bscan_labels(self, k: int) -> np.ndarray:
        """A copy of the labels of B-scan k."""
        return np.array(volume_array(self.labels)[k])

    def remove(self, scene) -> None:
        for node in self.nodes:
            remove_node(scene, node)


def add_class_overlay(scene, reference, class_name: str, class_index: int, prefix: str = "DiDA") -> ClassOverlay:
    """A new overlay pair for one class with the input volume's geometry, coloured by the DiDA table."""
    base = f"{prefix} {class_name}"
    labels = add_volume_like(scene, reference, scene.GenerateUniqueName(base), "vtkMRMLLabelMapVolumeNode",
                            label_dtype())
    labels.GetDisplayNode().SetAndObserveColorNodeID(color_table(scene).GetID())
    net = add_volume_like(scene, reference, scene.GenerateUniqueName(f"{base} net"), "vtkMRMLScalarVolumeNode",
                          np.float32)
    display = net.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(-1.0, 1.0)
    if scene.GetNodeByID(NET_COLOR_NODE_ID) is not None:  # a file-based table: in Slicer, not on slicer-core
        display.SetAndObserveColorNodeID(NET_COLOR_NODE_ID)
    for node, role in ((labels, "labels"), (net, "net")):
        node.SetAttribute(ROLE, role)
        node.SetAttribute(CLASS_NAME, class_name)
        node.SetAttribute(CLASS_INDEX, str(int(class_index)))
    net.SetAttribute("DiDA.Meaning", "net evidence: positive minus negative Mixed Image brightness (1 = saturation)")
    labels.SetNodeReferenceID(NET_REFERENCE, net.GetID())
    return ClassOverlay(labels, net)


def overlay_bytes(reference, num_classes: int) -> int:
    """Memory the overlays of ``num_classes`` classes take on a volume's grid (uint8 labels + float32 net)."""
    width, depth, count = reference.GetImageData().GetDimensions()
    return width * depth * count * (1 + 4) * int(num_classes)


def overlay_from_labels(labels) -> ClassOverlay | None:
    """The overlay pair of a DiDA labelmap (it references its float map), e.g. after a scene reload."""
    net = labels.GetNodeReference(NET_REFERENCE) if labels is not None else None
    return ClassOverlay(labels, net) if net is not None else None


def dida_volume_ids(scene) -> list[str]:
    """The IDs of DiDA's own volumes (overlays and float maps): none of them is an OCT volume to explain."""
    return [n.GetID() for n in nodes_of_class(scene, "vtkMRMLVolumeNode") if n.GetAttribute(ROLE)]


def input_candidates(scene) -> list:
    """The volumes DiDA can explain: grey scalar volumes that are not DiDA's own maps (nor labelmaps)."""
    return [n for n in nodes_of_class(scene, "vtkMRMLScalarVolumeNode")
            if not n.IsA("vtkMRMLLabelMapVolumeNode") and not n.GetAttribute(ROLE)]
