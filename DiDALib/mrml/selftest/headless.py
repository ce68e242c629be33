"""Slicer's scene and logics without Slicer's application, on the ``slicer-core`` wheel: for tests, scripted
checks and the screenshot. Inside Slicer, the application makes all of this (``DiDASlicer.app.SlicerEnvironment``
wraps that instead); ``HeadlessEnvironment`` is the self-test scenarios' environment here.

``HeadlessSlicer`` gives what DiDA's MRML code meets in Slicer: an application logic (with its slice link logic),
colour and layout logics, the "default" crosshair node, and a ``vtkMRMLSliceLogic`` per slice view of the layout
shown (registered with the application logic, as Slicer's layout manager does).
"""

from __future__ import annotations

import os
from pathlib import Path

import slicer
import vtk

from ..layout import ENFACE_VIEW, VIEW_NAMES, register_layout, show_layout, view_node
from ..volumes import nodes_of_class

#: Slice view size in pixels for headless rendering (a wide B-scan panel).
VIEW_SIZE = (384, 200)


class HeadlessSlicer:
    """A scene with the application-level logics Slicer would give it."""

    def __init__(self, scene=None):
        self.scene = scene if scene is not None else slicer.vtkMRMLScene()
        self.app_logic = slicer.vtkSlicerApplicationLogic()
        self.app_logic.SetMRMLScene(self.scene)  # also starts Slicer's vtkMRMLSliceLinkLogic on the scene
        self.color_logic = slicer.vtkMRMLColorLogic()
        self.color_logic.SetMRMLScene(self.scene)
        self.app_logic.SetColorLogic(self.color_logic)
        self.layout_logic = slicer.vtkMRMLLayoutLogic()
        self.layout_logic.SetMRMLScene(self.scene)
        self._slice_logics = vtk.vtkCollection()
        self.app_logic.SetSliceLogics(self._slice_logics)
        register_layout(self.layout_node)  # as the DiDA module does when Slicer starts, before any scene loads
        if not nodes_of_class(self.scene, "vtkMRMLCrosshairNode"):
            crosshair = slicer.vtkMRMLCrosshairNode()
            crosshair.SetCrosshairName("default")
            crosshair.SetSingletonTag("default")
            crosshair.SetName("Crosshair")
            self.scene.AddNode(crosshair)

    def close(self) -> None:
        """Release the logics before the scene, in the order Slicer's application does on exit (VTK objects
        freed in an arbitrary order at interpreter exit can crash)."""
        for i in range(self._slice_logics.GetNumberOfItems()):
            self._slice_logics.GetItemAsObject(i).SetMRMLScene(None)
        self._slice_logics.RemoveAllItems()
        self.layout_logic.SetMRMLScene(None)
        self.color_logic.SetMRMLScene(None)
        self.app_logic.SetMRMLScene(None)
        self.scene.Clear(True)

    def __enter__(self) -> HeadlessSlicer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def layout_node(self):
        return self.layout_logic.GetLayoutNode()

    def show_dida_layout(self, size: tuple[int, int] = VIEW_SIZE) -> None:
        """Switch to the DiDA View and make a slice logic for each of its slice views."""
        show_layout(self.layout_node)
        for name in (*VIEW_NAMES, ENFACE_VIEW):
            self.slice_logic(name, size)

    def slice_logic(self, name: str, size: tuple[int, int] = VIEW_SIZE):
        """The slice logic of a view, made (and registered with the application logic) on first use."""
        logic = self.app_logic.GetSliceLogicByLayoutName(name)
        if logic is not None:
            return logic
        node = view_node(self.scene, name)
        if node is None:
            raise ValueError(f"there is no slice view {name!r} in the scene")
        logic = slicer.vtkMRMLSliceLogic()
        logic.SetMRMLApplicationLogic(self.app_logic)
        logic.SetMRMLScene(self.scene)
        logic.SetSliceNode(node)  # finds or makes the view's composite node, as Slicer's slice widget does
        node.SetDimensions(size[0], size[1], 1)
        self._slice_logics.AddItem(logic)
        return logic

    # -- saving and loading, as File > Save / Load Scene do -------------------------------------------------------

    def save(self, folder: str | os.PathLike) -> Path:
        """Write every storable node's data beside ``scene.mrml`` in ``folder`` and the scene file itself."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.scene.SetRootDirectory(str(out))
        for node in nodes_of_class(self.scene, "vtkMRMLStorableNode"):
            if not node.GetSaveWithScene() or not _has_data(node):
                continue
            if node.GetStorageNode() is None:
                node.AddDefaultStorageNode()
            storage = node.GetStorageNode()
            stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in node.GetName()) or node.GetID()
            storage.SetFileName(str(out / f"{stem}-{node.GetID()}.{storage.GetDefaultWriteFileExtension()}"))
            if not storage.WriteData(node):
                raise OSError(f"could not write {node.GetName()!r} to {storage.GetFileName()}")
        path = out / "scene.mrml"
        self.scene.SetURL(str(path))
        if not self.scene.Commit():
            raise OSError(f"could not write the scene file {path}")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> HeadlessSlicer:
        """A new headless application with the scene read from a ``.mrml`` file (and its data files)."""
        env = cls()
        env.scene.SetURL(str(path))
        if not env.scene.Import():
            raise OSError(f"could not read the scene file {path}")
        return env


def _has_data(node) -> bool:
    if node.IsA("vtkMRMLVolumeNode"):
        return node.GetImageData() is not None
    if node.IsA("vtkMRMLColorTableNode"):
        return node.GetType() == node.User
    return True


class HeadlessEnvironment(HeadlessSlicer):
    """The scenarios' environment on ``slicer-core`` (``fixtures`` says what an environment has)."""

    def __init__(self, scene=None):
        super().__init__(scene)
        self._renderers: dict[str, vtk.vtkRenderer] = {}

    def renderer(self, name: str):
        """A renderer for each view (Slicer's slice views have one each), made on first use."""
        return self._renderers.setdefault(name, vtk.vtkRenderer())

    def save_and_reload(self, folder) -> HeadlessEnvironment:
        return HeadlessEnvironment.load(self.save(folder))
