"""How closely DiDA on a package made by ``dida package`` follows DiDA on the same network run as a plain
``nn.Module``, for each third-party model style of the tests (the 8 default grids, every score mode, the default
background fill and the paper's black): the largest |d difference| relative to the largest |d|.

    python Testing/benchmarks/package_fidelity.py
"""

import contextlib
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "Testing" / "tests" / "models")]

import numpy as np  # noqa: E402
from third_party import CLASSES, bscans, write_all  # noqa: E402

from DiDALib import cli  # noqa: E402
from DiDALib.engine.core import DiDAEngine  # noqa: E402
from DiDALib.models.package import load_model_package  # noqa: E402
from DiDALib.models.preprocess import preprocess_bscan  # noqa: E402
from DiDALib.pipeline import ExplainSettings, VolumeExplainer, engine_fill  # noqa: E402

d = Path(tempfile.mkdtemp())
tp = write_all(d)
common = ["--classes", ",".join(CLASSES), "--input-size", "48,48"]
styles = {
  "python (state dict + class)": ([tp.state_dict, "--architecture", f"python:{tp.code}:OCTResNet", "--trust-code",
                                   "--normalisation", "none"], tp.net),
  "torchvision state dict": ([tp.torchvision_state, "--architecture", "torchvision:squeezenet1_1", "--head",
                              "classifier.1", "--normalisation", "imagenet"], tp.torchvision),
  "onnx (dynamic batch)": ([tp.onnx, "--architecture", "onnx", "--mean", "0.3", "--std", "0.2"], tp.net),
  "onnx (fixed batch 3)": ([tp.onnx_fixed, "--architecture", "onnx", "--mean", "0.3", "--std", "0.2"], tp.net),
  "torch-export (dynamic)": ([tp.export, "--architecture", "torch-export", "--mean", "0.3", "--std", "0.2"], tp.net),
  "torch-export (fixed 3)": ([tp.export_fixed, "--architecture", "torch-export", "--mean", "0.3", "--std", "0.2"],
                             tp.net),
}
b = bscans(1, seed=2)[0]
for name, (flags, plain) in styles.items():
    out = d / name.replace(" ", "_")
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main([str(a) for a in ["package", *flags, *common, "--out", out]]) == 0
    pkg = load_model_package(out, trust_code=True)
    for fill in ("background", "black"):
        for score in ("probabilities", "logits", "log-odds"):
            got = VolumeExplainer(pkg, ExplainSettings(device="cpu", score=score, fill=fill)).explain_bscan(b)
            x, region = preprocess_bscan(b, pkg.spec)
            ref = DiDAEngine(plain, device="cpu", score=score, fill=engine_fill(fill, pkg)).explain(x, region=region)
            diff = max(float(np.abs(got.deltas[n] - ref.deltas[n]).max()) for n in ref.deltas)
            rel = diff / max(float(np.abs(ref.deltas[n]).max()) for n in ref.deltas)
            print(f"{name:28s} {fill:10s} {score:13s} max relative difference {rel:.2e}")
