"""The model zoo (``zoo.py``): every idiom people write, in every package format it allows, through ``dida explain``
and through the worker process, with d equal to the plain module's (in evaluation mode) within the format's bound.
Tiny models on 24 x 24 inputs and grids 3 and 5 keep the whole zoo to seconds."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from zoo import BOUNDS, CLASSES, ZOO, reference, write_package, write_zoo

from DiDALib import cli
from DiDALib.engine.core import DiDAEngine
from DiDALib.io.results import load_results
from DiDALib.models.fixed_batch import in_fixed_batches
from DiDALib.models.package import load_model_package
from DiDALib.models.preprocess import preprocess_bscan

GRIDS = (3, 5)
CASES = [(name, fmt) for name, model in ZOO.items() for fmt in model.formats]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[tuple[str, str], Path]:
    return write_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def bscan_png(tmp_path_factory) -> Path:
    """A speckled B-scan (40 x 60) with a dark vitreous and a bright band, as a grey PNG."""
    rng = np.random.default_rng(3)
    b = rng.random((40, 60)) * 0.3
    b[18:25] += 0.6
    b[:8] *= 0.1
    path = tmp_path_factory.mktemp("scan") / "bscan.png"
    Image.fromarray((np.clip(b, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return path


def _bscan(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float32) / 255.0


def _reference_d(name: str, package: Path, bscan: np.ndarray) -> dict:
    """d of the plain module in evaluation mode (logits, the paper's black fill), the engine's way."""
    model = ZOO[name]
    spec = load_model_package(package, trust_code=True).spec
    plain = reference(model)
    x, region = preprocess_bscan(bscan, spec)
    engine = DiDAEngine(lambda t: in_fixed_batches(plain, t, model.batch), device="cpu", score="logits",
                        fill=spec.fill_value(0.0))
    return engine.explain(x, grids=GRIDS, region=region).deltas


def _relative(got: dict, ref: dict) -> float:
    worst = max(float(np.abs(ref[n]).max()) for n in ref)
    return max(float(np.abs(got[n] - ref[n]).max()) for n in ref) / worst


def _explain(capsys, package: Path, image: Path, out: Path, *more) -> dict:
    argv = ["explain", image, "--model", package, "--out", out, "--grids", ",".join(map(str, GRIDS)), "--score",
            "logits", "--fill", "black", "--device", "cpu", "--quiet", "--no-figures", "--no-report", *more]
    code = cli.main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert code == 0, err
    return load_results(out / "dida_results.npz").results[0].deltas


@pytest.mark.parametrize("name,fmt", CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_every_idiom_in_every_format_explains_like_the_plain_module(tmp_path, capsys, zoo, bscan_png, name, fmt):
    package = zoo[name, fmt]
    got = _explain(capsys, package, bscan_png, tmp_path / "out", "--trust-code")
    ref = _reference_d(name, package, _bscan(bscan_png))
    assert _relative(got, ref) <= BOUNDS[fmt], f"{name} as {fmt}: {_relative(got, ref):.2e}"


def test_residual_cnn_ending_in_view_gives_the_same_d_in_python_torch_export_and_torchscript(
        tmp_path, capsys, zoo, bscan_png):
    """The third-party Kermany classifier's shape (``self.fc(x.view(x.size(0), -1))`` after residual blocks): its
    ``python:`` and ``torch-export`` packages crashed on the first batch under channels-last while its TorchScript
    package worked; all three now give one d."""
    d = {fmt: _explain(capsys, zoo["resnet", fmt], bscan_png, tmp_path / fmt, "--trust-code")
         for fmt in ("torchscript", "python", "torch-export")}
    for fmt in ("python", "torch-export"):
        assert _relative(d[fmt], d["torchscript"]) <= 1e-5


def test_models_left_in_training_mode_are_run_in_evaluation_mode(tmp_path, bscan_png):
    """BatchNorm and Dropout left in training mode would make d depend on the batch and on chance (differences of
    the order of d itself): DiDA runs every format in evaluation mode, so two runs give the same d and the plain
    module's in eval mode. (Two runs may differ in the last float32 bits, about 1e-7, where the memory-format probe
    chose differently: its choice is in the run record; dropout in training mode changes d by its own size.)"""
    from DiDALib.pipeline import ExplainSettings, VolumeExplainer

    b = _bscan(bscan_png)
    for fmt in ZOO["train_mode"].formats:
        package = write_package(tmp_path / fmt, ZOO["train_mode"], fmt)
        runs = []
        for _ in range(2):
            pkg = load_model_package(package, trust_code=True)
            explainer = VolumeExplainer(pkg, ExplainSettings(grids=GRIDS, score="logits", fill="black", device="cpu"))
            runs.append(explainer.explain_bscan(b).deltas)
        assert _relative(runs[1], runs[0]) <= 1e-5, fmt
        assert _relative(runs[0], _reference_d("train_mode", package, b)) <= BOUNDS[fmt], fmt


def test_every_idiom_runs_in_the_worker_process(tmp_path, zoo, bscan_png):
    """The same packages through ``python -m DiDALib.worker``: every job ends with the plain module's d."""
    from DiDALib.worker.client import WorkerClient
    from DiDALib.worker.protocol import JobRequest, ModelRequest, decode_result

    b = _bscan(bscan_png)
    settings = {"grids": list(GRIDS), "score": "logits", "fill": "black", "device": "cpu"}
    with WorkerClient(home=tmp_path / "worker") as client:
        for (name, fmt), package in zoo.items():
            job = client.submit(JobRequest(ModelRequest(str(package), trust_code=True), settings, [0]), b[None])
            events, deadline = [], time.monotonic() + 120
            while not job.finished and time.monotonic() < deadline:
                events += job.poll()
                time.sleep(0.01)
            job.release()
            kinds = [e.kind for e in events]
            assert kinds[-1:] == ["done"], f"{name} as {fmt}: {events[-1].data if events else 'no event'}"
            result = decode_result(next(e.data for e in events if e.kind == "result"), CLASSES)
            ref = _reference_d(name, package, b)
            assert _relative(result.deltas, ref) <= BOUNDS[fmt], f"{name} as {fmt}"
