"""How closely DiDA on a package made by ``dida package`` follows DiDA on the same network run as a plain
``nn.Module``, for each third-party model style of the tests (the 8 default grids, every score mode): the largest
|d difference| relative to the largest |d|.

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
import torch  # noqa: E402
from third_party import (  # noqa: E402
    CLASSES,
    bscans,
    finetuned_torchvision,
    trained_net,
    with_fixed_batch,
    write_export,
    write_onnx,
    write_python_style,
)

from DiDALib import cli  # noqa: E402
from DiDALib.engine.core import DiDAEngine  # noqa: E402
from DiDALib.models.package import load_model_package  # noqa: E402
from DiDALib.models.preprocess import preprocess_bscan  # noqa: E402
from DiDALib.pipeline import ExplainSettings, VolumeExplainer  # noqa: E402

torch.manual_seed(0)
d = Path(tempfile.mkdtemp())
net = trained_net(); code, state = write_python_style(d / "pub", net)
tv = finetuned_torchvision(); torch.save(tv.state_dict(), d / "squeezenet_oct.pth")
onnx = write_onnx(d / "oct_resnet.onnx", net); onnx3 = with_fixed_batch(onnx, d / "oct_resnet_b3.onnx", 3)
pt2 = write_export(d / "oct_resnet.pt2", net); pt23 = write_export(d / "oct_resnet_b3.pt2", net, fixed_batch=3)
common = ["--classes", ",".join(CLASSES), "--input-size", "48,48"]
styles = {
  "python (state dict + class)": ([state, "--architecture", f"python:{code}:OCTResNet", "--trust-code",
                                   "--normalisation", "none"], net),
  "torchvision state dict": ([d / "squeezenet_oct.pth", "--architecture", "torchvision:squeezenet1_1", "--head",
                              "classifier.1", "--normalisation", "imagenet"], tv),
  "onnx (dynamic batch)": ([onnx, "--architecture", "onnx", "--mean", "0.3", "--std", "0.2"], net),
  "onnx (fixed batch 3)": ([onnx3, "--architecture", "onnx", "--mean", "0.3", "--std", "0.2"], net),
  "torch-export (dynamic)": ([pt2, "--architecture", "torch-export", "--mean", "0.3", "--std", "0.2"], net),
  "torch-export (fixed 3)": ([pt23, "--architecture", "torch-export", "--mean", "0.3", "--std", "0.2"], net),
}
b = bscans(1, seed=2)[0]
for name, (flags, plain) in styles.items():
    out = d / name.replace(" ", "_")
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main([str(a) for a in ["package", *flags, *common, "--out", out]]) == 0
    pkg = load_model_package(out, trust_code=True)
    for score in ("probabilities", "logits", "log-odds"):
        got = VolumeExplainer(pkg, ExplainSettings(device="cpu", score=score)).explain_bscan(b)
        x, region = preprocess_bscan(b, pkg.spec)
        ref = DiDAEngine(plain, device="cpu", score=score, fill=pkg.spec.fill_value(0.0)).explain(x, region=region)
        diff = max(float(np.abs(got.deltas[n] - ref.deltas[n]).max()) for n in ref.deltas)
        rel = diff / max(float(np.abs(ref.deltas[n]).max()) for n in ref.deltas)
        print(f"{name:28s} {score:13s} max relative difference {rel:.2e}")
