"""DiDA: Differential Image Diagnostic Analysis of OCT B-scan classifiers, in 3D Slicer.

The module only wires Slicer's user interface to ``DiDALib``; everything that touches the scene lives in
``DiDALib.mrml`` (plain MRML code, also tested on the ``slicer-core`` wheel). The model runs in DiDA's worker process
(``DiDALib.worker``), never in Slicer's: a QTimer applies what it streams to the scene, and no thread is started.
What reading OCT needs (no PyTorch) and what explaining needs are installed, after asking, on first use.
"""

import logging
import os
import unittest
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from DiDASlicer.app import layout_node
from DiDASlicer.parameters import (ClassChoice, DeviceChoice, DisplayChoice, EstimatorChoice, FillChoice, GridPreset,
                                   RuntimeOption, ScopeChoice, ScoreChoice)
from DiDASlicer.widgets import (device_text, enable_grid_rows, enface_click_ras, enface_interactor, export_results,
                                fill_combos, show_failure)
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Minimum, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

#: Overlays larger than this (bytes) are confirmed first: "all classes" of a big volume can exhaust the memory.
LARGE_OVERLAYS = 2_000_000_000
#: Parameters whose widgets DiDAWidget fills and reads itself (their choices are the shown run's classes).
CODE_WIRED = ("compareClassA", "compareClassB")
#: Heidelberg formats that only DiDA reads (DiDALib.mrml.reader says so too): offered even before DiDALib can load.
OCT_ONLY_EXTENSIONS = (".vol", ".e2e")


#
# DiDA
#


class DiDA(ScriptedLoadableModule):
    """Module description (see ScriptedLoadableModule)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DiDA")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Analysis")]
        self.parent.dependencies = []
        self.parent.contributors = ["DiDA extension contributors"]
        from DiDASlicer.app import about_texts

        self.parent.helpText, self.parent.acknowledgementText = about_texts()
        slicer.app.connect("startupCompleted()", registerLayout)


def registerLayout():
    """The DiDA View in Slicer's layouts and the View toolbar's layout menu (DiDASlicer.app)."""
    from DiDASlicer.app import register_layout_and_menu

    register_layout_and_menu(os.path.join(os.path.dirname(__file__), "Resources/Icons/DiDA.png"))


#
# Reader plugin (found by its name, <moduleName>FileReader): OCT files through File > Add Data and drag-and-drop
#


class DiDAFileReader:
    def __init__(self, parent):
        self.parent = parent

    def description(self):
        return _("OCT B-scans (DiDA)")

    def fileType(self):
        return "DiDAOCTFile"

    def extensions(self):
        try:
            from DiDALib.io.registry import SUPPORTED_EXTENSIONS
        except ImportError:
            SUPPORTED_EXTENSIONS = OCT_ONLY_EXTENSIONS
        return [_("OCT B-scans") + " (" + " ".join("*" + ext for ext in SUPPORTED_EXTENSIONS) + ")"]

    def canLoadFileConfidence(self, filePath):
        """Heidelberg files and Heyex XML exports (by content: any other XML stays with the Texts reader) at 0.9,
        Slicer's own formats at 0.4 (DiDA is the alternative); see DiDALib.mrml.reader."""
        if not self.parent.supportedNameFilters(filePath):
            return 0.0
        try:
            from DiDALib.mrml.reader import file_confidence
        except ImportError:
            return 0.9 if filePath.lower().endswith(OCT_ONLY_EXTENSIONS) else 0.0
        return float(file_confidence(filePath))

    def load(self, properties):
        filePath = properties["fileName"]
        try:
            if not DiDALogic.ensureReading(filePath):  # never PyTorch: reading needs eyepy, pydicom and pillow
                raise RuntimeError(_("the Python packages that read it were not installed"))
            node = DiDALogic().loadOCT(filePath, properties.get("name"), show=properties.get("show", True))
        except Exception as exc:
            self.parent.userMessages().AddMessage(vtk.vtkCommand.ErrorEvent,
                                                  _("Could not read {path}: {error}").format(path=filePath, error=exc))
            return False
        self.parent.loadedNodes = [node.GetID()]
        return True


