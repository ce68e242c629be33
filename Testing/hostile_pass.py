"""The hostile pass: bad, lying and malicious inputs against ``dida explain``, ``dida view``, ``dida package``, model
packages and ``python -m DiDALib.worker``, each in its own child process under an address-space cap, with a table:
the case, the exit code, the first line said, any file written outside ``--out``, the peak resident memory, and
whether the case held (``ok``) or found a failure (``FAIL``: a marker file that appeared, a user file changed or
removed, a hang, a traceback, "unexpected error" or exit 1 for bad input, an exit other than expected).

    python Testing/hostile_pass.py                      # every case (about 130; 5-15 minutes on 2 busy cores)
    python Testing/hostile_pass.py --only view --json   # the cases whose name contains "view", as JSON
    python Testing/hostile_pass.py --root /path/to/other/checkout   # the same cases against another DiDALib

It writes only inside a temporary folder (removed at the end, ``--keep`` keeps it). The cases are those of issue
#21 ("Why") and variations of each; ``Testing/tests`` holds the unit tests of every one.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE / "tests")]

import numpy as np  # noqa: E402
from bombs import npz_bomb, nrrd_bomb, run_capped, tiff_bomb  # noqa: E402
from cli_helpers import CLASSES, FAST, changed_package, make_package, make_torchscript_package, write_volume  # noqa: E402
from hostile_models import edited_export, program_package  # noqa: E402

TIMEOUT = 120  # seconds: a case that runs longer hangs
PEAK_LIMIT = 1.5e9  # bytes: a refusal that peaked above this decoded first


@dataclass
class Case:
    """One hostile input: ``argv`` for dida (or ``--worker ...``), what must hold afterwards."""

    name: str
    argv: list
    expect: int = 2  # the exit code a correct dida gives
    markers: list[Path] = field(default_factory=list)  # files that must never appear
    victims: list[Path] = field(default_factory=list)  # files that must keep their content
    out: Path | None = None  # where the case may write
    stdin: bytes | None = None
    timeout: float = TIMEOUT


class Sandbox:
    """The fixtures every case uses, made once in ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.ts = make_torchscript_package(root / "ts-package")
        self.timm = make_package(root / "timm-package")
        self.volume = write_volume(root / "volume.nrrd", n=2)
        self.secret = root / "secret" / "id_rsa"
        self.secret.parent.mkdir()
        self.secret.write_bytes(b"\x89PNG\r\n\x1a\n-----BEGIN OPENSSH PRIVATE KEY----- hostile pass")
        self.victim = root / "victim"
        self.victim.mkdir()
        (self.victim / "data.txt").write_text("the user's data")
        self.count = 0

    def path(self, stem: str) -> Path:
        self.count += 1
        return self.root / f"c{self.count:03d}-{stem}"

    def out(self) -> Path:
        return self.path("out")


# -- builders --------------------------------------------------------------------------------------------------------

def _changed(sb: Sandbox, base: Path, text: str | None = None, **fields) -> Path:
    return changed_package(sb.path("pkg"), base, text, **fields)


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


def _result(sb: Sandbox, argv_root: Path) -> Path:
    """A real result folder, written by the checkout under test."""
    out = sb.path("result")
    code, err, _ = run_capped(["explain", sb.volume, "--model", sb.ts, "--out", out, *FAST], sb.root,
                              root=argv_root)
    if code != 0:
        raise SystemExit(f"the pass cannot make its result folder: {err[-500:]}")
    return out


def _copy_result(sb: Sandbox, result: Path) -> Path:
    return Path(shutil.copytree(result, sb.path("view")))


def _edit_run(folder: Path, **fields) -> Path:
    data = json.loads((folder / "run.json").read_text())
    data.update(fields)
    (folder / "run.json").write_text(json.dumps(data))
    return folder


def _edit_npz(folder: Path, edit: Callable[[dict], None]) -> Path:
    with np.load(folder / "dida_results.npz") as d:
        arrays = dict(d)
    edit(arrays)
    np.savez_compressed(folder / "dida_results.npz", **arrays)
    return folder


# -- the cases -------------------------------------------------------------------------------------------------------

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


def _edit_json(path: Path, **fields) -> None:
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


