"""The faithfulness benchmark's real-data mode: a model package on labelled real B-scans, no lesion masks.

    python Testing/benchmarks/bench_faithfulness.py --real /path/to/kermany2018 --json        # README's table
    python Testing/benchmarks/bench_faithfulness.py --real /path/to/kermany2018 --per-class 2 --json   # a look

The default model (``Resources/Models/kermany-oct``) explains validation B-scans of its own split (``split.csv``
in the package: patients it never trained on), the first ``--per-class`` of each class in that list that it
classifies right, for the true class. Each explainer's map is scored by deletion (most relevant first, and least
relevant first), ABPC (the area between those two curves) and insertion from a blurred copy, on the class's
probability, the removed pixels showing what DiDA shows in a masked cell (the default fill, ``background``).
Means come with 95 % bootstrap intervals over B-scans (stratified by class), and each of DiDA's readouts with paired
intervals against every other explainer; each explainer's seconds per B-scan are reported beside its passes.

The explainers are ``METHODS``, one entry each: a name and a function from the run's context and one B-scan to the
class's map and the model passes it used. Perturbation explainers get DiDA's budget (the paper's grids: 1,737
passes): DiDA's Shapley values (``--estimator shapley``: its default schedule, read as the phantom table reads
them, ``bench_faithfulness.shapley_maps``), RISE with as many masks, captum's occlusion with the window of the
phantom table scaled to the input and the finest stride within the budget, captum's Shapley value sampling over
DiDA's 7 x 7 cells with as many permutations as fit. Grad-CAM (one pass and its gradient) and the random and
centre maps are references.
"""

from __future__ import annotations

import csv
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench_faithfulness import SHAPLEY_MAIN, SHAPLEY_SCHEDULE, Counter, OnnxModel, paired, shapley_maps, summarise

from DiDALib import EVIDENCE_GRIDS, PAPER_GRIDS, DiDAEngine, evidence_map, mixed_image
from DiDALib.engine.estimators import SHAPLEY_GRIDS, Shapley, estimator_passes
from DiDALib.engine.grid import passes_per_image
from DiDALib.engine.masks import fill_image, gaussian_blur
from DiDALib.engine.result import DiDAResult
from DiDALib.engine.schedule import format_grids
from DiDALib.evaluation import baselines as B
from DiDALib.evaluation import metrics as M
from DiDALib.evaluation.dida_runs import part, probability_result
from DiDALib.evaluation.image_cases import ImageCase, image_cases
from DiDALib.maps.mixing import cell_map
from DiDALib.models.package import ModelPackage, demo_model_path, load_model_package
from DiDALib.pipeline import ExplainSettings, engine_fill

METRICS = ("deletion", "lerf", "abpc", "insertion")
BUDGET = passes_per_image(PAPER_GRIDS)  # DiDA's passes per B-scan with the paper's grids
OCCLUSION_WINDOW = 20 / 160  # the phantom table's same-budget window (20 px of a 160 px input), as a share of a side
SHAPLEY_GRID = 7  # DiDA's coarsest grid: 49 cells
SHAPLEY_PROBABILITIES = SHAPLEY_MAIN.split("|")[0] + "|prob"  # shapley_maps' probability map of the main schedule