#
# DiDAParameterNode (its choices, with the labels the combo boxes show, are in DiDASlicer.parameters)
#


@parameterNodeWrapper
class DiDAParameterNode:
    """What the user chose; saved with the scene."""

    inputVolume: vtkMRMLScalarVolumeNode
    useDemoModel: bool = True
    modelFolder: Path
    device: DeviceChoice = DeviceChoice.auto
    gridPreset: GridPreset = GridPreset.paper
    customGrids: str = "7, 11, 15"
    customWeights: str = ""
    estimator: EstimatorChoice = EstimatorChoice.leave_one_out
    fill: FillChoice = FillChoice.background
    scoreMode: ScoreChoice = ScoreChoice.model
    runtime: RuntimeOption = RuntimeOption.auto
    classChoice: ClassChoice = ClassChoice.top3
    classNames: str = ""
    scope: ScopeChoice = ScopeChoice.all
    firstBScan: Annotated[int, Minimum(0)] = 0
    lastBScan: Annotated[int, Minimum(0)] = 0
    opacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.6
    displayMode: DisplayChoice = DisplayChoice.both
    squareVoxels: bool = True
    compareOn: bool = False
    compareClassA: str = ""  # the run's class names change: these two combo boxes are wired in code (CODE_WIRED)
    compareClassB: str = ""


#
# DiDAWidget
#


class DiDAWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Wires the user interface to DiDALogic; holds no DiDA logic itself."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._modelShown = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DiDA.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DiDALogic()
        self.ui.progressBar.hide()
        # DiDA runs in its worker process; this timer applies what it streams to the scene, on the main thread.
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._onTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        # Deferred: DiDA sets a new map's role attribute just after adding it to the scene.
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent,
                         lambda *_: qt.QTimer.singleShot(0, self._refreshInputFilter))
        if (layoutNode := layout_node()) is not None:  # None with --no-main-window (Slicer's generic tests)
            self.addObserver(layoutNode, vtk.vtkCommand.ModifiedEvent,
                             lambda *_: qt.QTimer.singleShot(0, self._onLayoutChanged))
        self.ui.loadOCTButton.connect("clicked(bool)", self.onLoadOCT)
        self.ui.explainBScanButton.connect("clicked(bool)", lambda: self._explain(current=True))
        self.ui.explainVolumeButton.connect("clicked(bool)", self.onExplainVolume)
        self.ui.showLayoutButton.connect("clicked(bool)", self.onShowLayout)
        self.ui.exportButton.connect("clicked(bool)", lambda: export_results(self.logic.controller,
                                                                            self._parameterNode.inputVolume))
        for box in (self.ui.compareClassAComboBox, self.ui.compareClassBComboBox):
            box.connect("activated(int)", self._onCompareClasses)
        self.ui.deviceLabel.text = self.logic.deviceText()
        self.initializeParameterNode()
        self._refreshInputFilter()

    def cleanup(self) -> None:
        self._timer.stop()
        if self.logic:
            self.logic.controller.shutdown()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterChanged)

    def onSceneStartClose(self, caller, event) -> None:
        self._timer.stop()
        self.logic.controller.forget()
        self._setRunning(False)
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            from DiDALib.mrml.overlays import input_candidates

            candidates = input_candidates(slicer.mrmlScene)
            if candidates:
                self._parameterNode.inputVolume = candidates[0]

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterChanged)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets are bound through their "SlicerParameterName" property in the .ui file.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterChanged)
            self._onParameterChanged()

    def _onParameterChanged(self, caller=None, event=None) -> None:
        from DiDALib.mrml.choices import describe_volume

        p = self._parameterNode
        if p is None:
            return
        volume = p.inputVolume
        running = self.logic.controller.running
        self.ui.volumeInfoLabel.text = describe_volume(volume)
        if volume:
            last = max(0, volume.GetImageData().GetDimensions()[2] - 1) if volume.GetImageData() else 0
            self.ui.firstBScanSpinBox.maximum = last
            self.ui.lastBScanSpinBox.maximum = last
        self.ui.modelFolderPathLineEdit.enabled = not p.useDemoModel
        enable_grid_rows(self.ui, p)
        self.ui.classNamesLineEdit.enabled = p.classChoice == ClassChoice.named
        self.ui.rangeWidget.enabled = p.scope == ScopeChoice.range
        self.ui.explainBScanButton.enabled = bool(volume) and not running
        self.ui.explainVolumeButton.enabled = bool(volume) or running
        self.ui.showLayoutButton.enabled = self.ui.exportButton.enabled = self.logic.latestRun(volume) is not None
        model = (p.useDemoModel, str(p.modelFolder))
        if model != self._modelShown:
            self._modelShown = model
            self.ui.modelInfoLabel.text = self.logic.describeModel(p)
        self.logic.controller.set_display(p.opacity, p.displayMode.value, p.squareVoxels)
        self._showCompare()

    def _onCompareClasses(self, index=None) -> None:
        self._parameterNode.compareClassA = self.ui.compareClassAComboBox.currentText
        self._parameterNode.compareClassB = self.ui.compareClassBComboBox.currentText

    def _showCompare(self) -> None:
        p, controller = self._parameterNode, self.logic.controller
        fill_combos((self.ui.compareClassAComboBox, self.ui.compareClassBComboBox), controller.class_names(),
                    (p.compareClassA, p.compareClassB))
        self.ui.compareStatusLabel.text = controller.compare(p.compareOn, p.compareClassA, p.compareClassB)

    def _refreshInputFilter(self) -> None:
        """DiDA's own maps are never offered as the volume to explain."""
        try:
            from DiDALib.mrml.overlays import dida_volume_ids
        except ImportError:
            return
        self.ui.inputVolumeSelector.sortFilterProxyModel().hiddenNodeIDs = dida_volume_ids(slicer.mrmlScene)

    def _onLayoutChanged(self) -> None:
        """Back in the DiDA View (from the layout menu): show the latest run there again; its en-face view (made with
        the layout) answers clicks."""
        interactor = enface_interactor()
        if interactor is not None and not self.hasObserver(interactor, vtk.vtkCommand.LeftButtonPressEvent,
                                                           self._onEnFaceClick):
            self.addObserver(interactor, vtk.vtkCommand.LeftButtonPressEvent, self._onEnFaceClick)
        if self.logic is not None and self._parameterNode is not None:
            self.logic.controller.reshow(self._parameterNode.inputVolume)

    # -- actions ---------------------------------------------------------------------------------------------------

    def onLoadOCT(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not load the OCT file."), waitCursor=True):
            from DiDALib.io.registry import file_dialog_filter

            path = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Load OCT file"), "",
                                                  file_dialog_filter())
            if not path or not DiDALogic.ensureReading(path):
                return
            self._parameterNode.inputVolume = self.logic.loadOCT(path)

    def onExplainVolume(self) -> None:
        if self.logic.controller.running:
            self.logic.controller.cancel()
            self.ui.statusLabel.text = _("Cancelling: the B-scan in progress is dropped, finished ones are kept...")
            self.ui.explainVolumeButton.enabled = False
            return
        self._explain(current=False)

    def _explain(self, current: bool) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("DiDA could not start."), waitCursor=True):
            if not DiDALogic.ensureExplaining():
                self.ui.statusLabel.text = _("DiDA needs its Python packages: nothing was installed.")
                return
            trust = self.logic.trust  # a package's own Python code runs only if the user agrees (it names the file)
            if (question := trust.question(folder := self.logic.modelRequest(p).path)) and not \
                    slicer.util.confirmYesNoDisplay(question):
                self.ui.statusLabel.text = trust.declined(folder)
                return
            trust.agree(folder)
            need = self.logic.overlayMemory(p)
            if need > LARGE_OVERLAYS and not slicer.util.confirmOkCancelDisplay(
                    _("The overlays of the chosen classes take {gb:.1f} GB of memory on this volume. Continue?")
                    .format(gb=need / 1e9)):
                return
            self.logic.startExplain(p, current=current)
            self._setRunning(True)
            self.ui.statusLabel.text = self.logic.controller.session.summary()
            self._timer.start()

    def _onTimer(self) -> None:
        controller = self.logic.controller
        session = controller.session
        try:
            # A share of each 100 ms tick: the rest of what arrived waits for the next one, so Slicer stays fluid.
            running = controller.poll(max_seconds=0.05)
        except Exception as exc:  # a defect: stop polling and say so rather than raise every 100 ms
            logging.exception("DiDA: applying the worker's results failed")
            running, session = False, None
            controller.cancel()
            slicer.util.errorDisplay(_("DiDA stopped: {error}").format(error=exc))
        if session is None:
            self._timer.stop()
            self._setRunning(False)
            return
        self.ui.progressBar.value = round(100 * session.fraction_done())
        self.ui.statusLabel.text = session.summary()
        self.ui.deviceLabel.text = self.logic.deviceText()
        run = controller.newly_shown()
        if run is not None:
            controller.show(run, controller.focus)
            self._showCompare()
        if not running:
            self._timer.stop()
            self._setRunning(False)
            if session.state == "failed":
                self._onFailed(session)

    def _onFailed(self, session) -> None:
        p = self._parameterNode
        if show_failure(session, p is not None and p.device != DeviceChoice.cpu):  # the user chose the CPU instead
            p.device = DeviceChoice.cpu
            self._explain(current=self.logic.controller.focus is not None)

    def _onEnFaceClick(self, interactor, event) -> None:
        """A left click in the en-face view: the B-scan views go to that B-scan, the crosshair to that A-scan."""
        self.logic.controller.jump_to(enface_click_ras(interactor))

    def onShowLayout(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not show the DiDA View."), waitCursor=True):
            self.logic.controller.show(self.logic.latestRun(self._parameterNode.inputVolume))
            self._showCompare()

    def _setRunning(self, running: bool) -> None:
        self.ui.explainVolumeButton.text = _("Cancel") if running else _("Explain volume")
        self.ui.explainVolumeButton.enabled = True
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        self.ui.explainBScanButton.enabled = not running and bool(volume)
        self.ui.progressBar.visible = running
        self.ui.showLayoutButton.enabled = running or self.logic.latestRun(volume) is not None
        self.ui.exportButton.enabled = self.logic.latestRun(volume) is not None

#
# DiDALogic
#


class DiDALogic(ScriptedLoadableModuleLogic):
    """DiDA for Slicer: turns parameter node choices into DiDALib calls. Scene work is done by DiDALib.mrml, the
    model runs in DiDA's worker process (started on the first run and kept warm for the next)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._controller = None  # DiDALib.mrml.controller.DiDAController, made on first use
        self._trust = None

    def getParameterNode(self):
        return DiDAParameterNode(super().getParameterNode())

    # -- dependencies: two sets, each installed after asking on first use (DiDASlicer.dependencies) ----------------

    @staticmethod
    def ensureReading(path=None) -> bool:
        """What reading OCT (``path``) needs, never PyTorch; False if the user declines."""
        from DiDASlicer.dependencies import ensure_reading

        return ensure_reading(path)

    @staticmethod
    def ensureExplaining() -> bool:
        """PyTorch (through the PyTorch extension) and the rest of what explaining needs; False if declined."""
        from DiDASlicer.dependencies import ensure_explaining

        return ensure_explaining()

    # -- choices -----------------------------------------------------------------------------------------------------

    def deviceText(self) -> str:
        return device_text(self._controller)

    @property
    def trust(self):
        """The code files the user agreed to run (DiDALib.mrml.trust), made on first use."""
        if self._trust is None:
            from DiDALib.mrml.trust import CodeTrust

            self._trust = CodeTrust()
        return self._trust

    def modelRequest(self, p):
        """The one place that decides which model package a run loads and whether the package's own Python code
        may run (only after the user agreed to that file: DiDAWidget._explain asks)."""
        from DiDALib.mrml.choices import model_folder

        return self.trust.request(model_folder(p.useDemoModel, p.modelFolder))

    def describeModel(self, p) -> str:
        try:
            from DiDALib.mrml.choices import describe_model, model_folder

            return describe_model(model_folder(p.useDemoModel, p.modelFolder))
        except ImportError:
            return _("The model is read once DiDA's Python packages are installed (on first use).")
        except Exception as exc:
            return _("Model problem: {error}").format(error=exc)

    def overlayMemory(self, p) -> int:
        from DiDALib.mrml.choices import class_rule, overlay_memory

        return overlay_memory(p.inputVolume, class_rule(p.classChoice.value, p.classNames), self.modelRequest(p).path)

    # -- running and showing (DiDALib.mrml.controller keeps the worker, the session and the views) --------------

    @property
    def controller(self):
        if self._controller is None:
            from DiDASlicer.app import render_slice_view, slice_view_renderer

            from DiDALib.mrml.controller import DiDAController
            from DiDALib.mrml.views import ViewLabels

            def display():
                p = self.getParameterNode()
                return p.opacity, p.displayMode.value, p.squareVoxels

            self._controller = DiDAController(layout_node, display, process_events=slicer.app.processEvents,
                                              labels=lambda: ViewLabels(slice_view_renderer, render_slice_view))
        return self._controller

    def startExplain(self, p, current: bool):
        """Start DiDA in the worker on the chosen B-scans (continuing the run of the same model and settings)."""
        from DiDALib.mrml.choices import run_choices

        return self.controller.start(p.inputVolume, self.modelRequest(p), *run_choices(p, current), current)

    def latestRun(self, volume):
        try:
            return self.controller.latest_run(volume)
        except ImportError:  # DiDA's packages are not installed yet: there cannot be a run
            return None

    def loadOCT(self, path, name=None, show: bool = True):
        """Read an OCT file or folder into a new volume node, shown as Add Data shows what it reads."""
        from DiDALib.mrml.volumes import load_oct_node

        return load_oct_node(slicer.mrmlScene, path, name, slicer.app.applicationLogic() if show else None)


#
# DiDATest
#


class DiDATest(ScriptedLoadableModuleTest):
    """Runs the module's self-test (DiDALib.mrml.selftest.scenarios, the same functions CI runs on slicer-core)
    inside Slicer: on a stored result always, and with runs in DiDA's worker process where torch is installed."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (self.test_DiDA_widget, self.test_DiDA_stored_result, self.test_DiDA_worker_runs):
            self.setUp()
            try:
                test()
            except unittest.SkipTest as reason:  # "Reload and Test" runs this method: say so and go on
                self.delayDisplay(f"Skipped {test.__name__}: {reason}")

    def test_DiDA_widget(self):
        """The module's widget loads, and every widget bound in the .ui is bound to a parameter."""
        slicer.util.selectModule("DiDA")
        widget = slicer.modules.dida.widgetRepresentation().self()
        self.assertIsNotNone(widget.ui.explainVolumeButton)
        for name in ("inputVolume", "useDemoModel", "device", "gridPreset", "opacity", "displayMode", "compareOn"):
            self.assertTrue(hasattr(widget.logic.getParameterNode(), name), name)
        self.assertEqual(widget.ui.firstBScanSpinBox.minimum, 0)

    def test_DiDA_stored_result(self):
        """A stored result of the test model in the scene: overlays, score table and plot, the DiDA View, Compare,
        the en-face view, Export, saving."""
        from DiDASlicer.app import SlicerEnvironment

        from DiDALib.mrml.selftest import scenarios

        scenarios.stored_result(SlicerEnvironment, log=self.delayDisplay)

    def test_DiDA_worker_runs(self):
        """Run DiDA for real in its worker process on a small volume with a tiny model: every scenario (skipped,
        saying why, where torch is not installed)."""
        from DiDASlicer.app import SlicerEnvironment

        from DiDALib.mrml.selftest import scenarios

        scenarios.worker_runs(SlicerEnvironment, log=self.delayDisplay)
