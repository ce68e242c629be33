"""Benchmark: how faithful DiDA's maps are, against Grad-CAM, RISE, single-scale occlusion and sanity maps.

    python Testing/benchmarks/bench_faithfulness.py --json                       # the defaults (docs/faithfulness.md)
    python Testing/benchmarks/bench_faithfulness.py --per-class 2 --fill-per-class 1 --json     # a quick look
    python Testing/benchmarks/bench_faithfulness.py --seed 4099 --per-class 3 --candidates --json  # the selection
    python Testing/benchmarks/bench_faithfulness.py --seed 4099 --per-class 3 --shapley-candidates --fills background --json
    python Testing/benchmarks/bench_faithfulness.py --real /path/to/kermany2018 --json   # real B-scans (below)

The phantom model (``Resources/DemoModel``) explains synthetic phantoms whose lesions are known pixel by pixel, drawn from a seed no
test uses (the default 31337), keeping those the model classifies right. Every map is scored for the true class
with the metrics of ``DiDALib.evaluation.metrics`` (pointing game, relevance mass, deletion AUC most relevant
first, ABPC = LeRF minus MoRF deletion AUC, insertion AUC from a blurred start), deletion filling pixels as DiDA
fills its cells. Means come with 95 % bootstrap intervals over phantoms (stratified by lesion class), and DiDA's
evidence map with paired intervals against each baseline. The oracle map must beat the random map on every metric,
for every fill, or the run fails (exit code 1): that checks the metric code itself.

``--candidates`` adds the grid schedules and readouts the evidence schedule was chosen from; that is run on the
selection seed 4099 only, so the reported phantoms never took part in the choice; ``--shapley-candidates`` does the
same for the Shapley estimator's schedules, readouts and score modes.

``--real DATA`` is the real-data mode (``faithfulness_real.py``): the bundled demo model on validation B-scans of
its split, deletion, insertion and ABPC for DiDA and the other explainers at the same budget (no lesion masks).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # faithfulness_real.py, the real-data mode

from DiDALib import EVIDENCE_GRIDS, PAPER_GRIDS, DiDAEngine, evidence_map, mixed_image  # noqa: E402
from DiDALib.engine.grid import cell_index_map, grid_size, passes_per_image  # noqa: E402
from DiDALib.engine.masks import fill_image, gaussian_blur  # noqa: E402
from DiDALib.engine.schedule import format_grids, offset_grids  # noqa: E402
from DiDALib.engine.estimators import SHAPLEY_GRIDS, Shapley, estimator_passes  # noqa: E402
from DiDALib.evaluation import baselines as B  # noqa: E402
from DiDALib.evaluation import metrics as M  # noqa: E402
from DiDALib.evaluation.cases import LESIONS, phantom_cases  # noqa: E402
from DiDALib.evaluation.dida_runs import all_modes_model, part, probability_result, split_modes  # noqa: E402
from DiDALib.maps.mixing import cell_map  # noqa: E402
from DiDALib.models.package import load_model_package, phantom_model_path  # noqa: E402
from DiDALib.pipeline import ExplainSettings, engine_fill  # noqa: E402

BENCH_SEED = 31337  # phantoms of the report: no test, no training run and no selection uses this seed
SELECTION_SEED = 4099  # phantoms the evidence schedule, its readout, the fill and the occlusion window were chosen on
FILLS = ("black", "mean", "blur", "background")
DEFAULT_FILL = ExplainSettings().fill  # the library's default, "background", chosen by the fill study
FLUID = ("wet_amd", "macular_oedema")
METRICS = ("pointing", "mass", "deletion", "abpc", "insertion", "lerf")
OCCLUSION_SAME_BUDGET = (20, 4)  # window, stride: the best of 12/4, 20/4, 28/4 on the selection seed (<= 1,716 passes)
CANDIDATE_WINDOWS = [(12, 4), (28, 4)]  # occlusion windows the same-budget one was chosen from (with 20/4)
CANDIDATE_SCHEDULES = {
    "4,7,10,13:2": offset_grids((4, 7, 10, 13), 2),
    "5,10,15:2": offset_grids((5, 10, 15), 2),
    "4,8,12:2": offset_grids((4, 8, 12), 2),
    "3,5,8,12:2": offset_grids((3, 5, 8, 12), 2),
    "5,9:3": offset_grids((5, 9), 3),
    "4,6,9:3": offset_grids((4, 6, 9), 3),
    "3,6,9:3": offset_grids((3, 6, 9), 3),
}
#: DiDA's Shapley estimator: the schedule of the main table, and (``--shapley-candidates``) those it was chosen from, each
#: (grids, permutations per grid or None for ``split_budget``'s), all within the paper's 1,737 passes.
SHAPLEY_SCHEDULE = {",".join(map(str, SHAPLEY_GRIDS)): (SHAPLEY_GRIDS, None)}
SHAPLEY_CANDIDATES = {
    "7": ((7,), None),
    "9": ((9,), None),
    "7,11": ((7, 11), None),
    "7,11/16,8": ((7, 11), (16, 8)),
    "5,9": ((5, 9), None),
    "7:2": (offset_grids((7,), 2), None),
}
CAPTUM_SHAPLEY = (7, 35)  # captum ShapleyValueSampling: 7 x 7 cells, 35 permutations (1,716 passes per class)
CAPTUM_MAP = f"captum_shapley_{CAPTUM_SHAPLEY[0]}x{CAPTUM_SHAPLEY[0]}"
SHAPLEY_MAIN = f"dida_shapley_{next(iter(SHAPLEY_SCHEDULE))}|probabilities"
MODES = {"prob": "probabilities", "logit": "logits", "logodds": "log-odds"}


def _log(message: str) -> None:
    print(f"[faithfulness {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class OnnxModel:
    """The same network run by onnxruntime: logits within 1e-6 of PyTorch's and every metric of a run identical
    (``--backend torch`` checks it), about 2.5 times faster than channels-last eager PyTorch for this small model
    on a 2-core CPU. Takes and returns torch tensors, so DiDA, captum and RISE call it as the model."""

    def __init__(self, model: torch.nn.Module, example: torch.Tensor):
        import onnxruntime as ort

        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, example[None], buf, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"x": a})[0])


class Counter:
    """Counts the images a scorer is asked for (the passes each explainer and metric really made)."""

    def __init__(self, model):
        self.model, self.images = model, 0

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        with torch.no_grad():
            return self.model(x)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x).float(), dim=1)


# -- DiDA's readouts -------------------------------------------------------------------------------------------


def _candidate_readouts(result, k: int) -> dict[str, np.ndarray]:
    """Readouts the evidence map was chosen from (``--candidates``): per-size means over offsets of d, then a
    uniform mean over sizes (the chosen one, ``evidence_map``), finer sizes heavier, each size scaled to its largest
    |d|, or d per cell area."""
    _, _, h, w = result.region
    sizes = sorted({grid_size(g) for g in result.grids})
    per, dens = {}, {}
    for n in sizes:
        grids = [g for g in result.grids if grid_size(g) == n]
        acc, acc_d = np.zeros((h, w)), np.zeros((h, w))
        for g in grids:
            cells = cell_map(result, g)
            d = result.deltas[g][k].ravel().astype(np.float64)
            area = np.bincount(cells.ravel(), minlength=d.size)
            acc += d[cells]
            acc_d += (d / area * (h * w / d.size))[cells]
        per[n], dens[n] = acc / len(grids), acc_d / len(grids)
    fine = np.array([1 + 0.5 * (n - sizes[0]) / max(1, sizes[-1] - sizes[0]) for n in sizes])
    norm = [per[n] / max(np.abs(per[n]).max(), 1e-12) for n in sizes]
    return {
        "fine": sum(wi * per[n] for wi, n in zip(fine / fine.sum(), sizes)),
        "norm": sum(norm) / len(sizes),
        "density": sum(dens.values()) / len(sizes),
    }


def dida_maps(logit_result, k: int, schedules: dict, candidates: bool) -> dict[str, tuple[np.ndarray, int]]:
    """Every DiDA map of one case from one logit run over the union of the schedules, in both score modes."""
    out = {}
    for mode, result in (("prob", probability_result(logit_result)), ("logit", logit_result)):
        paper = part(result, PAPER_GRIDS)
        cost = passes_per_image(PAPER_GRIDS)
        out[f"dida_mixed_display|{mode}"] = (mixed_image(paper, k).net, cost)
        out[f"dida_mixed_linear|{mode}"] = (mixed_image(paper, k, gamma=1.0).net, cost)
        for name, grids in schedules.items():
            sub = part(result, grids)
            out[f"dida_evidence_{name}|{mode}"] = (evidence_map(sub, k), passes_per_image(grids))
            if candidates and name != "paper":
                for readout, m in _candidate_readouts(sub, k).items():
                    out[f"dida_{readout}_{name}|{mode}"] = (m, passes_per_image(grids))
    return out


def shapley_maps(scorer: Counter, case, value, candidates: bool) -> tuple[dict[str, tuple[np.ndarray, int]], float]:
    """DiDA's Shapley readouts of one case (phantom or real B-scan), every score mode from the same passes
    (``all_modes_model``): the evidence map of the main schedule, and with ``candidates`` every candidate schedule
    and readout. Returns them and the seconds of the main schedule's run (all classes)."""
    engine = DiDAEngine(all_modes_model(scorer.logits), device="cpu", score="logits", fill=value, batch_size=64)
    out, seconds = {}, 0.0
    for name, (grids, counts) in (SHAPLEY_CANDIDATES if candidates else SHAPLEY_SCHEDULE).items():
        started = time.perf_counter()
        result = engine.explain(case.image, grids=grids, region=case.region, estimator=Shapley(counts))
        if name in SHAPLEY_SCHEDULE:
            seconds = time.perf_counter() - started
        passes = estimator_passes(grids, Shapley(counts))
        for mode, res in split_modes(result).items():
            tag = {v: k for k, v in MODES.items()}[mode]
            out[f"dida_shapley_{name}|{tag}"] = (evidence_map(res, case.class_index), passes)
            if candidates:  # a Shapley value is its cell's share of the total: per area it is a density
                out[f"dida_shapley_density_{name}|{tag}"] = (_candidate_readouts(res, case.class_index)["density"],
                                                             passes)
    return out, seconds