def _log(message: str) -> None:
    print(f"[faithfulness real {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    """What every explainer of one run shares: the model (as counted scorer and as torch module), the fill, and
    each B-scan's DiDA run (computed once, over the paper's grids and the evidence schedule)."""

    package: ModelPackage
    scorer: Counter
    fill: object
    rise_masks: int
    shapley_samples: int
    occlusion: tuple[int, int]
    gradcam_layer: str
    seed: int
    _dida: dict = field(default_factory=dict)

    def dida(self, case: ImageCase, index: int) -> DiDAResult:
        """The probability-mode DiDA result of one B-scan over both schedules (one logit run, kept)."""
        if index not in self._dida:
            engine = DiDAEngine(self.scorer.logits, device="cpu", score="logits", fill=self.fill, batch_size=64,
                                class_names=self.package.spec.classes)
            # only the current B-scan's run is kept: each is used by the explainers of its B-scan alone
            self._dida = {index: probability_result(engine.explain(case.image, grids=union_grids(),
                                                                   region=case.region))}
        return self._dida[index]

    def fill_image(self, case: ImageCase) -> torch.Tensor:
        return fill_image(case.image, self.fill, case.region)


Explain = Callable[[Context, ImageCase, int], tuple[np.ndarray, int]]


@dataclass(frozen=True)
class Method:
    """One explainer of the table: its name and how it maps one B-scan (the (H, W) map of the case's class, larger
    meaning more evidence for it, and the model passes it used)."""

    name: str
    explain: Explain


def _dida_evidence(grids) -> Explain:
    def run(ctx: Context, case: ImageCase, i: int) -> tuple[np.ndarray, int]:
        return evidence_map(part(ctx.dida(case, i), grids), case.class_index), passes_per_image(grids)
    return run


def _dida_shapley(ctx: Context, case: ImageCase, i: int) -> tuple[np.ndarray, int]:
    maps, _ = shapley_maps(ctx.scorer, case, ctx.fill, candidates=False)  # the phantom table's run and readout
    return maps[SHAPLEY_PROBABILITIES]


def _dida_mixed(ctx: Context, case: ImageCase, i: int) -> tuple[np.ndarray, int]:
    return mixed_image(part(ctx.dida(case, i), PAPER_GRIDS), case.class_index).net, BUDGET


def _rise(ctx: Context, case: ImageCase, i: int) -> tuple[np.ndarray, int]:
    maps, n = B.rise_map(ctx.scorer.probabilities, case.image, ctx.fill_image(case), ctx.rise_masks, 7,
                         seed=ctx.seed + i)
    return maps[case.class_index], n


def _occlusion(ctx: Context, case: ImageCase, i: int) -> tuple[np.ndarray, int]:
    window, stride = ctx.occlusion
    maps, n = B.occlusion_map(ctx.scorer.probabilities, case.image, ctx.fill_image(case), window, stride)
    return maps[case.class_index], n


def _shapley(ctx: Context, case: ImageCase, i: int) -> tuple[np.ndarray, int]:
    cells = cell_map(ctx.dida(case, i), SHAPLEY_GRID)
    return B.shapley_cells_map(ctx.scorer.probabilities, case.image, ctx.fill_image(case), cells, case.class_index,
                               ctx.shapley_samples, seed=ctx.seed + i)


def _gradcam(ctx: Context, case: ImageCase, i: int) -> tuple[np.ndarray, int]:
    layer = ctx.package.model.get_submodule(ctx.gradcam_layer)
    return B.gradcam_map(ctx.package.model, case.image, case.class_index, layer)


def _random(ctx: Context, case: ImageCase, i: int) -> tuple[np.ndarray, int]:
    return B.random_map(tuple(case.image.shape[1:]), np.random.default_rng([ctx.seed, i])), 0


def _centre(ctx: Context, case: ImageCase, i: int) -> tuple[np.ndarray, int]:
    return B.centre_map(tuple(case.image.shape[1:])), 0


#: The explainers, in the table's order; the first is the one every other is paired against.
METHODS: tuple[Method, ...] = (
    Method("dida_evidence_evidence", _dida_evidence(EVIDENCE_GRIDS)),
    Method("dida_evidence_paper", _dida_evidence(PAPER_GRIDS)),
    Method("dida_shapley", _dida_shapley),
    Method("dida_mixed_display", _dida_mixed),
    Method("rise", _rise),
    Method("occlusion", _occlusion),
    Method("shapley_7x7", _shapley),
    Method("gradcam", _gradcam),
    Method("random", _random),
    Method("centre", _centre),
)


def union_grids() -> list:
    """The grids of DiDA's leave-one-out run of each B-scan: the paper's and the evidence schedule's."""
    return sorted(set(PAPER_GRIDS) | set(EVIDENCE_GRIDS), key=str)


