"""What the command-line tests share: a tiny model package, small B-scans, running ``dida`` in this process or as
a real one (for signals and races), and waiting for what a running process writes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from DiDALib import cli

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("normal", "drusen", "wet_amd", "macular_oedema")
#: Settings of the quick runs. Without the page (report.html, about 0.5 s a run): its own tests ask for it (``PAGE``).
FAST = ["--grids", "2,3", "--device", "cpu", "--quiet", "--no-report"]
PAGE = FAST[:-1]


def make_package(folder: Path, classes=CLASSES, input_size=(32, 32)) -> Path:
    """A tiny timm model package (random weights) for ``classes``."""
    import timm
    import torch

    from DiDALib.models.package import save_model_package
    from DiDALib.models.spec import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(architecture="timm:test_efficientnet", classes=tuple(classes), input_size=tuple(input_size),
                     channels=1, name="tiny test model")
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=len(classes), in_chans=1)
    return save_model_package(folder, spec, model)


def changed_package(folder: Path, package: Path, text: str | None = None, **fields) -> Path:
    """A copy of ``package`` at ``folder`` with ``fields`` of its model.json changed (or model.json's ``text``)."""
    import json
    import shutil

    shutil.copytree(package, folder)
    if text is None:
        data = json.loads((folder / "model.json").read_text())
        data.update(fields)
        text = json.dumps(data)
    (folder / "model.json").write_text(text)
    return folder


def bscans(n=3, depth=24, width=30) -> np.ndarray:
    rng = np.random.default_rng(0)
    arr = (rng.random((n, depth, width)) * 200 + 20).astype(np.uint8)
    arr[:, : depth // 4] = 5  # dark vitreous on top
    return arr


def write_volume(path: Path, n: int = 4, depth: int = 24, width: int = 30) -> Path:
    """``bscans(n, depth, width)`` as a NRRD volume with a Spectralis-like spacing (mm)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(bscans(n, depth, width))
    img.SetSpacing((0.012, 0.004, 0.1))
    sitk.WriteImage(img, str(path))
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    """``dida ARGV`` in this process: exit code, stdout, stderr."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def outputs(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


def start(*argv, cwd: Path) -> subprocess.Popen:
    """``python -m DiDALib.cli ARGV`` as a real process of this checkout, one torch thread (the machine is shared)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "DiDALib.cli", *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen | None = None, timeout: float = 60.0) -> bool:
    """Poll ``condition`` every 5 ms until it holds (True), the process ends or the time is up (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            return condition()
        time.sleep(0.005)
    return False


class Hung(Exception):
    """A call still waiting after its time (not an OSError, so that the code under test cannot swallow it)."""


def within(seconds: int, call: Callable[[], object]) -> object:
    """``call()``, or ``Hung`` raised into it after ``seconds`` (a read of a named pipe or ``/dev/zero``); by
    SIGALRM, so not around ``cli.main``, whose signal handling uses SIGALRM itself (use ``start`` there)."""
    import signal

    def alarm(*_):
        raise Hung(f"still waiting after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return call()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def hidden(folder: Path) -> list[str]:
    """The hidden entries of ``folder`` (staging folders, locks)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def make_torchscript_package(folder: Path, classes=CLASSES, fail_above_batch: int = 0) -> Path:
    """A tiny TorchScript model package (needs no timm, so a ``dida`` process starts sooner); with
    ``fail_above_batch`` the model raises on larger batches, as a model that breaks mid-run."""
    import json
    import warnings

    import torch

    class Tiny(torch.nn.Module):
        def __init__(self, limit: int):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.head = torch.nn.Linear(4, len(classes))
            self.limit = limit

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.limit > 0 and x.shape[0] > self.limit:
                raise RuntimeError("this model breaks on batches of more than " + str(self.limit))
            return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates TorchScript; packages still use it
        torch.jit.save(torch.jit.script(Tiny(fail_above_batch).eval()), str(folder / "model.pt"))
    (folder / "model.json").write_text(json.dumps({
        "format": "dida-model/1", "name": "tiny scripted model", "architecture": "torchscript",
        "weights": "model.pt", "classes": list(classes), "input_size": [32, 32], "channels": 1,
    }))
    return folder