def input_cases(sb: Sandbox) -> list[Case]:
    from PIL import Image

    cases = [Case("gzip NRRD bomb, --max-memory 2G", ["explain", nrrd_bomb(sb.path("bomb.nrrd"), chunks=24),
                                                      "--model", sb.ts, "--out", sb.out(), *FAST, "--max-memory",
                                                      "2G"]),
             Case("gzip NRRD bomb, machine memory", ["explain", nrrd_bomb(sb.path("bomb2.nrrd"), chunks=48), "--model",
                                                     sb.ts, "--out", sb.out(), *FAST]),
             Case("multi-page TIFF bomb", ["explain", tiff_bomb(sb.path("bomb.tif"), pages=100), "--model", sb.ts,
                                           "--out", sb.out(), *FAST, "--max-memory", "2G"])]
    png = sb.path("one.png")
    Image.fromarray(np.full((24, 30), 100, np.uint8)).save(png)
    for spec in ("0-60000000", "-1", "5", "3-1", "0,,1", "x", "1e9", "0-" + "9" * 400):
        cases.append(Case(f"--bscans {spec[:20]}", ["explain", png, "--model", sb.ts, "--out", sb.out(), *FAST,
                                                    "--bscans", spec]))
    big_png = sb.path("bomb.png")
    _png_header(big_png, 14000, 14000)
    cases.append(Case("PNG decompression bomb", ["explain", big_png, "--model", sb.ts, "--out", sb.out(), *FAST]))
    dicom = sb.path("lying.dcm")
    _lying_dicom(dicom)
    cases.append(Case("DICOM header 60000 x 60000 x 500", ["explain", dicom, "--model", sb.ts, "--out", sb.out(),
                                                           *FAST]))
    vol = sb.path("lying.vol")
    vol.write_bytes(b"HSF-OCT-103\x00" + np.array([60000, 60000, 60000], "<u4").tobytes() + bytes(4000))
    cases.append(Case("VOL header 60000^3", ["explain", vol, "--model", sb.ts, "--out", sb.out(), *FAST]))
    for name, make in (("a FIFO", lambda p: os.mkfifo(p)), ("/dev/zero", lambda p: p.symlink_to("/dev/zero")),
                       ("empty", lambda p: p.write_bytes(b"")), ("garbage", lambda p: p.write_bytes(b"x" * 999))):
        path = sb.path("input.nrrd")
        make(path)
        cases.append(Case(f"input NRRD is {name}", ["explain", path, "--model", sb.ts, "--out", sb.out(), *FAST]))
    e2e = sb.path("garbage.e2e")
    e2e.write_bytes(b"CMDb" + bytes(5000))
    cases.append(Case("E2E garbage", ["explain", e2e, "--model", sb.ts, "--out", sb.out(), *FAST]))
    return cases


def _png_header(path: Path, width: int, height: int) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def _lying_dicom(path: Path) -> None:
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.Rows, ds.Columns, ds.NumberOfFrames = 60000, 60000, 500
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 16, 15
    ds.PixelRepresentation, ds.PhotometricInterpretation = 0, "MONOCHROME2"
    ds.PixelData = bytes(1000)
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)


def option_cases(sb: Sandbox) -> list[Case]:
    cases = []
    base = ["explain", sb.volume, "--model", sb.ts]
    for option in ("--model", "--classes", "--contrast", "--view", "--bscans", "--fill", "--weights", "--point",
                   "--max-memory", "--grids", "--device", "--out", "--bscan-distance", "--batch-size"):
        opts = [v for i, v in enumerate(FAST) if option not in FAST[max(0, i - 1):i + 1]]
        out = [] if option == "--out" else ["--out", sb.out()]
        cases.append(Case(f"empty {option}", [*base, *out, *opts, option, ""]))
    cases.append(Case("empty input", ["explain", "", "--model", sb.ts, "--out", sb.out(), *FAST]))
    for option, value in (("--device", "meta"), ("--device", "xpu"), ("--device", "fpga"), ("--device", "cuda:x"),
                          ("--batch-size", "0"), ("--batch-size", "-3"), ("--grids", "0"), ("--grids", "999999"),
                          ("--grids", "2,x"), ("--weights", "nan,1"), ("--weights", "inf,1"), ("--fill", "nan"),
                          ("--fill", "-1"), ("--point", "-1,-1"), ("--point", "99999,99999"), ("--max-memory", "0"),
                          ("--max-memory", "-1G"), ("--max-memory", "lots"), ("--bscan-distance", "nan"),
                          ("--bscan-distance", "-1"), ("--bscan-distance", "inf"), ("--contrast", "normal:normal"),
                          ("--contrast", "a:b"), ("--view", "nonsense"), ("--classes", "cataract"),
                          ("--classes", ", ,"), ("--precision", "float8"), ("--score", "bogus")):
        opts = [v for i, v in enumerate(FAST) if option not in FAST[max(0, i - 1):i + 1]]
        cases.append(Case(f"{option} {value}", [*base, "--out", sb.out(), *opts, option, value]))
    for argv in (["explain"], ["explain", sb.volume, "--out", sb.out(), "--bogus"], ["view"], ["nope"], ["package"]):
        cases.append(Case(f"argparse {' '.join(map(str, argv[:1] + argv[-1:]))}", argv))
    cases.append(Case("--out is the input's folder", [*base, "--out", sb.root, *FAST]))
    cases.append(Case("--out is a file", [*base, "--out", sb.volume, *FAST], victims=[sb.volume]))
    return cases


