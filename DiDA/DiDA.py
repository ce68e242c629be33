"""DiDA: Differential Image Diagnostic Analysis of OCT B-scan classifiers, in 3D Slicer.

The module only wires Slicer's user interface to ``DiDALib``; everything that touches the scene lives in
``DiDALib.mrml`` (plain MRML code, also tested on the ``slicer-core`` wheel). ``DiDALib`` needs PyTorch and a
few packages that Slicer does not ship: they are installed, after asking, on first use.
"""

import enum
import importlib.util
import logging
import os
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

#: PyTorch comes from the PyTorch extension (a build matching the GPU); the rest from Resources/requirements.txt.
TORCH_REQUIREMENT = ">=2.4"
#: Overlays larger than this (bytes) are confirmed first: "all classes" of a big volume can exhaust the memory.
LARGE_OVERLAYS = 2_000_000_000
#: Heidelberg formats that only DiDA reads; the reader offers itself for these even before DiDALib can load.
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
        self.parent.helpText = _("""
Explains an OCT B-scan classifier with <b>DiDA</b> (Differential Image Diagnostic Analysis): every cell of several
grids is masked in turn and the change of each class's score is shown, <span style="color:#c00">red</span> where
the region speaks <b>for</b> the class and <span style="color:#00c">blue</span> where it speaks <b>against</b> it.
The DiDA View shows the B-scan and the three top classes side by side, scrolling together.
The bundled demo model is trained on synthetic phantoms and is not for clinical use.
""")
        self.parent.acknowledgementText = _("""
DiDA was proposed by Ayatsuka et al. ("DiDA: analysing and visualising the decision points of machine-learning image
diagnosis by input differences"). This extension follows the Slicer scripted-module template.
""")
        slicer.app.connect("startupCompleted()", registerLayout)


def registerLayout():
    """Add the DiDA View to Slicer's layouts and to the layout menu of the View toolbar."""
    try:
        from DiDALib.mrml.layout import LAYOUT_ID, register_layout
    except ImportError as exc:  # DiDALib needs packages that are installed on first use
        logging.info(f"DiDA View is registered once DiDA's Python packages are installed ({exc})")
        return
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None:
        return
    register_layout(layoutManager.layoutLogic().GetLayoutNode())
    try:
        viewToolBar = slicer.util.mainWindow().findChild("QToolBar", "ViewToolBar")
        layoutMenu = viewToolBar.widgetForAction(viewToolBar.actions()[0]).menu()
        if not any(action.data() == LAYOUT_ID for action in layoutMenu.actions()):
            action = layoutMenu.addAction(_("DiDA View"))
            action.setData(LAYOUT_ID)
            action.setIcon(qt.QIcon(os.path.join(os.path.dirname(__file__), "Resources/Icons/DiDA.png")))
            action.setToolTip(_("B-scan and the top three classes' DiDA overlays side by side"))
    except (AttributeError, IndexError):
        logging.info("DiDA View could not be added to the layout menu; it is shown by the DiDA module")


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
        if not self.parent.supportedNameFilters(filePath):
            return 0.0
        name = filePath.lower()
        if name.endswith(OCT_ONLY_EXTENSIONS):
            return 0.9
        try:
            from DiDALib.io.registry import OCTReadError, detect_format
            fmt = detect_format(filePath)
        except (ImportError, OCTReadError, OSError, ValueError):
            return 0.0
        if fmt in ("heyex-xml", "heyex-vol", "heyex-e2e") or (fmt == "dicom" and _isOphthalmicTomography(filePath)):
            return 0.9
        # Images, NRRD, NIfTI, DICOM...: Slicer's own readers stay the default; DiDA's is offered as an alternative.
        return 0.4

    def load(self, properties):
        filePath = properties["fileName"]
        try:
            if not DiDALogic.ensureDependencies(ask=True):
                raise RuntimeError(_("DiDA's Python packages are needed to read OCT files and were not installed."))
            node = DiDALogic().loadOCT(filePath, properties.get("name"))
        except Exception as exc:
            self.parent.userMessages().AddMessage(vtk.vtkCommand.ErrorEvent,
                                                  _("Could not read {path}: {error}").format(path=filePath, error=exc))
            return False
        self.parent.loadedNodes = [node.GetID()]
        return True


