"""How closely DiDA's d on every package of the model zoo (``Testing/tests/models/zoo.py``: .view after convolutions,
in-place ops, tuple/dict/.logits outputs, training-mode BatchNorm, RGB, fixed batch, a data-dependent branch, a
residual CNN ending in ``fc(x.view(...))``) follows d on the plain module in evaluation mode: the largest |d
difference| relative to the largest |d|, per model, format, score mode and fill; and, for the residual CNN, its
``python:`` and ``torch-export`` packages against its TorchScript package (the third-party Kermany classifier's
case). Also the memory format the engine chose for each package, and why.

    python Testing/benchmarks/zoo_fidelity.py                  # the paper's 8 grids
    python Testing/benchmarks/zoo_fidelity.py --grids 3,5 --json
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "Testing" / "tests" / "models")]

import numpy as np  # noqa: E402
from zoo import BOUNDS, ZOO, reference, write_zoo  # noqa: E402

from DiDALib.engine.core import DiDAEngine  # noqa: E402
from DiDALib.engine.schedule import parse_grids  # noqa: E402
from DiDALib.models.fixed_batch import in_fixed_batches  # noqa: E402
from DiDALib.models.package import load_model_package  # noqa: E402
from DiDALib.models.preprocess import preprocess_bscan  # noqa: E402
from DiDALib.pipeline import ExplainSettings, VolumeExplainer, engine_fill  # noqa: E402


def relative(a: dict, b: dict) -> float:
    worst = max(float(np.abs(b[n]).max()) for n in b)
    return max(float(np.abs(a[n] - b[n]).max()) for n in b) / worst if worst > 0 else 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grids", default="paper", help="grid schedule or sizes (default: the paper's 8)")
    p.add_argument("--models", help="zoo models to run, comma-separated (default: all)")
    p.add_argument("--scores", default="probabilities,logits,log-odds")
    p.add_argument("--fills", default="background,black")
    # The formats are compared on one runtime: auto would move runs of >= 1,000 passes to onnxruntime or OpenVINO,
    # whose own exactness against torch is runtime/probe.py's check, not this one's (issue 25).
    p.add_argument("--runtime", default="torch", help="what runs the packages' passes (default: torch)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()
    grids = parse_grids(args.grids)
    names = args.models.split(",") if args.models else list(ZOO)
    rng = np.random.default_rng(3)
    b = (rng.random((40, 60)) * 0.3).astype(np.float32)
    b[18:25] += 0.6
    b[:8] *= 0.1
    rows, pairs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        packages = write_zoo(Path(tmp), names)
        for (name, fmt), folder in packages.items():
            pkg = load_model_package(folder, trust_code=True)
            plain = reference(ZOO[name])
            for score in args.scores.split(","):
                for fill in args.fills.split(","):
                    explainer = VolumeExplainer(pkg, ExplainSettings(grids=grids, device="cpu", score=score,
                                                                     fill=fill, runtime=args.runtime))
                    got = explainer.explain_bscan(b).deltas
                    x, region = preprocess_bscan(b, pkg.spec)
                    ref = DiDAEngine(lambda t, m=ZOO[name]: in_fixed_batches(plain, t, m.batch), device="cpu",
                                     score=score, fill=engine_fill(fill, pkg)).explain(x, grids=grids, region=region)
                    rows.append({"model": name, "format": fmt, "score": score, "fill": fill,
                                 "relative_difference": relative(got, ref.deltas), "bound": BOUNDS[fmt],
                                 "memory_format": explainer.engine.memory_format_note})
        if "resnet" in names:
            for score in args.scores.split(","):
                d = {}
                for fmt in ("torchscript", "python", "torch-export"):
                    pkg = load_model_package(packages["resnet", fmt], trust_code=True)
                    d[fmt] = VolumeExplainer(pkg, ExplainSettings(grids=grids, device="cpu", score=score,
                                                                   runtime=args.runtime)).explain_bscan(b).deltas
                pairs += [{"score": score, "format": fmt, "against": "torchscript",
                           "relative_difference": relative(d[fmt], d["torchscript"])}
                          for fmt in ("python", "torch-export")]
    worst = max(r["relative_difference"] / r["bound"] for r in rows)
    if args.json:
        print(json.dumps({"grids": args.grids, "rows": rows, "resnet_vs_torchscript": pairs,
                          "worst_share_of_bound": worst}, indent=1))
        return 0
    for r in rows:
        print(f"{r['model']:12s} {r['format']:13s} {r['score']:13s} {r['fill']:10s} max relative difference "
              f"{r['relative_difference']:.2e} (bound {r['bound']:.0e}); {r['memory_format']}")
    for r in pairs:
        print(f"resnet {r['format']:13s} vs torchscript, {r['score']:13s}: {r['relative_difference']:.2e}")
    print(f"worst difference / bound: {worst:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