def view_cases(sb: Sandbox, result: Path) -> list[Case]:
    cases = []

    def case(name: str, folder: Path, expect: int = 2) -> None:
        cases.append(Case(f"view {name}", ["view", folder], expect=expect, out=folder))

    folder = _copy_result(sb, result)
    (folder / "figures").mkdir(exist_ok=True)
    (folder / "figures" / "dida_enface_fundus.png").symlink_to(sb.secret)
    data = json.loads((folder / "run.json").read_text())
    _edit_run(folder, enface_on_fundus="figures/dida_enface_fundus.png",
              files=sorted({*data["files"], "figures/dida_enface_fundus.png"}))
    case("linked fundus figure (page written without it)", folder, expect=0)
    for name in ("dida_results.npz", "volume.nrrd", "run.json"):
        folder = _copy_result(sb, result)
        moved = sb.path(name)
        shutil.move(folder / name, moved)
        (folder / name).symlink_to(moved)
        case(f"linked {name}", folder)
    for name, fields in (("contrasts strings", {"contrasts": ["a", "b"]}), ("zero spacing", {"spacing_mm": [0, 0, 0]}),
                         ("spacing text", {"spacing_mm": "1,1,1"}), ("contrast_scale text", {"contrast_scale": "x"}),
                         ("demo_model text", {"demo_model": "false"}), ("grids object", {"grids": {"a": 1}}),
                         ("format other", {"format": "dida-run/9"}), ("files not a list", {"files": "x"})):
        case(f"run.json {name}", _edit_run(_copy_result(sb, result), **fields))
    for name, text in (("deeply nested", "[" * 100000 + "]" * 100000), ("not JSON", "{nope"),
                       ("20 MB", " " * 20_000_000 + "{}")):
        folder = _copy_result(sb, result)
        (folder / "run.json").write_text(text)
        case(f"run.json {name}", folder)
    for name, edit in (("missing array", lambda a: a.pop("base_scores")),
                       ("wrong shape", lambda a: a.update(base_scores=a["base_scores"][:, :2])),
                       ("names do not match", lambda a: a.update(class_names=a["class_names"][:3])),
                       ("repeated names", lambda a: a.update(class_names=np.array(["a", "a", "b", "c"]))),
                       ("bscan_shape 1-D", lambda a: a.update(bscan_shape=np.array([24]))),
                       ("negative B-scan", lambda a: a.update(bscans=-a["bscans"] - 1)),
                       ("score bogus", lambda a: a.update(score=np.array("bogus"))),
                       ("object array", lambda a: a.update(meta=np.array([{"x": 1}], dtype=object)))):
        case(f"npz {name}", _edit_npz(_copy_result(sb, result), edit))
    folder = _copy_result(sb, result)
    small = dict(np.load(folder / "dida_results.npz"))
    n = int(small["grids"][0])
    del small[f"d_{n}"]
    npz_bomb(folder / "dida_results.npz", f"d_{n}", (28, len(CLASSES), 4096, 1024), members=small)
    case("npz bomb (1.9 GB of zeros)", folder)
    folder = _copy_result(sb, result)
    (folder / "dida_results.npz").write_bytes(b"not a zip")
    case("npz not a zip", folder)
    folder = _copy_result(sb, result)
    (folder / "volume.nrrd").write_text(f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 30 24 2\nencoding: raw\n"
                                        f"data file: {sb.secret}\n\n")
    case("detached NRRD header naming another file", folder)
    folder = _copy_result(sb, result)
    nrrd_bomb(folder / "volume.nrrd", chunks=48)
    case("volume.nrrd bomb", folder)
    cases.append(Case("view --out inside the folder", ["view", result, "--out", result / "x.html"]))
    cases.append(Case("view --panel-width 0", ["view", result, "--panel-width", "0"]))
    return cases


