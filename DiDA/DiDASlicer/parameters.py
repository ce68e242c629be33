"""The choices DiDA's parameter node holds (``DiDAParameterNode`` in ``DiDA.py``), each with the label its combo
box shows."""

import enum

from slicer.i18n import tr as _


class DeviceChoice(enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"

    def label(self):
        return {"auto": _("Automatic"), "cpu": _("CPU"), "cuda": _("CUDA GPU")}[self.value]


class RuntimeOption(enum.Enum):
    auto = "auto"
    torch = "torch"
    onnxruntime = "onnxruntime"
    openvino = "openvino"
    compile = "compile"

    def label(self):
        return {"auto": _("Automatic (fastest exact)"), "torch": _("PyTorch"), "onnxruntime": _("onnxruntime"),
                "openvino": _("OpenVINO"), "compile": _("torch.compile")}[self.value]


class GridPreset(enum.Enum):
    paper = "paper"
    evidence = "evidence"
    custom = "custom"

    def label(self):
        return {"paper": _("Paper: 7, 9, ..., 21"), "evidence": _("Evidence: 7, 11, 15 at half-cell offsets"),
                "custom": _("Custom")}[self.value]


class EstimatorChoice(enum.Enum):
    leave_one_out = "leave-one-out"
    shapley = "shapley"

    def label(self):
        return {"leave-one-out": _("Leave-one-out d (paper)"),
                "shapley": _("Shapley values (5 x 5 and 9 x 9 grids, same budget)")}[self.value]


class FillChoice(enum.Enum):
    background = "background"
    black = "black"
    mean = "mean"
    blur = "blur"

    def label(self):
        return {"background": _("Retina background (default)"), "black": _("Black (paper)"), "mean": _("Image mean"),
                "blur": _("Blurred image")}[self.value]


class ScoreChoice(enum.Enum):
    model = "model"
    probabilities = "probabilities"
    logits = "logits"
    log_odds = "log-odds"
    auto = "auto"

    def label(self):
        return {"model": _("As the model says"), "probabilities": _("Probabilities"), "logits": _("Logits"),
                "log-odds": _("Log-odds"), "auto": _("Automatic")}[self.value]


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
