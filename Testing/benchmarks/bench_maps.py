"""Benchmark: what the maps beyond the paper (contrasts, feature scale, en-face, their files and figures) add to a
``dida explain`` run, and that they cost no model pass.

    python Testing/benchmarks/bench_maps.py --json
    python Testing/benchmarks/bench_maps.py --explain 1 --repeats 2 --json   # the central B-scan only

After an untimed warm-up run on one B-scan, each repeat runs ``DiDALib.cli.explain.run_explain`` on ``dida demo``'s volume twice, interleaved (the order
alternates between repeats): *with* the maps (``--contrast top --view classes,contrast,scale``) and *without*
(``--contrast none --view classes``). The feature-scale labelmaps and the en-face maps are always written (there is
no switch for them), so the map step itself is also timed inside the run with the maps: ``plan_maps``,
``write_map_outputs`` and ``write_map_figures``, against the whole run. The interactive page carries the contrast
and scale maps too; its time is reported apart. The figure to read is ``added_share_median``: the
time of everything but the DiDA computation (files, figures, page), with the maps minus without, against the whole
run without them; the plain wall-time ratio is reported too, but on a shared machine the model's time swings more
than the maps cost. The model is wrapped to count its calls and images: both runs must
make exactly the same passes (asserted).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from DiDALib.cli import explain as explain_cli  # noqa: E402
from DiDALib.cli.demo import demo_volume  # noqa: E402
from DiDALib.io import run_folder  # noqa: E402
from DiDALib.io.run_maps import MapChoices  # noqa: E402
from DiDALib.models.package import load_model_package, phantom_model_path  # noqa: E402
from DiDALib.pipeline import ExplainSettings  # noqa: E402

WITH = MapChoices(contrasts=("top",), views=("classes", "contrast", "scale"))
WITHOUT = MapChoices(contrasts=(), views=("classes",))
MAP_STEPS = ("plan_maps", "write_map_outputs", "write_map_figures")


class CountingModel(torch.nn.Module):
    """The model, counting its forward calls and the images it scored."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.calls = 0
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += int(x.shape[0])
        return self.model(x)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def timed_steps(seconds: dict[str, float]):
    """Time the map step and the page inside ``run_explain`` (the names its writer, ``io.run_folder``, calls them by)."""
    names = (*MAP_STEPS, "_write_report")
    originals = {n: getattr(run_folder, n) for n in names}

    def wrap(name, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        return timed

    for n, fn in originals.items():
        setattr(run_folder, n, wrap(n, fn))
    try:
        yield
    finally:
        for n, fn in originals.items():
            setattr(run_folder, n, fn)


def one_run(package, volume, truths, indices, maps: MapChoices, device: str, batch: int, root: Path, tag: str) -> dict:
    model = package.model
    assert isinstance(model, CountingModel)
    calls0, images0 = model.calls, model.images
    out = root / tag
    steps: dict[str, float] = {}
    # As dida demo, but one fixed batch size: the CPU batch tuner otherwise picks per run from noisy timings, and
    # a different batch changes the run's time and its number of model calls.
    settings = ExplainSettings(device=device, classes="all", batch_size=batch)
    with timed_steps(steps):
        t0 = time.perf_counter()
        summary = explain_cli.run_explain(volume, package, settings, indices, out, truths=truths, quiet=True,
                                          maps=maps)
        wall = time.perf_counter() - t0
    files = len(summary["files"])
    shutil.rmtree(out)
    return {"wall_s": wall, "dida_s": summary["seconds"], "map_step_s": sum(steps.get(n, 0.0) for n in MAP_STEPS),
            "report_s": steps.get("_write_report", 0.0), "files": files,
            "model_calls": model.calls - calls0, "model_images": model.images - images0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bscans", type=int, default=9, help="B-scans of the demo volume (default 9)")
    ap.add_argument("--explain", type=int, help="explain only this many B-scans, the central ones (default: all)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=16, help="masked images per model call (default 16)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    package = load_model_package(phantom_model_path())
    package.model = CountingModel(package.model).eval()
    volume, truths = demo_volume(args.bscans)
    indices = list(range(volume.n_bscans))
    if args.explain:
        first = max(0, (volume.n_bscans - args.explain) // 2)
        indices = indices[first : first + args.explain]
    runs: dict[str, list[dict]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory(prefix="bench_maps_") as tmp:
        one_run(package, volume, truths, indices[:1], WITH, args.device, args.batch_size, Path(tmp), "warm-up")
        for rep in range(args.repeats):
            order = ("with", "without") if rep % 2 == 0 else ("without", "with")
            for name in order:
                r = one_run(package, volume, truths, indices, WITH if name == "with" else WITHOUT, args.device,
                            args.batch_size, Path(tmp), f"{name}{rep}")
                runs[name].append(r)
                _log(f"repeat {rep} {name}: {r['wall_s']:.1f} s (DiDA {r['dida_s']:.1f} s, map step "
                     f"{r['map_step_s']:.2f} s, page {r['report_s']:.2f} s), {r['model_calls']} model calls")
    passes = {(r["model_calls"], r["model_images"]) for rs in runs.values() for r in rs}
    assert len(passes) == 1, f"the runs made different model passes: {passes}"

    def med(name, key):
        return statistics.median(r[key] for r in runs[name])

    ratios = [w["wall_s"] / o["wall_s"] for w, o in zip(runs["with"], runs["without"])]
    shares = [r["map_step_s"] / r["wall_s"] for r in runs["with"]]
    # The model's own time swings with the shared machine's load far more than the maps cost, so the robust figure
    # is the time of everything but the DiDA computation (files, figures, page), with maps minus without, against
    # the whole run without them.
    extra = [(w["wall_s"] - w["dida_s"]) - (o["wall_s"] - o["dida_s"]) for w, o in zip(runs["with"], runs["without"])]
    added = [e / o["wall_s"] for e, o in zip(extra, runs["without"])]
    report = {
        "bscans": volume.n_bscans, "explained": indices, "repeats": args.repeats, "device": args.device, "grids": "paper (8)",
        "batch_size": args.batch_size,
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
        "model_calls_per_run": passes.pop()[0],
        "same_model_passes": True,
        "wall_s_with_maps": med("with", "wall_s"), "wall_s_without": med("without", "wall_s"),
        "ratio_with_over_without": ratios, "ratio_median": statistics.median(ratios),
        "dida_s_with": [r["dida_s"] for r in runs["with"]], "dida_s_without": [r["dida_s"] for r in runs["without"]],
        "outputs_s_added_by_maps": extra, "added_share_of_run_without": added,
        "added_share_median": statistics.median(added),
        "map_step_s": [r["map_step_s"] for r in runs["with"]],
        "map_step_share_of_run": shares, "map_step_share_median": statistics.median(shares),
        "map_step_s_without_contrast_figures": [r["map_step_s"] for r in runs["without"]],
        "page_s_with": [r["report_s"] for r in runs["with"]], "page_s_without": [r["report_s"] for r in runs["without"]],
        "files_with": runs["with"][0]["files"], "files_without": runs["without"][0]["files"],
        "goal": "maps add at most 10 % to a run's wall time and no model pass",
    }
    print(json.dumps(report, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