def staging_cases(sb: Sandbox, result: Path) -> list[Case]:
    cases = []
    for name in (".mydata.dida-staging-1", ".out.dida-staging-1"):
        parent = sb.path("parent")
        parent.mkdir()
        mine = parent / name
        mine.mkdir()
        (mine / "thesis.txt").write_text("years of work")
        (parent / f".{name.split('.')[1]}.dida-lock").write_text("{}")
        cases.append(Case(f"a user folder named {name}", ["explain", sb.volume, "--model", sb.ts, "--out",
                                                          parent / "out", *FAST], expect=0, out=parent / "out",
                          victims=[mine / "thesis.txt"]))
    folder = _copy_result(sb, result)
    (folder / "notes.txt").write_text("my notes")
    data = json.loads((folder / "run.json").read_text())
    _edit_run(folder, files=[*data["files"], "notes.txt"])
    cases.append(Case("--force on a result whose run.json lists a user file",
                      ["explain", sb.volume, "--model", sb.ts, "--out", folder, *FAST, "--force"],
                      victims=[folder / "notes.txt"]))
    folder = _copy_result(sb, result)
    (folder / "scores.csv").write_text("edited by hand")
    cases.append(Case("--force on a result with an edited file", ["explain", sb.volume, "--model", sb.ts, "--out",
                                                                  folder, *FAST, "--force"],
                      victims=[folder / "scores.csv"]))
    cases.append(Case("--force on a folder of user files", ["explain", sb.volume, "--model", sb.ts, "--out",
                                                            sb.victim, *FAST, "--force"],
                      victims=[sb.victim / "data.txt"]))
    return cases


def worker_cases(sb: Sandbox) -> list[Case]:
    from test_worker_requests import _fuzz, _job

    cases = []

    def home_with(*names: str) -> Path:
        home = sb.path("home")
        home.mkdir()
        for n in names:
            (home / n).mkdir()
        return home

    for name, line in (("[1,2]", b"[1,2]"), ("a string", b'"a string"'), ("a number", b"3"),
                       ("job without dir", b'{"op": "job"}'), ("job with numeric dir", b'{"op": "job", "dir": 5}'),
                       ("not UTF-8", b"\xff\xfe\n"), ("deeply nested", b"[" * 100000), ("cancel without id",
                                                                                         b'{"op": "cancel"}')):
        home = home_with()
        cases.append(Case(f"worker line {name}", ["--worker", "--home", home], expect=0, out=home,
                          stdin=line + b"\n"))
    home = home_with()
    cases.append(Case("worker job dir outside --home", ["--worker", "--home", home], expect=0, out=home,
                      stdin=_job("1", sb.victim) + b"\n", victims=[sb.victim / "data.txt"]))
    home = home_with("job-1")
    (home / "job-1" / "events.jsonl").symlink_to(sb.victim / "data.txt")
    cases.append(Case("worker events.jsonl a link", ["--worker", "--home", home], expect=0, out=home,
                      stdin=_job("1", home / "job-1") + b"\n", victims=[sb.victim / "data.txt"]))
    home = home_with()
    (home / "job-link").symlink_to(sb.victim, target_is_directory=True)
    cases.append(Case("worker job folder a link", ["--worker", "--home", home], expect=0, out=home,
                      stdin=_job("1", home / "job-link") + b"\n", victims=[sb.victim / "data.txt"]))
    home = home_with()
    cases.append(Case("worker 300 fuzzed lines", ["--worker", "--home", home], expect=0, out=home,
                      stdin=b"\n".join(_fuzz(7, home)) + b"\n", victims=[sb.victim / "data.txt"]))
    home = home_with()
    cases.append(Case("worker argparse error", ["--worker", "--bogus"], expect=2, out=home))
    return cases


# -- running ---------------------------------------------------------------------------------------------------------

def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath, name)
            try:
                st = p.lstat()
            except OSError:
                continue
            out[str(p)] = (st.st_size, st.st_mtime_ns) if not p.is_dir() or p.is_symlink() else (0, 0)
    return out


