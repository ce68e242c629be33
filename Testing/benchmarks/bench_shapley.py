"""Benchmark: the cost per B-scan of DiDA's Shapley values against the paper's grids and captum's
ShapleyValueSampling over the same 7 x 7 cells.

    python Testing/benchmarks/bench_shapley.py --json
    python Testing/benchmarks/bench_shapley.py --device cuda --json

DiDA scores every class from each pass; captum's ShapleyValueSampling takes one class per call (its scorer must
return one number per image), so K classes cost K calls. All three are timed on the same model object, device,
image and batch size, interleaved over rounds (the best of each counts), so their ratios hold on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from DiDALib import PAPER_GRIDS, DiDAEngine, cell_index_map, describe_device, resolve_device  # noqa: E402
from DiDALib.engine.estimators import SHAPLEY_GRIDS, Shapley, estimator_passes  # noqa: E402
from DiDALib.evaluation.baselines import shapley_cells_map  # noqa: E402


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _timed(device: torch.device, work) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--model", default="efficientnet_b0", help="timm architecture (random weights)")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=4, help="K, the classes a full explanation needs (default 4)")
    p.add_argument("--grids", default=",".join(map(str, PAPER_GRIDS)), help="leave-one-out grids (default: the "
                   "paper's); their passes are the Shapley run's budget")
    p.add_argument("--shapley-grids", default=",".join(map(str, SHAPLEY_GRIDS)), help="the Shapley run's grids "
                   "(default %(default)s)")
    p.add_argument("--permutations", type=int, default=35, help="captum's permutations (default 35: 1,716 passes)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size of all three (default: DiDA's choice)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    import timm

    torch.manual_seed(0)
    device = resolve_device(args.device)
    model = timm.create_model(args.model, pretrained=False, num_classes=args.classes, in_chans=args.channels)
    engine = DiDAEngine(model, device=device, score="probabilities", fill=0.0, batch_size=args.batch_size)
    image = torch.rand(args.channels, args.input_size, args.input_size)
    grids = tuple(int(g) for g in args.grids.split(","))
    shapley_grids = tuple(int(g) for g in args.shapley_grids.split(","))
    shapley = Shapley(budget=estimator_passes(grids))
    engine.explain(image, grids=(3, 4))  # warm-up: kernels and the engine's batch-size choice
    batch = engine.batch_size
    x = image.to(device)
    fill = torch.zeros_like(x)
    cells = cell_index_map(args.input_size, args.input_size, 7)

    def scores(batch: torch.Tensor) -> torch.Tensor:  # captum's batches in the engine's memory format, as DiDA's
        return engine.scores(batch.contiguous(memory_format=engine.memory_format))

    _log(f"{args.model} {tuple(image.shape)} on {describe_device(device)}, batch {batch}")
    best = {"paper": float("inf"), "shapley": float("inf"), "captum": float("inf")}
    for r in range(args.rounds):
        seconds = {
            "paper": _timed(device, lambda: engine.explain(image, grids=grids)),
            "shapley": _timed(device, lambda: engine.explain(image, grids=shapley_grids, estimator=shapley)),
            "captum": _timed(device, lambda: shapley_cells_map(scores, x, fill, cells, 0, args.permutations,
                                                               batch_size=batch)),
        }
        best = {k: min(best[k], v) for k, v in seconds.items()}
        _log(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items()))
    out = {
        "device": describe_device(device),
        "model": args.model,
        "input": list(image.shape),
        "classes": args.classes,
        "batch_size": batch,
        "grids": list(grids),
        "shapley_grids": list(shapley_grids),
        "shapley_permutations": list(shapley.counts(shapley_grids)),
        "passes": {"paper": estimator_passes(grids), "shapley": estimator_passes(shapley_grids, shapley),
                   "captum_one_class": args.permutations * 49 + 1},
        "seconds_per_bscan": {"dida_paper_all_classes": round(best["paper"], 3),
                              "dida_shapley_all_classes": round(best["shapley"], 3),
                              "captum_shapley_one_class": round(best["captum"], 3)},
        "shapley_over_paper_seconds": round(best["shapley"] / best["paper"], 3),
        "speedup_vs_captum_one_class": round(best["captum"] / best["shapley"], 3),
        "speedup_vs_captum_all_classes": round(args.classes * best["captum"] / best["shapley"], 3),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k:>30}: {v}" for k, v in out.items()))
    return out


if __name__ == "__main__":
    main()
