"""The hostile pass's cases of model code and model packages: TorchScript and torch.export programs that write,
read or print, builder arguments that load files, trusted code that ends the process, lying model.json fields,
weights and model.json that are no regular file."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import warnings
from pathlib import Path

from hostile_sandbox import Case, Sandbox, _changed, _edit_json

from cli_helpers import CLASSES, FAST  # noqa: E402 (on the path hostile_sandbox set)
from hostile_models import edited_export, program_package  # noqa: E402


def _scripted(sb: Sandbox, source: str, marker: Path) -> Path:
    """A TorchScript package of a module defined by ``source`` (``Net``; ``MARKER`` is the marker path)."""
    import torch

    import importlib.util

    folder = sb.path("ts")
    folder.mkdir()
    module_file = sb.path("module.py")  # TorchScript compiles from source it finds through the module's file
    module_file.write_text(f"import torch\nMARKER = {str(marker)!r}\n{source}")
    spec = importlib.util.spec_from_file_location(f"hostile_{module_file.stem.replace('-', '_')}", module_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(module.Net()), str(folder / "model.pt"))
    marker.unlink(missing_ok=True)  # scripting a __setstate__ may run it once here
    (folder / "model.json").write_text(json.dumps({
        "architecture": "torchscript", "weights": "model.pt", "classes": list(CLASSES), "input_size": [32, 32],
        "channels": 1, "normalisation": "none"}))
    return folder


HEAD = '''
from typing import Tuple
class Base(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(1, 4)
        self.marker = MARKER
'''
TS_MODULES = {
    "save-in-forward": HEAD + '''
class Net(Base):
    def forward(self, x):
        torch.ops.aten.save(x, self.marker)
        return self.fc(x.mean(dim=(1, 2, 3))[:, None])
''',
    "from-file": HEAD + '''
class Net(Base):
    def forward(self, x):
        y = torch.from_file(self.marker, True, 16)
        return self.fc(x.mean(dim=(1, 2, 3))[:, None]) + y.sum() * 0
''',
    "save-in-setstate": HEAD + '''
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.ones(4, 1)
        self.marker = MARKER
    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None] @ self.w.t()
    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, str, bool]:
        return (self.w, self.marker, self.training)
    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, str, bool]) -> None:
        torch.ops.aten.save(state[0], state[1])
        self.w = state[0]
        self.marker = state[1]
        self.training = state[2]
''',
    "print": HEAD + '''
class Net(Base):
    def forward(self, x):
        print("hello from the model")
        return self.fc(x.mean(dim=(1, 2, 3))[:, None])
''',
    "save-in-submodule-method": HEAD + '''
class Inner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.marker = MARKER
    @torch.jit.export
    def write(self, x: torch.Tensor) -> torch.Tensor:
        torch.ops.aten.save(x, self.marker)
        return x
    def forward(self, x):
        return x
class Net(Base):
    def __init__(self):
        super().__init__()
        self.inner = Inner()
    def forward(self, x):
        x = self.inner.write(x)
        return self.fc(x.mean(dim=(1, 2, 3))[:, None])
''',
    "save-in-fork": HEAD + '''
class Net(Base):
    @torch.jit.export
    def helper(self, x: torch.Tensor) -> torch.Tensor:
        torch.ops.aten.save(x, self.marker)
        return x
    def forward(self, x):
        fut = torch.jit.fork(self.helper, x)
        x = torch.jit.wait(fut)
        return self.fc(x.mean(dim=(1, 2, 3))[:, None])
''',
    "save-in-loop-branch": HEAD + '''
class Net(Base):
    def forward(self, x):
        for i in range(2):
            if i == 1:
                torch.ops.aten.save(x, self.marker)
        return self.fc(x.mean(dim=(1, 2, 3))[:, None])
''',
}


def _exported(sb: Sandbox, marker: Path, target: str | None = None) -> Path:
    """A torch.export package whose graph was edited (``hostile_models.edited_export``)."""
    folder = sb.path("pt2")
    folder.mkdir()
    edited_export(folder / "model.pt2", marker, target)
    return program_package(folder, "torch-export", "model.pt2")


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _python_package(sb: Sandbox, body: str, at_import: str = "") -> Path:
    import torch

    folder = sb.path("py")
    folder.mkdir()
    (folder / "net.py").write_text(f"import sys, torch\n{at_import}\nclass Net(torch.nn.Module):\n"
                                   "    def __init__(self):\n        super().__init__()\n"
                                   "        self.fc = torch.nn.Linear(1, 4)\n"
                                   f"    def forward(self, x):\n        {body}\n"
                                   "        return self.fc(x.mean(dim=(1, 2, 3))[:, None])\n")
    torch.save({"fc.weight": torch.zeros(4, 1), "fc.bias": torch.zeros(4)}, folder / "net.pth")
    (folder / "model.json").write_text(json.dumps({
        "architecture": "python:net.py:Net", "weights": "net.pth", "classes": list(CLASSES), "input_size": [32, 32],
        "channels": 1, "normalisation": "none"}))
    return folder

def model_code_cases(sb: Sandbox) -> list[Case]:
    cases = []
    for name, source in TS_MODULES.items():
        marker = sb.path(f"marker-{name}")
        pkg = _scripted(sb, source, marker)
        cases.append(Case(f"torchscript {name}", ["explain", sb.volume, "--model", pkg, "--out", sb.out(), *FAST],
                          markers=[] if name == "print" else [marker]))
    marker = sb.path("marker-export")
    cases.append(Case("torch-export from_file (graph edited)", ["explain", sb.volume, "--model",
                                                                _exported(sb, marker), "--out", sb.out(), *FAST],
                      markers=[marker]))
    for target in ("torch.os.system", "torch.ops.higher_order.print", "torch.ops.aten.save.default",
                   "torch.ops.c10d.broadcast_.default", "builtins.eval"):
        cases.append(Case(f"torch-export target {target}", ["explain", sb.volume, "--model",
                                                             _exported(sb, sb.root / "none", target), "--out",
                                                             sb.out(), *FAST]))
    not_zip = _changed(sb, sb.ts)
    (not_zip / "model.pt").write_bytes(b"not a zip archive at all")
    cases.append(Case("torchscript not a zip", ["explain", sb.volume, "--model", not_zip, "--out", sb.out(), *FAST]))
    marker = sb.path("marker-timm")
    checkpoint = sb.path("checkpoint.pth")
    checkpoint.write_bytes(pickle.dumps(_Payload(str(marker))))
    for key, value in (("checkpoint_path", str(checkpoint)), ("pretrained_cfg_overlay", {"file": str(checkpoint)}),
                       ("pretrained", True), ("pretrained_cfg", {"file": str(checkpoint)}), ("cache_dir", "/tmp"),
                       ("drop_rate", "high"), ("drop_rate", 10 ** 400), ("global_pool", "nonsense"),
                       ("drop_rate", {"nested": [1]}), ("features_only", True)):
        pkg = _changed(sb, sb.timm, architecture_args={key: value})
        cases.append(Case(f"timm architecture_args {key}={str(value)[:20]}",
                          ["explain", sb.volume, "--model", pkg, "--out", sb.out(), *FAST], markers=[marker]))
    tv = _changed(sb, sb.timm, architecture="torchvision:resnet18", channels=3, architecture_args={"weights": "DEFAULT"})
    cases.append(Case("torchvision weights=DEFAULT", ["explain", sb.volume, "--model", tv, "--out", sb.out(), *FAST]))
    ts_args = _changed(sb, sb.ts, architecture_args={"x": 1})
    cases.append(Case("torchscript with architecture_args", ["explain", sb.volume, "--model", ts_args, "--out",
                                                             sb.out(), *FAST]))
    for name, body, at_import, expect in (("sys.exit at import", "pass", "sys.exit(0)", 2),
                                          ("SystemExit in forward", "raise SystemExit", "", 2),
                                          ("KeyboardInterrupt in forward", "raise KeyboardInterrupt", "", 2),
                                          ("SystemExit(3) in forward", "raise SystemExit(3)", "", 2)):
        cases.append(Case(f"python package, trusted: {name}", ["explain", sb.volume, "--model",
                                                               _python_package(sb, body, at_import), "--out",
                                                               sb.out(), *FAST, "--trust-code"], expect=expect))
    marker = sb.path("marker-python")
    untrusted = _python_package(sb, "pass", f"open({str(marker)!r}, 'w')")
    cases.append(Case("python package without --trust-code", ["explain", sb.volume, "--model", untrusted, "--out",
                                                              sb.out(), *FAST], markers=[marker]))
    return cases


def package_cases(sb: Sandbox) -> list[Case]:
    cases = []
    for name, fields in (("width_scale 400 digits", {"width_scale": 10 ** 400}),
                         ("input_size 400 digits", {"input_size": [10 ** 400, 8]}),
                         ("std 1e-300", {"std": [1e-300]}), ("std nan", {"std": [float("nan")]}),
                         ("mean 1e300", {"mean": [1e300]}), ("demo 'false'", {"demo": "false"}),
                         ("name object", {"name": {"x": 1}}), ("classes one", {"classes": ["a"]}),
                         ("classes repeated", {"classes": ["a", "a", "b", "c"]}), ("channels 2", {"channels": 2}),
                         ("input_size 4x4", {"input_size": [4, 4]}), ("weights ../x", {"weights": "../x"}),
                         ("weights absolute", {"weights": "/etc/passwd"}), ("architecture ''", {"architecture": ""}),
                         ("python file outside", {"architecture": "python:../net.py:Net"}),
                         ("format other", {"format": "dida-model/9"}), ("unknown field", {"evil": 1}),
                         ("examples missing file", {"examples": [{"image": "nope.png", "top": CLASSES[0]}]}),
                         ("score bogus", {"score": "bogus"}), ("description 1 MB", {"description": "x" * 900000})):
        cases.append(Case(f"model.json {name}", ["explain", sb.volume, "--model", _changed(sb, sb.ts, **fields),
                                                 "--out", sb.out(), *FAST]))
    for name, text in (("deeply nested", "[" * 100000 + "]" * 100000), ("not JSON", "{nope"), ("a list", "[1, 2]"),
                       ("empty", ""), ("3 MB", " " * 3_000_000 + "{}")):
        cases.append(Case(f"model.json {name}", ["explain", sb.volume, "--model", _changed(sb, sb.ts, text=text),
                                                 "--out", sb.out(), *FAST]))
    for name, make in (("a folder", lambda p: p.mkdir()), ("/dev/zero", lambda p: p.symlink_to("/dev/zero")),
                       ("a FIFO", lambda p: os.mkfifo(p)), ("invalid UTF-8", lambda p: p.write_bytes(b"\xff\xfe{"))):
        pkg = _changed(sb, sb.ts)
        (pkg / "model.json").unlink()
        make(pkg / "model.json")
        cases.append(Case(f"model.json is {name}", ["explain", sb.volume, "--model", pkg, "--out", sb.out(), *FAST]))
    for name, make in (("a FIFO", lambda p: os.mkfifo(p)), ("/dev/zero", lambda p: p.symlink_to("/dev/zero")),
                       ("a folder", lambda p: p.mkdir()), ("missing", lambda p: None),
                       ("garbage", lambda p: p.write_bytes(b"garbage" * 100))):
        pkg = _changed(sb, sb.ts)
        (pkg / "model.pt").unlink()
        make(pkg / "model.pt")
        cases.append(Case(f"weights are {name}", ["explain", sb.volume, "--model", pkg, "--out", sb.out(), *FAST]))
    pickled = sb.path("pickled")
    shutil.copytree(sb.timm, pickled)
    marker = sb.path("marker-weights")
    (pickled / "model.safetensors").unlink()
    (pickled / "w.pth").write_bytes(pickle.dumps(_Payload(str(marker))))
    _edit_json(pickled / "model.json", weights="w.pth")
    cases.append(Case("weights a hostile pickle", ["explain", sb.volume, "--model", pickled, "--out", sb.out(),
                                                   *FAST], markers=[marker]))
    cases.append(Case("dida package of a hostile pickle", ["package", pickled / "w.pth", "--architecture",
                                                           "timm:test_efficientnet", "--classes", ",".join(CLASSES),
                                                           "--input-size", "32,32", "--out", sb.out()],
                      markers=[marker]))
    return cases