def run_case(case: Case, sb: Sandbox, root: Path) -> dict:
    victims = {str(v): v.read_bytes() if v.is_file() else None for v in case.victims}
    before = _snapshot(sb.root)
    argv = [str(a) for a in case.argv]
    out = case.out or (Path(argv[argv.index("--out") + 1]) if "--out" in argv[:-1] else None)
    started = time.monotonic()
    try:
        code, err, peak = run_capped(case.argv, sb.root, timeout=case.timeout, stdin=case.stdin, root=root)
        hang = False
    except Exception:  # noqa: BLE001 -- subprocess.TimeoutExpired: the case hung
        code, err, peak, hang = "timeout", "", 0, True
    seconds = time.monotonic() - started
    after = _snapshot(sb.root)
    written = sorted(p for p, v in after.items() if before.get(p) != v and not p.split("/")[-1].startswith("report-")
                     and not (out is not None and (p == str(out) or p.startswith(str(out) + os.sep)
                                                  or Path(p).name.startswith(f".{Path(out).name}.dida-"))))
    lines = [ln for ln in err.splitlines() if ln.strip() and " started (Python " not in ln]
    first = lines[0] if lines else ""
    problems = []
    if hang:
        problems.append("hang")
    if code != case.expect:
        problems.append(f"exit {code}, expected {case.expect}")
    if "Traceback" in err:
        problems.append("traceback")
    if "unexpected error" in err:
        problems.append("unexpected error")
    if case.expect == 2 and not case.argv[:1] == ["--worker"] and len(lines) != 1:
        problems.append(f"{len(lines)} lines")
    appeared = [str(m) for m in case.markers if m.exists()]
    if appeared:
        problems.append("MARKER " + ", ".join(appeared))
    changed = [p for p, data in victims.items() if (Path(p).read_bytes() if Path(p).is_file() else None) != data]
    if changed:
        problems.append("LOST " + ", ".join(changed))
    if written:
        problems.append("wrote outside --out")
    if case.expect == 2 and peak > PEAK_LIMIT:
        problems.append(f"peak {peak / 1e9:.1f} GB")
    return {"case": case.name, "exit": code, "first_line": first[:160], "outside": written[:3],
            "peak_mb": round(peak / 1e6), "seconds": round(seconds, 1), "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--root", type=Path, default=HERE.parent, help="the checkout whose DiDALib runs")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dida-hostile-"))
    try:
        sb = Sandbox(tmp)
        result = _result(sb, args.root)
        cases = [*model_code_cases(sb), *package_cases(sb), *input_cases(sb), *option_cases(sb),
                 *view_cases(sb, result), *staging_cases(sb, result), *worker_cases(sb)]
        if args.only:
            cases = [c for c in cases if args.only in c.name]
        rows = []
        for i, case in enumerate(cases, 1):
            row = run_case(case, sb, args.root)
            rows.append(row)
            if not args.json:
                verdict = "ok  " if not row["problems"] else "FAIL"
                print(f"{i:3d} {verdict} {row['case'][:48]:48s} exit {str(row['exit']):7s} {row['peak_mb']:5d} MB "
                      f"{row['seconds']:5.1f} s | {row['first_line'][:110]}"
                      + (f" | {'; '.join(row['problems'])}" if row["problems"] else "")
                      + (f" | outside: {row['outside']}" if row["outside"] else ""), flush=True)
        summary = {"cases": len(rows), "failed": sum(bool(r["problems"]) for r in rows),
                   "security (marker appeared)": sum(any(p.startswith("MARKER") for p in r["problems"]) for r in rows),
                   "data lost": sum(any(p.startswith("LOST") for p in r["problems"]) for r in rows),
                   "hangs": sum("hang" in r["problems"] for r in rows),
                   "unexpected errors": sum("unexpected error" in r["problems"] for r in rows),
                   "tracebacks": sum("traceback" in r["problems"] for r in rows),
                   "wrote outside --out": sum("wrote outside --out" in r["problems"] for r in rows),
                   "max_peak_mb": max((r["peak_mb"] for r in rows), default=0)}
        if args.json:
            print(json.dumps({"summary": summary, "rows": rows}, indent=2))
        else:
            print(json.dumps(summary, indent=2))
        return 1 if summary["failed"] else 0
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