def captum_shapley(ctx: dict, case, fill_img) -> tuple[tuple[np.ndarray, int], float]:
    """captum's ShapleyValueSampling over DiDA's 7 x 7 cells, the true class only (one class per call), timed."""
    cells, permutations = CAPTUM_SHAPLEY
    _, _, h, w = case.region  # the phantoms' region is the whole input
    started = time.perf_counter()
    m = B.shapley_cells_map(ctx["scorer"].probabilities, case.image, fill_img, cell_index_map(h, w, cells),
                            case.class_index, permutations, seed=ctx["args"].seed)
    return m, time.perf_counter() - started


# -- one fill over all cases -----------------------------------------------------------------------------------


def _fluid_cell_share(prob_result, fluid: list[int], grids, threshold: float = 0.05) -> float:
    """Share of masked cells that raise the fluid classes' summed probability by more than ``threshold``."""
    d = np.concatenate([prob_result.deltas[g][fluid].sum(axis=0).ravel() for g in grids])
    return float(np.mean(d < -threshold))


def run_fill(ctx: dict, fill: str, cases, normals, baselines: bool) -> tuple[list[dict], dict]:
    """Every map of every case with one fill (DiDA always; the other explainers, and any candidates, when
    ``baselines``), scored, and how often the fill itself adds evidence for a fluid class on phantoms without
    fluid."""
    package, scorer, args = ctx["package"], ctx["scorer"], ctx["args"]
    classes = package.spec.classes
    fluid = [classes.index(c) for c in FLUID]
    value = engine_fill(fill, package)
    engine = DiDAEngine(scorer.logits, device="cpu", score="logits", fill=value, batch_size=64, class_names=classes)
    schedules = ctx["schedules"] if baselines else {"paper": PAPER_GRIDS, "evidence": EVIDENCE_GRIDS}
    union = sorted(set().union(*map(set, schedules.values())))
    windows = [(20, 10), OCCLUSION_SAME_BUDGET] + (CANDIDATE_WINDOWS if args.candidates else [])
    rows, cells = [], []
    for i, case in enumerate(cases):
        x, k = case.image, case.class_index
        fill_img = fill_image(x, value, case.region)
        result = engine.explain(x, grids=union, region=case.region)
        maps = dida_maps(result, k, schedules, args.candidates and baselines)
        if case.label not in FLUID:
            cells.append(_fluid_cell_share(probability_result(result), fluid, EVIDENCE_GRIDS))
        if baselines:
            for w, s in windows:
                o, n = B.occlusion_map(scorer.probabilities, x, fill_img, w, s)
                maps[f"occlusion_{w}_{s}"] = (o[k], n)
            r, n = B.rise_map(scorer.probabilities, x, fill_img, args.rise_masks, args.rise_cells, seed=args.seed + i)
            maps[f"rise_{args.rise_masks}"] = (r[k], n)
            maps["gradcam_layer3"] = ctx["gradcam"][i]
            shapley, ctx["cost"]["dida_shapley_s"][i] = shapley_maps(scorer, case, value, args.shapley_candidates)
            maps.update(shapley)
            maps[CAPTUM_MAP], ctx["cost"]["captum_shapley_s"][i] = captum_shapley(ctx, case, fill_img)
        shape = case.input_mask.shape
        maps["random"] = (B.random_map(shape, np.random.default_rng([args.seed, i])), 0)
        maps["centre"] = (B.centre_map(shape), 0)
        maps["oracle"] = (B.oracle_map(case.input_mask), 0)
        names = list(maps)
        tie = np.random.default_rng([args.seed, i, 1]).random(shape)
        curves = M.perturbation_curves(scorer.probabilities, x, fill_img, ctx["blur"](x), [maps[n][0] for n in names],
                                       tie, args.steps)
        for name, cv in zip(names, curves):
            explainer, _, mode = name.partition("|")
            rows.append({"case": i, "label": case.label, "fill": fill, "explainer": explainer,
                         "score": MODES.get(mode, "probabilities"),
                         "passes": maps[name][1], **M.map_metrics(maps[name][0], case.input_mask, cv, k)})
        _log(f"{fill}: case {i + 1}/{len(cases)} ({case.label}) done, {scorer.images} passes so far")
    rises = []
    for i, case in enumerate(normals):  # random deletion with this fill: does it raise a fluid class?
        x = case.image
        maps = [B.random_map(case.input_mask.shape, np.random.default_rng([args.seed, 100 + i, j])) for j in range(3)]
        tie = np.random.default_rng([args.seed, 100 + i, 9]).random(case.input_mask.shape)
        for cv in M.perturbation_curves(scorer.probabilities, x, fill_image(x, value, case.region), ctx["blur"](x),
                                        maps, tie, args.steps):
            f = cv.morf[:, fluid].sum(axis=1)
            rises.append(float(f[1 : args.steps // 2 + 1].max() - f[0]))
    injection = {
        "random_deletion_fluid_rise_mean": round(float(np.mean(rises)), 4),
        "random_deletion_fluid_rise_over_0.1": round(float(np.mean(np.array(rises) > 0.1)), 3),
        "dida_cells_raising_fluid_over_0.05": round(float(np.mean(cells)), 4) if cells else None,
        "phantoms": sorted({c.label for c in normals}),
        "random_maps": len(rises),
    }
    return rows, injection


# -- summaries ---------------------------------------------------------------------------------------------------


def _select(rows, **where):
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def _interval(values, labels, seed) -> list[float]:
    return [round(v, 4) for v in M.bootstrap_mean(np.asarray(values), np.asarray(labels), seed=seed)]


def summarise(rows: list[dict], seed: int, metrics: tuple[str, ...] = METRICS,
              classes: tuple[str, ...] = LESIONS) -> dict:
    """Per explainer and score mode: every metric's mean with its bootstrap interval, and per class."""
    out = {}
    for key in dict.fromkeys((r["explainer"], r["score"]) for r in rows):
        rs = sorted(_select(rows, explainer=key[0], score=key[1]), key=lambda r: r["case"])
        labels = [r["label"] for r in rs]
        entry = {m: _interval([r[m] for r in rs], labels, seed) for m in metrics}
        entry["passes"] = rs[0]["passes"]
        entry["per_class"] = {c: {m: round(float(np.mean([r[m] for r in rs if r["label"] == c])), 4)
                                  for m in metrics} for c in classes if c in labels}
        out[f"{key[0]}|{key[1]}"] = entry
    return out


def paired(rows: list[dict], a: str, b: str, seed: int, metrics: tuple[str, ...] = METRICS) -> dict:
    """Mean difference a - b per metric over the same images, with its bootstrap interval."""
    ra = {r["case"]: r for r in rows if f"{r['explainer']}|{r['score']}" == a}
    rb = {r["case"]: r for r in rows if f"{r['explainer']}|{r['score']}" == b}
    common = sorted(set(ra) & set(rb))
    labels = [ra[c]["label"] for c in common]
    return {m: _interval([ra[c][m] - rb[c][m] for c in common], labels, seed) for m in metrics}


def sanity(table: dict) -> list[str]:
    """Failures of the metric check: the oracle must beat the random map on every metric."""
    fails = []
    for m in METRICS:
        o, r = table["oracle|probabilities"][m][0], table["random|probabilities"][m][0]
        if not (o > r if M.HIGHER_IS_BETTER[m] else o < r):
            fails.append(f"{m}: oracle {o:.4f} does not beat random {r:.4f}")
    return fails


# -- the run -----------------------------------------------------------------------------------------------------


def done_when(table: dict, pairs: dict, budget: int, rise_masks: int) -> dict:
    """The issue's targets, on the default fill and the package's score mode (probabilities)."""
    window, stride = OCCLUSION_SAME_BUDGET
    ev, rise = table["dida_evidence_evidence|probabilities"], table[f"rise_{rise_masks}|probabilities"]
    occ = table[f"occlusion_{window}_{stride}|probabilities"]
    return {
        "evidence_passes": ev["passes"],
        "passes_within_budget": ev["passes"] <= budget,
        "pointing_at_least_0.97": ev["pointing"][0] >= 0.97,
        "abpc_at_least_0.80": ev["abpc"][0] >= 0.80,
        "ahead_of_rise": ev["pointing"][0] >= rise["pointing"][0] and ev["abpc"][0] > rise["abpc"][0],
        "ahead_of_same_budget_occlusion": ev["pointing"][0] >= occ["pointing"][0] and ev["abpc"][0] > occ["abpc"][0],
        "abpc_interval_vs_rise_excludes_0": pairs["vs_rise"]["abpc"][1] > 0,
        "abpc_interval_vs_occlusion_excludes_0": pairs["vs_same_budget_occlusion"]["abpc"][1] > 0,
    }


def shapley_done_when(table: dict, pairs: dict, budget: int, rise_masks: int) -> dict:
    """The Shapley issue's phantom targets: within the paper's budget, ahead of RISE on geographic atrophy."""
    shapley, rise = table[SHAPLEY_MAIN], table[f"rise_{rise_masks}|probabilities"]
    ga = "geographic_atrophy"
    return {
        "shapley_passes": shapley["passes"],
        "passes_within_budget": shapley["passes"] <= budget,
        "abpc_geographic_atrophy": [shapley["per_class"][ga]["abpc"], rise["per_class"][ga]["abpc"]],
        "ahead_of_rise_on_geographic_atrophy": shapley["per_class"][ga]["abpc"] > rise["per_class"][ga]["abpc"],
        "abpc_interval_vs_rise_excludes_0": pairs["vs_rise"]["abpc"][1] > 0,
        "abpc_interval_vs_captum_shapley_excludes_0": pairs["vs_captum_shapley"]["abpc"][1] > 0,
    }


def shapley_cost(cost: dict, classes: int) -> dict:
    """Seconds per B-scan of DiDA's Shapley run (every class) and captum's ShapleyValueSampling (one class), in the
    same run, and DiDA's speedup when all ``classes`` are wanted (captum needs one call per class)."""
    dida, captum = np.mean(list(cost["dida_shapley_s"].values())), np.mean(list(cost["captum_shapley_s"].values()))
    return {"dida_shapley_s_per_bscan_all_classes": round(float(dida), 3),
            "captum_shapley_s_per_bscan_one_class": round(float(captum), 3), "classes": classes,
            "speedup_one_class": round(float(captum / dida), 2),
            "speedup_all_classes": round(float(classes * captum / dida), 2)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=BENCH_SEED, help="phantom seed (default %(default)s)")
    p.add_argument("--per-class", type=int, help="phantoms per lesion class (default 6), or real B-scans per class "
                   "with --real (default 20)")
    p.add_argument("--fill-per-class", type=int, default=3,
                   help="phantoms per class for the fill study's other fills (default %(default)s)")
    p.add_argument("--fills", default=",".join(FILLS), help="fills to study (default %(default)s)")
    p.add_argument("--default-fill", default=DEFAULT_FILL, help="the fill of the main table (default %(default)s)")
    p.add_argument("--steps", type=int, default=20, help="deletion/insertion steps per curve (default %(default)s)")
    p.add_argument("--rise-masks", type=int, default=2000)
    p.add_argument("--rise-cells", type=int, default=7)
    p.add_argument("--candidates", action="store_true", help="also the schedules and readouts the choice was made from")
    p.add_argument("--shapley-candidates", action="store_true",
                   help="also the Shapley schedules and readouts the Shapley estimator's were chosen from")
    p.add_argument("--backend", choices=("onnx", "torch"), default="onnx",
                   help="run the model through onnxruntime (default, same logits, faster) or eager PyTorch")
    p.add_argument("--bootstrap-seed", type=int, default=0)
    p.add_argument("--real", metavar="DATA", help="the real-data mode (faithfulness_real.py): labelled B-scans of "
                   "this folder, e.g. the Kermany 2018 images, the validation part of the model's split")
    p.add_argument("--model", help="with --real: the model package (default: the bundled demo model)")
    p.add_argument("--split", help="with --real: the split list (default: split.csv in the model package)")
    p.add_argument("--methods", help="with --real: only these explainers (comma-separated names)")
    p.add_argument("--gradcam-layer", default="layer4", help="with --real: the model layer of Grad-CAM")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.real:
        return _real(args, argv)
    args.per_class = 6 if args.per_class is None else args.per_class
    if (args.candidates or args.shapley_candidates) and args.seed == BENCH_SEED:
        p.error(f"--candidates is for choosing, on the selection seed (--seed {SELECTION_SEED}), never the report's")
    started = time.perf_counter()
    torch.manual_seed(0)
    package = load_model_package(phantom_model_path())
    cases = phantom_cases(package, args.seed, args.per_class)
    normals = phantom_cases(package, args.seed + 1, args.per_class, labels=("normal",))
    normals += [c for c in cases if c.label not in FLUID]
    model = OnnxModel(package.model, cases[0].image) if args.backend == "onnx" else package.model
    scorer = Counter(model)
    schedules = {"paper": PAPER_GRIDS, "evidence": EVIDENCE_GRIDS}
    if args.candidates:
        schedules.update(CANDIDATE_SCHEDULES)
    union = sorted(set().union(*map(set, schedules.values())))
    sigma = min(cases[0].image.shape[1:]) / 45  # RISE's insertion start: sigma 5 at 224 pixels
    ctx = {"package": package, "scorer": scorer, "args": args, "schedules": schedules,
           "blur": lambda x: gaussian_blur(x, sigma), "cost": {"dida_shapley_s": {}, "captum_shapley_s": {}}}
    _log(f"{len(cases)} lesion phantoms of seed {args.seed}, {len(normals)} without fluid; backend {args.backend}; "
         f"DiDA union of {len(union)} grids ({passes_per_image(union)} passes)")
    ctx["gradcam"] = [B.gradcam_map(package.model, c.image, c.class_index, package.model.layer3) for c in cases]
    fills = [args.default_fill] + [f.strip() for f in args.fills.split(",") if f.strip() not in ("", args.default_fill)]
    tables, injections, rows_by_fill = {}, {}, {}
    for fill in fills:  # the default first, with every explainer; the others on the first phantoms of each class
        main_run = fill == args.default_fill
        subset = cases if main_run else cases[: args.fill_per_class * len(LESIONS)]
        rows, injections[fill] = run_fill(ctx, fill, subset, normals, baselines=main_run)
        rows_by_fill[fill] = rows
        tables[fill] = summarise(rows, args.bootstrap_seed)
    main_table, rows = tables[args.default_fill], rows_by_fill[args.default_fill]
    study = args.fill_per_class * len(LESIONS)  # every fill on the same phantoms: the default's first ones too
    fill_tables = {**tables, args.default_fill: summarise([r for r in rows if r["case"] < study], args.bootstrap_seed)}
    window, stride = OCCLUSION_SAME_BUDGET
    evidence = "dida_evidence_evidence|probabilities"
    pairs = {
        "vs_rise": paired(rows, evidence, f"rise_{args.rise_masks}|probabilities", args.bootstrap_seed),
        "vs_same_budget_occlusion": paired(rows, evidence, f"occlusion_{window}_{stride}|probabilities",
                                           args.bootstrap_seed),
        "vs_occlusion_20_10": paired(rows, evidence, "occlusion_20_10|probabilities", args.bootstrap_seed),
        "vs_gradcam": paired(rows, evidence, "gradcam_layer3|probabilities", args.bootstrap_seed),
        "vs_paper_evidence": paired(rows, evidence, "dida_evidence_paper|probabilities", args.bootstrap_seed),
        "vs_mixed_display": paired(rows, evidence, "dida_mixed_display|probabilities", args.bootstrap_seed),
    }
    shapley_pairs = {f"vs_{name}": paired(rows, SHAPLEY_MAIN, other, args.bootstrap_seed) for name, other in (
        ("rise", f"rise_{args.rise_masks}|probabilities"), ("same_budget_occlusion", f"occlusion_{window}_{stride}|"
         "probabilities"), ("gradcam", "gradcam_layer3|probabilities"), ("captum_shapley", f"{CAPTUM_MAP}|"
         "probabilities"), ("evidence_schedule", evidence), ("paper_evidence", "dida_evidence_paper|probabilities"))}
    failures = {fill: sanity(t) for fill, t in tables.items()}
    out = {
        "benchmark": "faithfulness",
        "command": " ".join(["python", "Testing/benchmarks/bench_faithfulness.py", *(argv or sys.argv[1:])]),
        "model": package.spec.name,
        "backend": args.backend,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "seed": args.seed,
        "lesion_phantoms": {c: sum(x.label == c for x in cases) for c in LESIONS},
        "fill_study_phantoms": args.fill_per_class * len(LESIONS),
        "phantoms_without_fluid": len(normals),
        "steps": args.steps,
        "default_fill": args.default_fill,
        "schedules": {name: {"grids": format_grids(g), "passes": passes_per_image(g)} for name, g in schedules.items()},
        "main": main_table,
        "paired_evidence_minus": pairs,
        "paired_shapley_minus": shapley_pairs,
        "shapley_cost": shapley_cost(ctx["cost"], len(package.spec.classes)),
        "fills": {fill: {"dida": {k: v for k, v in t.items() if k.startswith("dida_")},
                         "sanity": {k: v for k, v in t.items() if k.split("|")[0] in ("random", "oracle", "centre")},
                         "injection": injections[fill]} for fill, t in fill_tables.items()},
        "sanity_failures": failures,
        "done_when": done_when(main_table, pairs, passes_per_image(PAPER_GRIDS), args.rise_masks),
        "shapley_done_when": shapley_done_when(main_table, shapley_pairs, passes_per_image(PAPER_GRIDS), args.rise_masks),
        "passes_made": scorer.images,
        "seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(out, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    else:
        for name, entry in main_table.items():
            print(f"{name:48s} " + " ".join(f"{m} {entry[m][0]:.3f}" for m in METRICS) + f" passes {entry['passes']}")
    if any(failures.values()):
        _log(f"the metric check failed: {failures}")
        raise SystemExit(1)
    return out


def _real(args, argv) -> dict:
    from faithfulness_real import markdown, run_real

    args.per_class = 20 if args.per_class is None else args.per_class
    args.argv = list(argv if argv is not None else sys.argv[1:])
    out = run_real(args)
    text = json.dumps(out, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text if args.json else markdown(out))
    return out


if __name__ == "__main__":
    main()