def _isOphthalmicTomography(filePath):
    try:
        import pydicom

        from DiDALib.io.dicom import DICOM_OPT_SOP_CLASS

        return str(pydicom.dcmread(filePath, stop_before_pixels=True).get("SOPClassUID", "")) == DICOM_OPT_SOP_CLASS
    except Exception:
        return False


#
# DiDAParameterNode
#


class DeviceChoice(enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"

    def label(self):
        return {"auto": _("Automatic"), "cpu": _("CPU"), "cuda": _("CUDA GPU")}[self.value]


class GridPreset(enum.Enum):
    paper = "paper"
    custom = "custom"

    def label(self):
        return {"paper": _("Paper: 7, 9, ..., 21"), "custom": _("Custom")}[self.value]


class FillChoice(enum.Enum):
    black = "black"
    mean = "mean"
    blur = "blur"

    def label(self):
        return {"black": _("Black (paper)"), "mean": _("Image mean"), "blur": _("Blurred image")}[self.value]


class ScoreChoice(enum.Enum):
    model = "model"
    probabilities = "probabilities"
    logits = "logits"

    def label(self):
        return {"model": _("As the model says"), "probabilities": _("Probabilities"), "logits": _("Logits")}[self.value]


class ClassChoice(enum.Enum):
    top3 = "top3"
    all = "all"
    named = "named"

    def label(self):
        return {"top3": _("Top 3"), "all": _("All classes"), "named": _("By name")}[self.value]


class ScopeChoice(enum.Enum):
    all = "all"
    range = "range"
    current = "current"

    def label(self):
        return {"all": _("All B-scans"), "range": _("B-scan range"), "current": _("B-scan on screen")}[self.value]


class DisplayChoice(enum.Enum):
    both = "both"
    positive = "positive"
    negative = "negative"

    def label(self):
        return {"both": _("For and against"), "positive": _("For only (red)"),
                "negative": _("Against only (blue)")}[self.value]


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
    fill: FillChoice = FillChoice.black
    scoreMode: ScoreChoice = ScoreChoice.model
    classChoice: ClassChoice = ClassChoice.top3
    classNames: str = ""
    scope: ScopeChoice = ScopeChoice.all
    firstBScan: int = 0
    lastBScan: int = 0
    opacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.6
    displayMode: DisplayChoice = DisplayChoice.both
    squareVoxels: bool = True


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
        self._textActors = {}
        self._modelShown = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DiDA.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DiDALogic()
        self.logic.onViewTexts = self._showViewTexts
        self.ui.progressBar.hide()
        # Results arrive from a background thread; this timer applies them to the scene on the main thread.
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._onTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.loadOCTButton.connect("clicked(bool)", self.onLoadOCT)
        self.ui.explainBScanButton.connect("clicked(bool)", self.onExplainBScan)
        self.ui.explainVolumeButton.connect("clicked(bool)", self.onExplainVolume)
        self.ui.showLayoutButton.connect("clicked(bool)", self.onShowLayout)
        self.ui.deviceLabel.text = DiDALogic.detectedDevice()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._timer.stop()
        if self.logic:
            self.logic.cancel()
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
        self.logic.forget()
        self._setRunning(False)
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            # The first grey volume that is not one of DiDA's own maps.
            for volume in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
                if not volume.IsA("vtkMRMLLabelMapVolumeNode") and not volume.GetAttribute("DiDA.Role"):
                    self._parameterNode.inputVolume = volume
                    break

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
        p = self._parameterNode
        if p is None:
            return
        volume = p.inputVolume
        running = self.logic.running
        self.ui.volumeInfoLabel.text = DiDALogic.describeVolume(volume)
        if volume:
            last = max(0, volume.GetImageData().GetDimensions()[2] - 1) if volume.GetImageData() else 0
            self.ui.firstBScanSpinBox.maximum = last
            self.ui.lastBScanSpinBox.maximum = last
        self.ui.modelFolderPathLineEdit.enabled = not p.useDemoModel
        self.ui.customGridsLineEdit.enabled = p.gridPreset == GridPreset.custom
        self.ui.customWeightsLineEdit.enabled = p.gridPreset == GridPreset.custom
        self.ui.classNamesLineEdit.enabled = p.classChoice == ClassChoice.named
        self.ui.rangeWidget.enabled = p.scope == ScopeChoice.range
        self.ui.explainBScanButton.enabled = bool(volume) and not running
        self.ui.explainVolumeButton.enabled = bool(volume) or running
        self.ui.showLayoutButton.enabled = self.logic.latestRun(volume) is not None
        model = (p.useDemoModel, str(p.modelFolder))
        if model != self._modelShown:
            self._modelShown = model
            self.ui.modelInfoLabel.text = self.logic.describeModel(p)
        self.logic.setDisplay(p.opacity, p.displayMode.value, p.squareVoxels)

    # -- actions ---------------------------------------------------------------------------------------------------

    def onLoadOCT(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not load the OCT file."), waitCursor=True):
            if not DiDALogic.ensureDependencies(ask=True):
                return
            from DiDALib.io.registry import file_dialog_filter

            path = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), _("Load OCT file"), "",
                                                  file_dialog_filter())
            if not path:
                return
            node = self.logic.loadOCT(path)
            self._parameterNode.inputVolume = node
            slicer.util.setSliceViewerLayers(background=node, fit=True)

    def onExplainBScan(self) -> None:
        self._explain(current=True)

    def onExplainVolume(self) -> None:
        if self.logic.running:
            self.logic.cancel()
            self.ui.statusLabel.text = _("Cancelling: the B-scan in progress is dropped, finished ones are kept...")
            self.ui.explainVolumeButton.enabled = False
            return
        self._explain(current=False)

    def _explain(self, current: bool) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("DiDA could not start."), waitCursor=True):
            if not DiDALogic.ensureDependencies(ask=True):
                self.ui.statusLabel.text = _("DiDA needs its Python packages: nothing was installed.")
                return
            need = self.logic.overlayMemory(p)
            if need > LARGE_OVERLAYS and not slicer.util.confirmOkCancelDisplay(
                    _("The overlays of the chosen classes take {gb:.1f} GB of memory on this volume. Continue?")
                    .format(gb=need / 1e9)):
                return
            try:
                self.logic.startExplain(p, current=current)
            except DeviceUnavailableError as exc:
                if not slicer.util.confirmYesNoDisplay(_("{error}\n\nRun on the CPU instead?").format(error=exc)):
                    return
                p.device = DeviceChoice.cpu
                self.logic.startExplain(p, current=current)
            self._setRunning(True)
            self._timer.start()

    def _onTimer(self) -> None:
        running = self.logic.poll()
        session = self.logic.session
        if session is None:
            return
        self.ui.progressBar.value = round(100 * session.fraction_done())
        self.ui.statusLabel.text = session.summary()
        if session.run is not None:
            self.logic.showResults(session.run, self.logic.focusBScan)
        if not running:
            self._timer.stop()
            self._setRunning(False)
            if session.state == "failed":
                slicer.util.errorDisplay(
                    _("DiDA stopped with an error; the B-scans finished before it are kept.\n\n{error}").format(
                        error=session.error))

    def onShowLayout(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not show the DiDA View."), waitCursor=True):
            self.logic.showResults(self.logic.latestRun(self._parameterNode.inputVolume))

    def _setRunning(self, running: bool) -> None:
        self.ui.explainVolumeButton.text = _("Cancel") if running else _("Explain volume")
        self.ui.explainVolumeButton.enabled = True
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        self.ui.explainBScanButton.enabled = not running and bool(volume)
        self.ui.progressBar.visible = running
        self.ui.showLayoutButton.enabled = running or self.logic.latestRun(volume) is not None

    def _showViewTexts(self, texts) -> None:
        """Each DiDA view's label (class and score) in its top-left corner, drawn by a text actor of our own (the
        Data Probe rewrites the corner annotations)."""
        layoutManager = slicer.app.layoutManager()
        for name, text in texts.items():
            sliceWidget = layoutManager.sliceWidget(name)
            if sliceWidget is None:
                continue
            view = sliceWidget.sliceView()
            actor = self._textActors.get(name)
            if actor is None:
                actor = vtk.vtkTextActor()
                actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
                actor.GetPositionCoordinate().SetValue(0.02, 0.90)
                prop = actor.GetTextProperty()
                prop.SetFontSize(15)
                prop.SetColor(1.0, 1.0, 0.75)
                prop.ShadowOn()
                view.renderWindow().GetRenderers().GetFirstRenderer().AddActor2D(actor)
                self._textActors[name] = actor
            actor.SetInput(text)
            view.scheduleRender()


class DeviceUnavailableError(ValueError):
    """A device was asked for that this computer does not have."""


#
# DiDALogic
#


class DiDALogic(ScriptedLoadableModuleLogic):
    """DiDA for Slicer: turns parameter node choices into DiDALib calls. Scene work is done by DiDALib.mrml."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.session = None  # DiDALib.mrml_session.ExplainSession
        self.views = None  # DiDALib.mrml_layout.DiDAViews
        self.onViewTexts = None
        self.focusBScan = None  # the B-scan to show when results first appear ("Explain this B-scan")
        self._packages = {}

    def getParameterNode(self):
        return DiDAParameterNode(super().getParameterNode())

    # -- dependencies ----------------------------------------------------------------------------------------------

    @staticmethod
    def requirementsPath() -> str:
        return os.path.join(os.path.dirname(__file__), "Resources", "requirements.txt")

    @staticmethod
    def missingRequirements() -> list:
        """Requirement lines of Resources/requirements.txt that are not satisfied."""
        import importlib.metadata

        try:
            from packaging.requirements import Requirement
        except ImportError:
            Requirement = None
        missing = []
        with open(DiDALogic.requirementsPath(), encoding="utf-8") as f:
            lines = [line.split("#")[0].strip() for line in f]
        for line in filter(None, lines):
            name = line.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip()
            try:
                version = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                missing.append(line)
                continue
            if Requirement is not None and not Requirement(line).specifier.contains(version, prereleases=True):
                missing.append(line)
        return missing

    @staticmethod
    def ensureDependencies(ask: bool = True) -> bool:
        """Install what DiDA needs, after asking: PyTorch through the PyTorch extension first (so that nothing
        pulls a generic torch from PyPI), then Resources/requirements.txt. False if the user declines."""
        torchMissing = importlib.util.find_spec("torch") is None
        missing = DiDALogic.missingRequirements()
        if not torchMissing and not missing:
            return True
        if slicer.app.testingEnabled():
            logging.info(f"Testing mode: not installing {'torch, ' if torchMissing else ''}{', '.join(missing)}")
            return False
        if torchMissing:
            try:
                import PyTorchUtils
            except ImportError:
                raise RuntimeError(_("DiDA needs the PyTorch extension: install it from the Extensions Manager, "
                                     "restart Slicer, and try again.")) from None
        packages = ([_("PyTorch (through the PyTorch extension)")] if torchMissing else []) + missing
        if ask and not slicer.util.confirmOkCancelDisplay(
                _("DiDA needs these Python packages, which will be downloaded and installed now (this can take "
                  "several minutes):\n\n{packages}").format(packages="\n".join(f"- {p}" for p in packages)),
                _("DiDA - Install Python packages")):
            return False
        if torchMissing:
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False,
                                                                  torchVersionRequirement=TORCH_REQUIREMENT)
            if torch is None:
                raise RuntimeError(_("PyTorch could not be installed: see the Python console for the reason."))
        if missing:
            if hasattr(slicer, "packaging"):  # Slicer 5.11 and later
                slicer.packaging.pip_ensure(slicer.packaging.load_requirements(DiDALogic.requirementsPath()),
                                            prompt_install=False, requester="DiDA")
            else:
                slicer.util.pip_install(missing)
        return True

    # -- choices -----------------------------------------------------------------------------------------------------

    @staticmethod
    def detectedDevice() -> str:
        if importlib.util.find_spec("torch") is None:
            return _("Detected: not known yet (PyTorch is installed on first use)")
        import torch

        if torch.cuda.is_available():
            return _("Detected: CUDA GPU {name}").format(name=torch.cuda.get_device_name(0))
        return _("Detected: CPU only (no CUDA GPU): a B-scan takes tens of seconds with the paper's grids")

    @staticmethod
    def describeVolume(volume) -> str:
        if not volume or volume.GetImageData() is None:
            return ""
        width, depth, count = volume.GetImageData().GetDimensions()
        spacing = volume.GetSpacing()
        return _("{n} B-scan(s) of {d} x {w} pixels, spacing {s0:.4g} x {s1:.4g} x {s2:.4g} mm").format(
            n=count, d=depth, w=width, s0=spacing[0], s1=spacing[1], s2=spacing[2])

    def modelFolder(self, p) -> Path:
        if p.useDemoModel:
            from DiDALib.models.package import demo_model_path

            return demo_model_path()
        folder = str(p.modelFolder or "")
        if folder in ("", "."):
            raise ValueError(_("Choose a model package folder, or use the bundled demo model."))
        return Path(folder)

    def describeModel(self, p) -> str:
        try:
            from DiDALib.models.spec import read_spec

            spec = read_spec(self.modelFolder(p))
        except ImportError:
            return _("The model is read once DiDA's Python packages are installed (on first use).")
        except Exception as exc:
            return _("Model problem: {error}").format(error=exc)
        text = _("{name}: {n} classes ({classes})").format(name=spec.name, n=len(spec.classes),
                                                           classes=", ".join(spec.classes))
        return text + (_(" - a demonstration model, not for clinical use") if spec.demo else "")

    def loadPackage(self, folder: Path):
        """The model package, loaded once per folder (a bad package raises ModelPackageError with the reason)."""
        from DiDALib.models.package import load_model_package

        key = str(Path(folder).resolve())
        stamp = os.path.getmtime(Path(folder) / "model.json") if (Path(folder) / "model.json").exists() else None
        cached = self._packages.get(key)
        if cached is None or cached[0] != stamp:
            self._packages[key] = (stamp, load_model_package(folder))
        return self._packages[key][1]

    def explainSettings(self, p):
        from DiDALib.engine.grid import DEFAULT_GRIDS
        from DiDALib.pipeline import ExplainSettings

        grids, weights = DEFAULT_GRIDS, None
        if p.gridPreset == GridPreset.custom:
            sizes = _numbers(p.customGrids, _("grid sizes"))
            if not sizes or any(v != int(v) for v in sizes):
                raise ValueError(_("Grid sizes must be whole numbers of cells per side, e.g. 7, 11, 15."))
            grids = tuple(int(v) for v in sizes)
            weights = tuple(_numbers(p.customWeights, _("weights"))) or None
        if p.device == DeviceChoice.cuda:
            import torch

            if not torch.cuda.is_available():
                raise DeviceUnavailableError(
                    _("A CUDA GPU was chosen, but PyTorch finds none on this computer (PyTorch {version}, CUDA build "
                      "{cuda}).").format(version=torch.__version__, cuda=torch.version.cuda))
        return ExplainSettings(grids=grids, weights=weights, fill=p.fill.value,
                               score=None if p.scoreMode == ScoreChoice.model else p.scoreMode.value,
                               classes=self.classRule(p), device=p.device.value)

    def overlayMemory(self, p) -> int:
        """Bytes the overlays of the chosen classes take on the input volume (labels and float maps)."""
        from DiDALib.models.spec import read_spec
        from DiDALib.mrml.overlays import overlay_bytes
        from DiDALib.pipeline import parse_top

        if not p.inputVolume or p.inputVolume.GetImageData() is None:
            return 0
        rule = self.classRule(p)
        total = len(read_spec(self.modelFolder(p)).classes)
        count = len(rule) if not isinstance(rule, str) else (parse_top(rule) or total)
        return overlay_bytes(p.inputVolume, min(count, total))

    @staticmethod
    def classRule(p):
        if p.classChoice == ClassChoice.named:
            names = tuple(n.strip() for n in p.classNames.split(",") if n.strip())
            if not names:
                raise ValueError(_("Name at least one class, or choose Top 3."))
            return names
        return p.classChoice.value

    def currentBScan(self, volume) -> int:
        """The B-scan on screen: in the DiDA View's B-scan view when that layout is shown, else in Red."""
        from DiDALib.mrml.layout import BSCAN_VIEW, LAYOUT_ID, view_node
        from DiDALib.mrml.volumes import bscan_count, bscan_shown

        scene = volume.GetScene()
        layoutNode = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
        shown = layoutNode is not None and layoutNode.GetViewArrangement() == LAYOUT_ID
        sliceNode = view_node(scene, BSCAN_VIEW if shown else "Red")
        k = bscan_shown(volume, sliceNode)
        return k if k is not None else bscan_count(volume) // 2

    def bscanIndices(self, p, current: bool) -> list:
        volume = p.inputVolume
        from DiDALib.mrml.volumes import bscan_count

        count = bscan_count(volume)
        if current or p.scope == ScopeChoice.current:
            return [self.currentBScan(volume)]
        if p.scope == ScopeChoice.range:
            first, last = int(p.firstBScan), int(p.lastBScan)
            if not 0 <= first <= last < count:
                raise ValueError(_("B-scan range {first} to {last} is not within 0 to {end}").format(
                    first=first, last=last, end=count - 1))
            return list(range(first, last + 1))
        return list(range(count))

    # -- running -----------------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.session is not None and self.session.running

    def startExplain(self, p, current: bool):
        """Start DiDA in the background on the chosen B-scans; a run with the same model and settings on the same
        volume is continued (its finished B-scans are kept), otherwise a new run is made."""
        from DiDALib.mrml.session import ExplainSession
        from DiDALib.pipeline import VolumeExplainer

        if self.running:
            raise RuntimeError(_("DiDA is already running: cancel it first."))
        volume = p.inputVolume
        if not volume:
            raise ValueError(_("Choose the OCT volume to explain."))
        settings = self.explainSettings(p)
        package = self.loadPackage(self.modelFolder(p))
        indices = self.bscanIndices(p, current)
        s = self.session
        reuse = (s is not None and s.volume is volume and s.explainer.package is package
                 and s.explainer.settings == settings and s.run is not None
                 and s.run.table.GetScene() is volume.GetScene())
        if not reuse:
            self.session = ExplainSession(volume.GetScene(), volume, VolumeExplainer(package, settings),
                                          classes=settings.classes)
        self.session.start(indices, preview=current)
        self.focusBScan = indices[0] if current else None
        return self.session

    def poll(self) -> bool:
        return self.session.poll() if self.session is not None else False

    def cancel(self) -> None:
        if self.session is not None:
            self.session.cancel()

    def forget(self) -> None:
        """Drop the session and the views (the scene is closing): a running job is cancelled and its results,
        which have no scene to go to any more, are discarded."""
        self.cancel()
        self.session = None
        if self.views is not None:
            self.views.detach()
        self.views = None

    def latestRun(self, volume):
        if not volume:
            return None
        if self.session is not None and self.session.volume is volume and self.session.run is not None:
            return self.session.run
        try:
            from DiDALib.mrml.results import find_runs
        except ImportError:  # DiDA's packages are not installed yet: there cannot be a run
            return None
        runs = find_runs(volume.GetScene(), volume)
        return runs[-1] if runs else None

    # -- display -------------------------------------------------------------------------------------------------------

    def showResults(self, run, bscan=None) -> None:
        """Show a run in the DiDA View (switching to that layout), on B-scan ``bscan`` if given."""
        if run is None:
            raise ValueError(_("There is no DiDA result for this volume yet: explain a B-scan first."))
        from DiDALib.mrml.layout import DiDAViews, show_layout

        if self.views is not None and self.views.attached and self.views.run is run:
            return
        scene = run.volume.GetScene()
        layoutNode = slicer.app.layoutManager().layoutLogic().GetLayoutNode()
        show_layout(layoutNode)
        slicer.app.processEvents()  # the layout manager makes the views (and their slice logics)
        if self.views is None or not self.views.attached:
            self.views = DiDAViews(scene, on_texts=self.onViewTexts)
        p = self.getParameterNode()
        self.views.opacity = p.opacity
        self.views.square_voxels = p.squareVoxels
        self.views.show(run, bscan=bscan)
        self.views.set_display_mode(p.displayMode.value)

    def setDisplay(self, opacity: float, mode: str, squareVoxels: bool) -> None:
        """Opacity, evidence shown and B-scan proportions, in every DiDA view at once."""
        if self.views is not None and self.views.attached:
            self.views.set_opacity(opacity)
            self.views.set_display_mode(mode)
            self.views.set_square_voxels(squareVoxels)

    def loadOCT(self, path, name=None):
        """Read an OCT file or folder into a new volume node (B-scans as axial slices)."""
        from DiDALib.io.registry import load_oct
        from DiDALib.mrml.volumes import add_oct_volume

        return add_oct_volume(slicer.mrmlScene, load_oct(path), name)


def _numbers(text: str, what: str) -> list:
    try:
        return [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(_("The {what} must be numbers separated by commas: {text}").format(what=what,
                                                                                             text=repr(text))) from None


#
# DiDATest
#


class SlicerEnvironment:
    """The environment of DiDALib.mrml.scenarios inside the Slicer application (the CI tests use the
    slicer-core one): Slicer's own scene, application logic, layout manager and slice views."""

    def __init__(self):
        slicer.mrmlScene.Clear(0)
        self.scene = slicer.mrmlScene

    @property
    def layout_node(self):
        return slicer.app.layoutManager().layoutLogic().GetLayoutNode()

    def show_dida_layout(self):
        from DiDALib.mrml.layout import show_layout

        show_layout(self.layout_node)
        slicer.app.processEvents()

    def slice_logic(self, name):
        return slicer.app.layoutManager().sliceWidget(name).sliceLogic()

    def save_and_reload(self, folder):
        path = os.path.join(str(folder), "DiDA-test-scene.mrb")  # a bundle: scene and data (.mrml alone has no data)
        os.makedirs(str(folder), exist_ok=True)
        if not slicer.util.saveScene(path):
            raise OSError(f"could not save the scene to {path}")
        slicer.mrmlScene.Clear(0)
        slicer.util.loadScene(path)
        return self


class DiDATest(ScriptedLoadableModuleTest):
    """Runs DiDALib.mrml.scenarios (the same checks as the CI tests on slicer-core) inside Slicer."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_DiDA_widget()
        self.test_DiDA_scenarios()

    def test_DiDA_widget(self):
        """The module's widget loads, and every widget bound in the .ui is bound to a parameter."""
        self.delayDisplay("Opening the DiDA module")
        slicer.util.selectModule("DiDA")
        widget = slicer.modules.dida.widgetRepresentation().self()
        self.assertIsNotNone(widget.ui.explainVolumeButton)
        node = widget.logic.getParameterNode()
        for name in ("inputVolume", "useDemoModel", "device", "gridPreset", "opacity", "displayMode", "scope"):
            self.assertTrue(hasattr(node, name), name)
        self.delayDisplay("Widget test passed")

    def test_DiDA_scenarios(self):
        """Run DiDA for real on a small volume with a tiny model; check overlays, layout, scores, saving."""
        missing = [m for m in ("torch", "timm", "safetensors") if importlib.util.find_spec(m) is None]
        if missing:
            # pip_ensure does not install in testing mode: the scenarios need DiDA's packages already present.
            self.delayDisplay(f"Skipping the DiDA scenarios: {', '.join(missing)} not installed")
            return
        import tempfile

        from DiDALib.mrml import scenarios as mrml_scenarios

        with tempfile.TemporaryDirectory() as tmp:
            package = mrml_scenarios.make_test_package(os.path.join(tmp, "model"))
            mrml_scenarios.run_all(SlicerEnvironment, package, os.path.join(tmp, "scene"), log=self.delayDisplay)
        self.delayDisplay("DiDA scenarios passed")
