"""Model code is code: a TorchScript or torch.export package that calls more than tensor operators (writes or reads
a file, prints, a custom operator) runs only with --trust-code, checked before anything of it runs (a
``__setstate__`` runs while torch reads the file); real packages (the tests' own, timm networks scripted, traced
and exported) still load without it. The marker files here must never appear without consent."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Tuple

import pytest
import torch
from cli_helpers import CLASSES, FAST, make_torchscript_package, one_line, run, write_volume
from hostile_models import INPUT, edited_export, program_package

from DiDALib import cli
from DiDALib.models.package import UntrustedCodeError, code_to_trust, load_model_package
from DiDALib.mrml.trust import CodeTrust



def _scripted(folder: Path, module: torch.nn.Module) -> Path:
    folder.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated; users still bring it
        torch.jit.save(torch.jit.script(module), str(folder / "model.pt"))
    return program_package(folder, "torchscript", "model.pt")


class _Head(torch.nn.Module):
    def __init__(self, marker: str = ""):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, len(CLASSES))
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class _Saving(_Head):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.ops.aten.save(x, self.marker)
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class _SavingOnLoad(torch.nn.Module):
    def __init__(self, marker: str):
        super().__init__()
        self.w = torch.ones(len(CLASSES), 1)
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) @ self.w.t()

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, str, bool]:
        return (self.w, self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, str, bool]) -> None:
        torch.ops.aten.save(state[0], state[1])  # runs inside torch.jit.load
        self.w = state[0]
        self.marker = state[1]
        self.training = state[2]


class _Reading(_Head):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.from_file(self.marker, True, 16)  # shared=True creates the file: the marker of a read
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3))) + y.sum() * 0


class _Printing(_Head):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("a model that prints", x.shape)
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("build, operator", [(_Saving, "aten::save"), (_SavingOnLoad, "aten::save"),
                                             (_Reading, "aten::from_file")],
                         ids=["save-in-forward", "save-in-setstate", "from-file"])
def test_a_torchscript_program_that_touches_files_runs_only_with_trust_code(tmp_path, capsys, build, operator):
    marker = tmp_path / "marker.bin"
    package = _scripted(tmp_path / "pkg", build(str(marker)))
    marker.unlink(missing_ok=True)  # scripting __setstate__ models may run it once here, in the author's process
    volume = write_volume(tmp_path / "v.nrrd", n=1)
    code, _, err = run(capsys, "explain", volume, "--model", package, "--out", tmp_path / "out", *FAST)
    assert code == cli.EXIT_BAD_INPUT and one_line(err), err
    assert operator in err and "--trust-code" in err and "model.pt" in err, err
    assert not marker.exists(), "the TorchScript program ran without consent"
    assert not (tmp_path / "out").exists()
    assert code_to_trust(package) == package / "model.pt"
    assert not marker.exists()
    # With consent it runs: the marker shows the check above is what kept it from running.
    code, _, err = run(capsys, "explain", volume, "--model", package, "--out", tmp_path / "out", *FAST, "--trust-code")
    assert code == 0, err
    assert marker.exists()


def test_a_printing_or_custom_torchscript_program_needs_consent(tmp_path):
    from DiDALib.models.graph_check import operator_refusal

    with pytest.raises(UntrustedCodeError, match=r"prim::Print \(it prints\).*--trust-code"):
        load_model_package(_scripted(tmp_path / "print", _Printing()))
    assert operator_refusal("dida_test::double") == "not a PyTorch tensor operator"
    assert operator_refusal("aten::conv2d") is None and operator_refusal("quantized::conv2d") is None


def test_the_slicer_module_asks_before_running_such_a_program(tmp_path):
    marker = tmp_path / "marker.bin"
    package = _scripted(tmp_path / "pkg", _Saving(str(marker)))
    question = CodeTrust().question(package)
    assert question is not None and "aten::save" in question and str(package / "model.pt") in question
    assert question.endswith("Run it?") and not marker.exists()


def test_an_exported_program_that_touches_files_runs_only_with_trust_code(tmp_path, capsys):
    marker = tmp_path / "marker.bin"
    folder = tmp_path / "pkg"
    folder.mkdir()
    edited_export(folder / "model.pt2", marker)
    package = program_package(folder, "torch-export", "model.pt2")
    volume = write_volume(tmp_path / "v.nrrd", n=1)
    code, _, err = run(capsys, "explain", volume, "--model", package, "--out", tmp_path / "out", *FAST)
    assert code == cli.EXIT_BAD_INPUT and one_line(err), err
    assert "aten::from_file" in err and "--trust-code" in err, err
    assert not marker.exists(), "the exported program ran without consent"
    assert CodeTrust().question(package) is not None
    code, _, err = run(capsys, "explain", volume, "--model", package, "--out", tmp_path / "out", *FAST, "--trust-code")
    assert code == 0, err
    assert marker.exists()


@pytest.mark.parametrize("how", ["script", "trace", "export"])
def test_real_networks_need_no_consent(tmp_path, how):
    """timm networks scripted, traced and exported, and the tests' own TorchScript package, load without it."""
    timm = pytest.importorskip("timm")
    net = timm.create_model("test_efficientnet", num_classes=len(CLASSES), in_chans=1).eval()
    folder = tmp_path / how
    x = torch.zeros(2, 1, *INPUT)
    if how == "export":
        folder.mkdir()
        program = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
        torch.export.save(program, str(folder / "model.pt2"))
        program_package(folder, "torch-export", "model.pt2")
    else:
        folder.mkdir()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(net) if how == "script" else torch.jit.trace(net, x)
            torch.jit.save(scripted, str(folder / "model.pt"))
        program_package(folder, "torchscript", "model.pt")
    assert code_to_trust(folder) is None and CodeTrust().question(folder) is None
    pkg = load_model_package(folder)
    with torch.inference_mode():
        torch.testing.assert_close(pkg.model(x), net(x), rtol=1e-4, atol=1e-5)
    assert code_to_trust(make_torchscript_package(tmp_path / "own")) is None
    load_model_package(tmp_path / "own")
