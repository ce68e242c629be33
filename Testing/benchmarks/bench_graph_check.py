"""Benchmark: what checking a TorchScript or torch.export package's program (``DiDALib.models.graph_check``) costs
against loading it, on a real network.

    python Testing/benchmarks/bench_graph_check.py --json                      # EfficientNet-B0 from timm, 224
    python Testing/benchmarks/bench_graph_check.py --model resnet18 --json

The network (random weights) is saved three ways: ``torch.jit.script``, ``torch.jit.trace`` and
``torch.export`` (dynamic batch). For each, in ``--rounds`` interleaved rounds: the check before loading (the
archive's source or serialized graph, no torch needed), ``torch.jit.load`` / ``torch.export.load``, and the check of
the loaded program; medians in seconds, and ``check_share`` = both checks / loading. Every variant must pass the
check (asserted): a real network calls tensor operators only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from DiDALib.models import graph_check  # noqa: E402


def _save(net: torch.nn.Module, how: str, folder: Path, size: int) -> Path:
    x = torch.zeros(2, 3, size, size)
    if how == "export":
        path = folder / "model.pt2"
        batch = torch.export.Dim("batch", min=1, max=64)
        torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: batch},)), str(path))
        return path
    path = folder / f"model-{how}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated; packages still use it
        torch.jit.save(torch.jit.script(net) if how == "script" else torch.jit.trace(net, x), str(path))
    return path


def _round(how: str, path: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    (graph_check.scan_export_archive if how == "export" else graph_check.scan_torchscript_archive)(path)
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.load(str(path)) if how == "export" else torch.jit.load(str(path))
    t2 = time.perf_counter()
    (graph_check.check_export_program if how == "export" else graph_check.check_torchscript_module)(program)
    t3 = time.perf_counter()
    return {"check_before_s": t1 - t0, "load_s": t2 - t1, "check_after_s": t3 - t2}


def main() -> dict:
    import timm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_b0", help="a timm model name (default: %(default)s)")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = timm.create_model(args.model, num_classes=4).eval()
    out: dict = {"model": args.model, "input_size": args.input_size, "torch": torch.__version__,
                 "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {how: _save(net, how, Path(tmp), args.input_size) for how in ("script", "trace", "export")}
        rounds: dict[str, list[dict]] = {how: [] for how in paths}
        for _ in range(args.rounds):
            for how, path in paths.items():  # interleaved: the machine's drift spreads over all three
                rounds[how].append(_round(how, path))
        for how, rs in rounds.items():
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            med["check_share"] = (med["check_before_s"] + med["check_after_s"]) / med["load_s"]
            out[how] = {k: round(v, 4) for k, v in med.items()}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for how in ("script", "trace", "export"):
            r = out[how]
            print(f"{how:7s} check before {r['check_before_s']:.3f} s, load {r['load_s']:.3f} s, check after "
                  f"{r['check_after_s']:.3f} s: checks = {r['check_share']:.2f} x loading")
    return out


if __name__ == "__main__":
    main()
