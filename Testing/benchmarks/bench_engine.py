"""Benchmark: DiDA against the model's own best batched throughput and against captum's FeatureAblation, on each
CPU runtime (``DiDALib.runtime``).

    python Testing/benchmarks/bench_engine.py --json
    python Testing/benchmarks/bench_engine.py --model resnet18 --runtimes torch,onnxruntime,openvino,auto --json
    python Testing/benchmarks/bench_engine.py --package Resources/DemoModel --json
    python Testing/benchmarks/bench_engine.py --device cuda --precision auto --runtimes torch --volume 128 --json

Every ratio is against a baseline measured in the same run, on the same model object, device and precision, the
runtimes' rounds interleaved. Per runtime: the model's own best throughput through that runtime (``model``), and
DiDA's on it; ``efficiency`` is DiDA on the last runtime listed (``auto`` by default: the one it chose) over that
runtime's own best, ``speedup_vs_torch`` DiDA on it over eager torch's own best, ``speedup_vs_captum`` captum's
seconds over DiDA's on it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from DiDALib import DEFAULT_GRIDS, DiDAEngine, cell_index_map, describe_device, resolve_device  # noqa: E402
from DiDALib.engine.grid import passes_per_image  # noqa: E402


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_throughput(engine: DiDAEngine, image: torch.Tensor, bs: int, seconds: float) -> float:
    """The model's images/s at one batch size (same precision, memory format and call path as the engine, the
    B-scan DiDA explains repeated on the device: no masks, no transfers). Using the same pixels keeps any
    data-dependent cost, such as denormal arithmetic on a CPU, out of the ratio."""
    x = image.to(engine.device)[None].repeat(bs, 1, 1, 1)  # the engine puts it in the model's memory format
    for _ in range(2):
        engine.scores(x)
    _sync(engine.device)
    n, t0 = 0, time.perf_counter()
    while True:
        engine.scores(x)
        n += bs
        _sync(engine.device)
        if time.perf_counter() - t0 >= seconds and n >= 3 * bs:
            return n / (time.perf_counter() - t0)


def settle_runtime(engine: DiDAEngine, image: torch.Tensor) -> None:
    """Let the engine choose its runtime as it would for a B-scan on the paper's grids (the run is stopped after
    one batch), whatever grids are timed: ``auto`` keeps torch for runs too short to repay the choice."""
    from DiDALib.engine.core import DiDACancelled

    try:
        engine.explain(image, grids=DEFAULT_GRIDS, cancel=lambda: engine.runtime_choice is not None)
    except DiDACancelled:
        pass


def time_dida(engine: DiDAEngine, image: torch.Tensor, grids) -> float:
    _sync(engine.device)
    t0 = time.perf_counter()
    engine.explain(image, grids=grids)  # returns host numpy: the time includes the copy back
    return time.perf_counter() - t0


def time_captum(model, image: torch.Tensor, grids, device, fill: float) -> float:
    from captum.attr import FeatureAblation

    x = image[None].to(device)
    h, w = x.shape[-2:]
    masks = [torch.from_numpy(cell_index_map(h, w, n)).view(1, 1, h, w).to(device) for n in grids]
    ablation = FeatureAblation(model)
    _sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        for mask in masks:
            ablation.attribute(x, target=None, feature_mask=mask, baselines=fill, perturbations_per_eval=64)
    _sync(device)
    return time.perf_counter() - t0


def time_volume(engine: DiDAEngine, shape, grids, n: int) -> dict:
    volume = np.random.default_rng(0).random((n, *shape), dtype=np.float32)  # on the host, as a loaded volume
    if engine.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(engine.device)
    _sync(engine.device)
    t0 = time.perf_counter()
    count = sum(1 for _ in engine.explain_volume(volume, grids=grids))
    seconds = time.perf_counter() - t0
    out = {"volume_bscans": count, "volume_seconds": round(seconds, 3), "bscans_per_s": round(count / seconds, 3)}
    if engine.device.type == "cuda":
        out["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(engine.device) / 2**20, 1)
    return out


def load_model(args):
    """The model, its input image and its name: a timm architecture with random weights on a random image, or a
    model package on a phantom B-scan made into its input."""
    if args.package:
        from DiDALib.models.package import load_model_package
        from DiDALib.models.preprocess import preprocess_bscan
        from DiDALib.phantom import make_volume

        package = load_model_package(args.package, trust_code=args.trust_code)
        bscans, _, _ = make_volume(n_bscans=1, seed=4)
        return package.model, preprocess_bscan(bscans[0], package.spec)[0], package.spec.name, Path(args.package)
    import timm

    model = timm.create_model(args.model, pretrained=False, num_classes=args.classes, in_chans=args.channels)
    return model, torch.rand((args.channels, args.input_size, args.input_size)), args.model, None


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--model", default="efficientnet_b0", help="timm architecture (random weights)")
    p.add_argument("--package", help="a model package instead (e.g. Resources/DemoModel), on a phantom B-scan")
    p.add_argument("--trust-code", action="store_true", help="run a python: package's own code")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--grids", default=",".join(map(str, DEFAULT_GRIDS)), help="comma-separated grid sizes")
    p.add_argument("--precision", default="float32", help="float32, bfloat16, float16 or auto")
    p.add_argument("--runtimes", default="torch,auto", help="comma-separated runtimes, each timed (torch is always "
                   "among them: the baseline); the last is the one efficiency and the speed-ups are of")
    p.add_argument("--compile", nargs="?", const=True, default=False, help="torch.compile (optionally a mode) on "
                   "the torch runtime's engine (CUDA graphs with reduce-overhead)")
    p.add_argument("--batch-size", type=int, default=None, help="DiDA batch size (default: the engine's choice)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of DiDA and model timings; the best of each counts")
    p.add_argument("--seconds", type=float, default=2.0, help="time per batch size in the model's batch-size sweep")
    p.add_argument("--volume", type=int, default=0, help="also time a whole N-B-scan volume end to end")
    p.add_argument("--skip-captum", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    from DiDALib.runtime import RuntimeRequest, check_runtime

    torch.manual_seed(0)
    device = resolve_device(args.device)
    grids = tuple(int(g) for g in args.grids.split(","))
    runtimes = list(dict.fromkeys(["torch", *(check_runtime(r.strip()) for r in args.runtimes.split(","))]))
    main_runtime = runtimes[-1]
    model, image, name, package = load_model(args)
    shape = tuple(image.shape)
    engines = {}
    for r in runtimes:
        engines[r] = DiDAEngine(model, device=device, fill=0.0, batch_size=args.batch_size, precision=args.precision,
                                compile=args.compile if r == "torch" else False, runtime=RuntimeRequest(r, package))
        _log(f"{r}: choosing and warming up on {describe_device(device)}: {name} {shape}, grids {grids}")
        settle_runtime(engines[r], image)
        engines[r].explain(image, grids=grids[:4])  # warm-up: allocator, kernels, the engine's batch-size choice
        _log(f"{r}: {engines[r].runtime_choice.describe()}")
    candidates = [1, 2, 4, 8, 16, 32, 64] if device.type == "cpu" else [64, 128, 256, 512, 1024, 2048]
    # Each round, for each runtime: a short sweep finds the model's best batch size on that runtime, DiDA runs once,
    # then the model alone runs at that batch size for as long as DiDA took, so both figures come from windows of the
    # same length (short windows catch the machine's fast moments and would flatter the baseline). Rounds and
    # runtimes interleave against drift; each keeps its best.
    figures = {r: {"dida_seconds": float("inf"), "model_ips": 0.0, "per_bs": {}} for r in runtimes}
    for rnd in range(args.rounds):
        for r, engine in engines.items():
            f = figures[r]
            for bs in sorted(set(candidates) | {engine.batch_size}):
                try:
                    f["per_bs"][bs] = max(f["per_bs"].get(bs, 0.0), model_throughput(engine, image, bs, args.seconds))
                except torch.OutOfMemoryError:
                    break
            f["best_bs"] = max(f["per_bs"], key=f["per_bs"].get)
            seconds = time_dida(engine, image, grids)
            f["dida_seconds"] = min(f["dida_seconds"], seconds)
            f["model_ips"] = max(f["model_ips"], model_throughput(engine, image, f["best_bs"], seconds))
            _log(f"round {rnd + 1}, {r}: DiDA {seconds:.2f} s; model at batch {f['best_bs']}: {f['model_ips']:.1f} "
                 "images/s (best so far)")
    passes = passes_per_image(grids)
    per_runtime = {}
    for r, f in figures.items():
        choice = engines[r].runtime_choice
        per_runtime[r] = {
            "runs_on": choice.name,
            "reason": choice.reason,
            "model_images_per_s": round(f["model_ips"], 2),
            "model_best_batch_size": f["best_bs"],
            "model_images_per_s_by_batch": {str(k): round(v, 2) for k, v in f["per_bs"].items()},  # short windows
            "dida_seconds": round(f["dida_seconds"], 3),
            "dida_images_per_s": round(passes / f["dida_seconds"], 2),
            "dida_batch_size": engines[r].batch_size,
            "efficiency": round(passes / f["dida_seconds"] / f["model_ips"], 4),
        }
    main = per_runtime[main_runtime]
    torch_model_ips = figures["torch"]["model_ips"]
    out = {
        "device": describe_device(device),
        "model": name,
        "input": list(shape),
        "grids": list(grids),
        "precision": str(engines["torch"].dtype).removeprefix("torch."),
        "compile": args.compile,
        "masked_images": passes - 1,
        "runtime": main_runtime,
        "runs_on": main["runs_on"],
        "dida_batch_size": main["dida_batch_size"],
        "model_images_per_s": main["model_images_per_s"],
        "model_best_batch_size": main["model_best_batch_size"],
        "dida_seconds": main["dida_seconds"],
        "dida_images_per_s": main["dida_images_per_s"],
        "efficiency": main["efficiency"],
        "torch_model_images_per_s": round(torch_model_ips, 2),
        "speedup_vs_torch": round(passes / figures[main_runtime]["dida_seconds"] / torch_model_ips, 3),
        "runtimes": per_runtime,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if not args.skip_captum:
        _log("captum FeatureAblation")
        captum_seconds = time_captum(engines["torch"].model, image, grids, device, 0.0)
        out["captum_seconds"] = round(captum_seconds, 3)
        out["speedup_vs_captum"] = round(captum_seconds / figures[main_runtime]["dida_seconds"], 3)
    if args.volume:
        _log(f"volume of {args.volume} B-scans")
        out.update(time_volume(engines[main_runtime], shape, grids, args.volume))
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>28}: {v}")
    return out


if __name__ == "__main__":
    main()
