"""What DiDA needs of the Slicer application itself: the layout node and the slice views' renderers, the DiDA View
in the layout menu, and the environment of ``DiDALib.mrml.selftest.scenarios`` for ``DiDATest`` (the CI tests use
the ``slicer-core`` one, ``selftest.headless.HeadlessEnvironment``)."""

import logging
import os

import qt
import slicer
from slicer.i18n import tr as _


def about_texts() -> tuple[str, str]:
    """The module's help and acknowledgement texts."""
    help_text = _("""
Explains an OCT B-scan classifier with <b>DiDA</b> (Differential Image Diagnostic Analysis): every cell of several
grids is masked in turn and the change of each class's score is shown, <span style="color:#c00">red</span> where
the region speaks <b>for</b> the class and <span style="color:#00c">blue</span> where it speaks <b>against</b> it.
The DiDA View shows the B-scan and the three top classes side by side, scrolling together; Compare shows two
classes and, in view 3, where the image speaks for one <i>rather than</i> the other.
The bundled demo model (CNV, DME, drusen, normal) is trained on 600 real B-scans of the Kermany 2018 OCT data set
(CC BY 4.0: Kermany, Zhang, Goldbaum 2018): a research demonstration, not for clinical use.
""")
    thanks = _("""
DiDA was proposed by Ayatsuka et al. ("DiDA: analysing and visualising the decision points of machine-learning image
diagnosis by input differences"). This extension follows the Slicer scripted-module template.
""")
    return help_text, thanks


def slice_widget(name):
    """A slice view's widget of the layout on screen; None where the layout has no such view, and without a main
    window (``--no-main-window``, as Slicer's generic module tests run: the main window sets the layout manager)."""
    manager = slicer.app.layoutManager()
    return manager.sliceWidget(name) if manager is not None else None


def layout_node():
    """The application's layout node (None without a main window, see ``slice_widget``)."""
    manager = slicer.app.layoutManager()
    return manager.layoutLogic().GetLayoutNode() if manager is not None else None


def register_layout_and_menu(icon_path: str) -> None:
    """Add the DiDA View to Slicer's layouts (never over another extension's layout) and to the layout menu of the
    View toolbar."""
    try:
        from DiDALib.mrml.layout import register_layout
    except ImportError as exc:  # DiDALib needs packages that are installed on first use
        logging.info(f"DiDA View is registered once DiDA's Python packages are installed ({exc})")
        return
    if layout_node() is None:  # no main window
        return
    layout_id = register_layout(layout_node())
    try:
        toolbar = slicer.util.mainWindow().findChild("QToolBar", "ViewToolBar")
        menu = toolbar.widgetForAction(toolbar.actions()[0]).menu()
        if not any(action.data() == layout_id for action in menu.actions()):
            action = menu.addAction(_("DiDA View"))
            action.setData(layout_id)
            action.setIcon(qt.QIcon(icon_path))
            action.setToolTip(_("B-scan and the top three classes' DiDA overlays side by side"))
    except (AttributeError, IndexError):
        logging.info("DiDA View could not be added to the layout menu; it is shown by the DiDA module")


def slice_view_renderer(name):
    """The renderer of a slice view of the layout on screen (None where there is no such view)."""
    widget = slice_widget(name)
    return widget.sliceView().renderWindow().GetRenderers().GetFirstRenderer() if widget else None


def render_slice_view(name):
    widget = slice_widget(name)
    if widget:
        widget.sliceView().scheduleRender()


class SlicerEnvironment:
    """Slicer's own scene, application logic, layout manager and slice views."""

    def __init__(self):
        slicer.mrmlScene.Clear(0)
        self.scene = slicer.mrmlScene
        self.app_logic = slicer.app.applicationLogic()

    @property
    def layout_node(self):
        return layout_node()

    def show_dida_layout(self):
        from DiDALib.mrml.layout import show_layout

        show_layout(self.layout_node)
        slicer.app.processEvents()

    def slice_logic(self, name):
        if slice_widget(name) is None:
            slicer.app.processEvents()  # a layout just chosen makes its views on the next event loop pass
        return slice_widget(name).sliceLogic()

    def renderer(self, name):
        return slice_view_renderer(name)

    def save_and_reload(self, folder):
        path = os.path.join(str(folder), "DiDA-test-scene.mrb")  # a bundle: scene and data (.mrml alone has no data)
        os.makedirs(str(folder), exist_ok=True)
        if not slicer.util.saveScene(path):
            raise OSError(f"could not save the scene to {path}")
        slicer.mrmlScene.Clear(0)
        slicer.util.loadScene(path)
        return self