def cost_per_bscan(rows: list[dict], dida_seconds: list[float], dida_passes: int) -> dict:
    """Mean seconds per B-scan of each explainer's own work (DiDA's leave-one-out entries only read the shared
    run), and of that shared run with its passes; the per-pass rates compare runs of different sizes."""
    out = {r["explainer"]: float(np.mean([x["seconds"] for x in rows if x["explainer"] == r["explainer"]]))
           for r in rows}
    run = float(np.mean(dida_seconds))
    out = {k: round(v, 3) for k, v in out.items()}
    return {"explainers": out, "dida_leave_one_out_run": {"passes": dida_passes, "seconds": round(run, 3),
                                                         "paper_grids_seconds_at_its_rate": round(
                                                             run * BUDGET / dida_passes, 3)}}


def same_budget_occlusion(height: int, width: int) -> tuple[int, int]:
    """The phantom table's occlusion window scaled to this input, at the finest stride within DiDA's budget."""
    window = round(OCCLUSION_WINDOW * min(height, width))
    stride = next(s for s in range(1, window + 1) if B.occlusion_passes(height, width, window, s) <= BUDGET)
    return window, stride


def validation_files(data: Path, split: Path) -> list[tuple[Path, str]]:
    """The validation B-scans of a package's split list (``path,class,patient,part``), in its order."""
    with open(split, newline="", encoding="utf-8") as f:
        return [(data / r["path"], r["class"]) for r in csv.DictReader(f) if r["part"] == "validation"]


def run_real(args) -> dict:
    """The real-data table: every explainer of ``METHODS`` on the validation B-scans, scored and summarised."""
    started = time.perf_counter()
    torch.manual_seed(0)
    package = load_model_package(args.model or demo_model_path())
    split = Path(args.split) if args.split else package.path / "split.csv"
    cases = image_cases(package, validation_files(Path(args.real), split), args.per_class)
    model = OnnxModel(package.model, cases[0].image) if args.backend == "onnx" else package.model
    scorer = Counter(model)
    _, h, w = cases[0].image.shape
    n_cells = SHAPLEY_GRID * SHAPLEY_GRID
    ctx = Context(package, scorer, engine_fill(args.default_fill, package), rise_masks=BUDGET,
                  shapley_samples=(BUDGET - 1) // n_cells, occlusion=same_budget_occlusion(h, w),
                  gradcam_layer=args.gradcam_layer, seed=args.seed)
    sigma = min(h, w) / 45  # RISE's insertion start: sigma 5 at 224 pixels
    methods = [m for m in METHODS if not args.methods or m.name in args.methods.split(",")]
    _log(f"{len(cases)} validation B-scans of {package.spec.name}; backend {args.backend}; explainers "
         f"{', '.join(m.name for m in methods)}")
    rows, dida_seconds = [], []
    for i, case in enumerate(cases):
        tick = time.perf_counter()
        ctx.dida(case, i)  # first, so that no explainer's count of passes (or seconds) includes it
        dida_seconds.append(time.perf_counter() - tick)
        maps, costs, seconds = [], [], []
        for method in methods:
            before, tick = scorer.images, time.perf_counter()
            m, passes = method.explain(ctx, case, i)
            seconds.append(time.perf_counter() - tick)
            maps.append(np.asarray(m, dtype=np.float32))
            costs.append(passes if method.name.startswith("dida_") or scorer.images == before
                         else scorer.images - before)
        tie = np.random.default_rng([args.seed, i, 1]).random(maps[0].shape)
        curves = M.perturbation_curves(scorer.probabilities, case.image, ctx.fill_image(case),
                                       gaussian_blur(case.image, sigma), maps, tie, args.steps)
        for method, cost, sec, cv in zip(methods, costs, seconds, curves):
            rows.append({"case": i, "label": case.label, "file": case.path.name, "explainer": method.name,
                         "score": "probabilities", "passes": cost, "seconds": sec,
                         **M.curve_metrics(cv, case.class_index)})
        _log(f"B-scan {i + 1}/{len(cases)} ({case.label}, {case.path.name}) done, {scorer.images} passes so far")
    classes = tuple(package.spec.classes)
    table = summarise(rows, args.bootstrap_seed, METRICS, classes)
    # every DiDA readout minus every other explainer over the same B-scans: which of DiDA's readouts leads is
    # what the table asks, so no one readout is chosen before the run
    pairs = {f"paired_{a.name}_minus": {f"vs_{b.name}": paired(rows, f"{a.name}|probabilities",
                                                               f"{b.name}|probabilities", args.bootstrap_seed, METRICS)
                                        for b in methods if b is not a}
             for a in methods if a.name.startswith("dida_")}
    return {
        "benchmark": "faithfulness-real",
        "command": " ".join(["python", "Testing/benchmarks/bench_faithfulness.py", *args.argv]),
        "model": package.spec.name,
        "split": str(split.name),
        "backend": args.backend,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "bscans": {c: sum(x.label == c for x in cases) for c in classes},
        "files": [c.path.name for c in cases],
        "steps": args.steps,
        "fill": args.default_fill,
        "schedules": {"paper": {"grids": format_grids(PAPER_GRIDS), "passes": BUDGET},
                      "evidence": {"grids": format_grids(EVIDENCE_GRIDS),
                                   "passes": passes_per_image(EVIDENCE_GRIDS)},
                      "shapley": {"grids": format_grids(SHAPLEY_GRIDS),
                                  "passes": estimator_passes(SHAPLEY_GRIDS, Shapley())}},
        "budgets": {"rise_masks": ctx.rise_masks, "occlusion_window_stride": list(ctx.occlusion),
                    "shapley_permutations": ctx.shapley_samples, "gradcam_layer": ctx.gradcam_layer},
        "main": table,
        **pairs,
        "seconds_per_bscan": cost_per_bscan(rows, dida_seconds, passes_per_image(union_grids())),
        "passes_made": scorer.images,
        "seconds": round(time.perf_counter() - started, 1),
    }


def markdown(out: dict) -> str:
    """The tables README quotes: each explainer's passes and metrics, mean [95 % interval]; the first explainer
    minus each other over the same B-scans; and ABPC per class."""
    def cell(v: list[float]) -> str:
        return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"

    lines = ["| explainer | passes | deletion (lower better) | insertion | ABPC |", "|---|---|---|---|---|"]
    for key, e in out["main"].items():
        lines.append(f"| {key.split('|')[0]} | {e['passes']:,} | "
                     + " | ".join(cell(e[m]) for m in ("deletion", "insertion", "abpc")) + " |")
    for key, pairs in ((k, v) for k, v in out.items() if k.startswith("paired_")):
        first = key.removeprefix("paired_").removesuffix("_minus")
        lines += ["", f"| {first} minus | deletion (negative: better) | insertion | ABPC |", "|---|---|---|---|"]
        for name, d in pairs.items():
            lines.append(f"| {name.removeprefix('vs_')} | " + " | ".join(cell(d[m]) for m in ("deletion",
                                                                                             "insertion", "abpc"))
                         + " |")
    classes = list(out["bscans"])
    lines += ["", "| explainer (ABPC) | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
    for key, e in out["main"].items():
        lines.append(f"| {key.split('|')[0]} | " + " | ".join(f"{e['per_class'][c]['abpc']:.3f}" for c in classes)
                     + " |")
    if "seconds_per_bscan" in out:
        cost = out["seconds_per_bscan"]
        run = cost["dida_leave_one_out_run"]
        lines += ["", "| explainer | seconds per B-scan (its own work) |", "|---|---|",
                  f"| DiDA leave-one-out run, both schedules ({run['passes']:,} passes) | {run['seconds']:.2f} |",
                  f"| the same at its rate, paper grids' {BUDGET:,} passes | "
                  f"{run['paper_grids_seconds_at_its_rate']:.2f} |"]
        lines += [f"| {name} | {sec:.2f} |" for name, sec in cost["explainers"].items()]
    return "\n".join(lines)
