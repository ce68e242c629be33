"""``dida explain``: the B-scans of an OCT file or folder, explained with a model package, every output written
into a new folder (all or nothing: ``io.output_dir``), after the checks of ``preflight``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..engine.devices import describe_device, resolve_device
from ..engine.grid import grid_size
from ..engine.saturation import saturation_warning
from ..engine.schedule import SCHEDULES, format_grids, parse_grids
from ..engine.scores import AUTO, SCORE_MODES
from ..engine.estimators import ESTIMATORS, LEAVE_ONE_OUT, SHAPLEY_GRIDS, describe
from ..io.output_dir import RUN_FORMAT, check_output, staged_output
from ..io.image_set import sizes_differ
from ..io.registry import describe_formats, load_oct
from ..io.run_folder import estimator_fields, seal_run, spacing_field, volume_fields, write_run_files
from ..io.run_maps import MapChoices
from ..io.volume import OCTVolume
from ..models.package import ModelPackage, demo_model_path, load_model_package
from ..pipeline import ExplainSettings, VolumeExplainer, VolumeExplanation, parse_top
from .common import (UsageError, device_option, max_memory, note, parse_ints, print_open, print_written,
                     progress_bar, warn)
from .independent import explain_images
from .maps import check_pairs, map_choices
from .preflight import check_loading, plan_run
from .runtime import add_runtime_option, announcing_runtime


def add_parser(sub) -> None:
    """Register ``dida explain`` on the subcommand parsers ``sub``."""
    e = sub.add_parser("explain", help="explain the B-scans of an OCT file or folder",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="supported inputs:\n" + describe_formats())
    e.add_argument("input", help="OCT file or folder of B-scans")
    e.add_argument("--model", help="model package folder (default: the bundled demo model)")
    e.add_argument("--out", required=True, help="output folder (must be new or empty, unless --force)")
    e.add_argument("--bscans", default="all", help="all (default), center, or indices/ranges such as 0,3,5-9")
    e.add_argument("--images", action="store_true", help="the input's B-scans are unrelated images (different "
                   "patients): explain each on its own at its own size, with a score table and no maps across "
                   "them (automatic for a folder of images of different sizes)")
    e.add_argument("--grids", help="a grid schedule: paper (the default: the paper's 8 aligned grids 7-21, whose "
                   "Mixed Image the method shows), evidence (3 sizes at 2 x 2 half-cell offsets, for the most faithful "
                   "leave-one-out evidence map), or grid sizes such as 7,9,11 (N:K puts size N at K x K offsets); "
                   "with --estimator shapley the default is 5,9")
    e.add_argument("--estimator", choices=ESTIMATORS, default=LEAVE_ONE_OUT, help="what a cell's value is: "
                   "leave-one-out (default: the paper's d, the score change when the cell alone is hidden) or shapley "
                   "(its Shapley value: the average change over random orders of hiding the cells, which shares out "
                   "evidence a model sees in several cells; at most the paper's 1,737 passes per B-scan by default)")
    e.add_argument("--permutations", help="with --estimator shapley: permutations per grid, one number for all or "
                   "one per grid coarse to fine, even (antithetic pairs); default: the paper's budget shared out")
    e.add_argument("--seed", type=int, default=0, help="with --estimator shapley: seed of the permutations "
                   "(default 0; the same for every B-scan)")
    e.add_argument("--weights", help="one weight per grid size (default: finer grids slightly heavier)")
    e.add_argument("--fill", default="background", help="masked cells show: background (default: the B-scan's "
                   "lateral median, retina without the finding), black (the paper's; black looks like fluid to an "
                   "OCT classifier), mean, blur, or an intensity in [0, 1]")
    e.add_argument("--score", choices=SCORE_MODES + (AUTO,), help="probabilities, logits, log-odds (does not "
                   "saturate on confident models) or auto (log-odds when the model is saturated); default: the "
                   "model package's")
    e.add_argument("--trust-code", action="store_true", help="run the model package's own code (python: packages, "
                   "or TorchScript and torch.export programs that call more than tensor operators); only for "
                   "packages whose source you trust")
    e.add_argument("--classes", default="top3", help="top3 (default), topN, all, or class names separated by commas")
    e.add_argument("--device", default="auto", type=device_option, help="auto (default: CUDA when present), cpu or "
                   "cuda")
    e.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    e.add_argument("--batch-size", type=int, help="masked images per model call (default: chosen for the device)")
    add_runtime_option(e)
    e.add_argument("--point", help="ROW,COL (B-scan pixels) of the square in the figures (default: strongest)")
    e.add_argument("--bscan-distance", type=float, help="B-scan distance (mm) where the file has none")
    e.add_argument("--contrast", action="append", metavar="A:B", help="a contrast map 'A rather than B' (class names; "
                   "repeatable), 'top' (default: the top class against each of the next two) or 'none'")
    e.add_argument("--view", default="classes", help="figures per B-scan, comma-separated: classes (default: the DiDA "
                   "View of the top three classes), contrast (its A-rather-than-B panels), scale (feature scale)")
    e.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    e.add_argument("--no-report", action="store_true", help="skip report.html, the interactive DiDA View page")
    e.add_argument("--force", action="store_true", help="replace an earlier DiDA result in --out (never other files)")
    e.add_argument("--max-memory", help="refuse a run estimated to need more memory than this, e.g. 8G "
                   "(default: the memory available now)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_explain)


def parse_bscans(text: str, n_bscans: int) -> list[int]:
    """``all``, ``center`` or a list of indices and ranges such as ``0,3,5-9`` (0-based, inclusive ranges)."""
    t = text.strip().lower()
    if t == "all":
        return list(range(n_bscans))
    if t in ("center", "centre"):
        return [n_bscans // 2]
    shown = text if len(text) <= 60 else text[:57] + "..."
    chosen: set[int] = set()
    for part in t.split(","):
        part = part.strip()
        try:
            a, b = (int(v) for v in part.split("-", 1)) if "-" in part else (int(part),) * 2 if part else (0, -1)
        except ValueError:
            raise UsageError(f"--bscans {shown!r}: use all, center, or indices and ranges like 0,3,5-9") from None
        if part and b < a:
            raise UsageError(f"--bscans {shown!r}: the range {a}-{b} runs backwards: use all, center, or indices and "
                             "ranges like 0,3,5-9 (lower index first)")
        if part and not 0 <= a <= b < n_bscans:  # checked before a range is expanded
            what = f"B-scan(s) [{a}] do not exist" if a == b else f"the range {a}-{b} goes past the volume's B-scans"
            raise UsageError(f"--bscans {shown!r}: {what}; the volume has 0..{n_bscans - 1}")
        chosen.update(range(a, b + 1))
    if not chosen:
        raise UsageError(f"--bscans {shown!r} selects no B-scan: use all, center, or indices and ranges like 0,3,5-9")
    return sorted(chosen)


def parse_grid_option(text: str) -> tuple:
    """``--grids``: a schedule name (``paper``, ``evidence``) or grid sizes, as ``engine.schedule.parse_grids``."""
    try:
        return parse_grids(text)
    except ValueError as exc:
        raise UsageError(f"--grids: {exc}") from None


def _typed_sizes(text: str, grids) -> list[int]:
    """The distinct grid sizes in the order ``--grids`` names them (a schedule's coarse to fine)."""
    if text.strip().lower() in SCHEDULES:
        return sorted({grid_size(g) for g in grids})
    sizes: list[int] = []
    for item in text.replace(" ", "").split(","):
        n = int(item.split(":")[0].split("@")[0]) if item else None
        if n is not None and n not in sizes:
            sizes.append(n)
    return sizes


def shapley_options(args) -> dict:
    """``--estimator``, ``--permutations`` and ``--seed`` as ``ExplainSettings`` fields."""
    permutations = None
    if args.permutations is not None:
        if args.estimator != "shapley":
            raise UsageError("--permutations is for --estimator shapley: leave-one-out hides each cell once")
        counts = parse_ints(args.permutations, "--permutations")
        permutations = counts[0] if len(counts) == 1 else tuple(counts)
    return {"estimator": args.estimator, "permutations": permutations, "seed": args.seed}


def settings_from_args(args) -> ExplainSettings:
    if args.grids is None:
        args.grids = ",".join(map(str, SHAPLEY_GRIDS)) if args.estimator == "shapley" else "paper"
    grids = parse_grid_option(args.grids)
    smallest = min(grid_size(g) for g in grids)
    if smallest < 1:
        raise UsageError(f"--grids {args.grids!r}: grid size {smallest} is not possible: each grid size is a whole "
                         "number of cells per side, at least 1 (e.g. 7,9,11)")
    weights = None
    if args.weights:
        try:
            weights = tuple(float(v) for v in args.weights.split(","))
        except ValueError:
            raise UsageError(f"--weights {args.weights!r} must be comma-separated numbers") from None
        sizes = _typed_sizes(args.grids, grids)
        if len(weights) != len(sizes):
            raise UsageError(f"--weights has {len(weights)} values for {len(sizes)} grid sizes: give one per grid size")
        weights = tuple(w for _, w in sorted(zip(sizes, weights)))  # results list grids coarse to fine
    classes: str | list[str] = args.classes
    try:
        parse_top(classes)
    except ValueError:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        if not classes:
            raise UsageError(f"--classes {args.classes!r} names no class: give top3, topN, all, or class names "
                             "separated by commas") from None
    fill: str | float = args.fill
    s = ExplainSettings(grids=grids, weights=weights, fill=fill, score=args.score, classes=classes,
                        device=args.device, precision=args.precision, batch_size=args.batch_size,
                        runtime=getattr(args, "runtime", "auto"), **shapley_options(args))
    try:
        s.passes_per_image()
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--estimator shapley: {exc}") from None
    s.check()
    resolve_device(args.device, option="--device")  # a GPU asked for must be there, said in the option's terms
    return s


def run_explain(volume: OCTVolume, package: ModelPackage, settings: ExplainSettings, indices: Sequence[int],
                out_dir: Path, force: bool = False, figures: bool = True, point: tuple[int, int] | None = None,
                truths: Sequence[str] | None = None, quiet: bool = False, protect: Sequence[str | Path] = (),
                memory_limit: int | None = None, maps: MapChoices = MapChoices(), report: bool = True) -> dict:
    """Explain the chosen B-scans and write every output into ``out_dir`` (all or nothing). Returns a summary.

    Everything that can be checked is checked before the computation: the output folder (never one that holds,
    lies above or inside a path of ``protect``, or the current folder; with ``force`` only an earlier DiDA
    result is replaced), that no other run writes it, its free space, and the run's memory (``memory_limit``
    bytes, default what is available)."""
    check_output(out_dir, force, protect, "--out")
    settings, footprint = plan_run(volume.n_bscans, volume.bscans.shape[1:], package.spec, settings, len(indices),
                                   figures, memory_limit, note, contrasts=maps.contrast_count)
    explainer = VolumeExplainer(package, settings)  # checks class names
    check_pairs(maps, package.spec.classes)
    with staged_output(out_dir, force, protect, footprint.disk, "--out", note) as stage:
        started = time.perf_counter()
        explanation = _explain(explainer, volume, indices, settings.passes_per_image(), quiet)
        seconds = time.perf_counter() - started
        classes = explanation.select_classes(settings.classes)
        summary = _summary(volume, package, settings, explainer, explanation, classes, seconds)
        write_run_files(stage, volume, explanation, classes, summary, figures, point, truths, maps, report)
        seal_run(stage, summary)  # last: marks it whole
    warn_about(package, summary, volume.source if volume.format != "phantom" else None)
    return summary


def warn_about(package: ModelPackage, summary: dict, source: str | None) -> None:
    """The warnings on a written result, one line each: saturated probabilities, and a demonstration package on a
    real input ``source`` (None: the demo's phantom; keyed on the package's own 'demo' field, not on its folder:
    any package may be marked so). Said once the result exists, so a run that fails says only why."""
    if summary.get("score_warning"):
        warn(summary["score_warning"])
    if package.spec.demo and source is not None:
        warn(f"'{package.spec.name}' is a demonstration model, not for clinical use: its scores and maps of "
             f"{Path(source).name or 'this input'} are no diagnosis; explain with a model package of your own "
             "(--model; dida package makes one)")


def _explain(explainer: VolumeExplainer, volume: OCTVolume, indices: Sequence[int], passes: int,
             quiet: bool) -> VolumeExplanation:
    bar = progress_bar(len(indices) * passes, quiet, "DiDA")
    done = [0]

    def progress(p):
        if bar is not None:
            bar.update(p.passes_done - done[0])
            done[0] = p.passes_done

    try:
        return explainer.explain_all(volume.bscans, indices,
                                     progress=announcing_runtime(explainer, progress, bar, quiet))
    finally:
        if bar is not None:
            bar.close()


def _summary(volume: OCTVolume, package: ModelPackage, settings: ExplainSettings, explainer: VolumeExplainer,
             explanation: VolumeExplanation, classes: Sequence[int], seconds: float) -> dict:
    """What ``run.json`` says about a run (the files it wrote are added once they are written)."""
    passes = settings.passes_per_image()
    return {
        "format": RUN_FORMAT,
        "dida_version": __version__,
        **volume_fields(volume),
        "model": str(package.path),
        "model_name": package.spec.name,
        "demo_model": package.spec.demo,
        "device": describe_device(explainer.engine.device),
        "precision": str(explainer.engine.dtype).removeprefix("torch."),
        "score": explainer.engine.score,
        **({"score_choice": explainer.score_note} if explainer.score_note else {}),
        **(explainer.runtime_choice.to_json() if explainer.runtime_choice else {}),
        **({"score_warning": warning} if (warning := saturation_warning(explanation.results.values())) else {}),
        "memory_format": explainer.engine.memory_format_note,
        "fill": settings.fill,
        "grids": [g if isinstance(g, int) else str(g) for g in settings.grids],
        "grid_schedule": format_grids(settings.grids),
        "weights": list(settings.weights) if settings.weights else "default (1.0 coarsest to 1.5 finest, normalised)",
        "bscans": list(explanation.indices),  # the B-scans asked for, in order
        "classes_shown": [package.spec.classes[k] for k in classes],
        "saturation_scale": explanation.scale(),
        "seconds": round(seconds, 2),
        "masked_images_per_bscan": passes - 1,
        **estimator_fields(explanation, describe(settings.grids, settings.engine_estimator())),
        **spacing_field(volume),
    }


def cmd_explain(args) -> int:
    settings = settings_from_args(args)
    choices = map_choices(args.contrast, args.view)
    point = parse_ints(args.point, "--point") if args.point else None
    if point is not None and len(point) != 2:
        raise UsageError("--point needs ROW,COL in B-scan pixels")
    limit = max_memory(args)
    model = Path(args.model) if args.model else demo_model_path()
    protect = (args.input, model)
    check_output(args.out, args.force, protect, "--out")  # before anything is loaded
    check_loading(model, limit)
    package = load_model_package(model, trust_code=args.trust_code)
    if args.images or sizes_differ(args.input):
        if not args.images:
            note("the images differ in size: they are explained as independent B-scans, each on its own at its own "
                 "size (no maps across them)")
        return explain_images(args, package, settings, choices, point, limit, protect)
    volume = load_oct(args.input, bscan_distance=args.bscan_distance, max_bytes=limit)
    if volume.format == "image-folder" and volume.n_bscans > 1:
        note(f"the {volume.n_bscans} images are explained as the B-scans of one volume, in file-name order; add "
             "--images if they are unrelated B-scans (each explained on its own, no maps across them)")
    indices = parse_bscans(args.bscans, volume.n_bscans)
    summary = run_explain(volume, package, settings, indices, Path(args.out), force=args.force,
                          figures=not args.no_figures, point=point, quiet=args.quiet, protect=protect,
                          memory_limit=limit, maps=choices, report=not args.no_report)
    print_written(Path(args.out), summary)
    print_open(Path(args.out))
    return 0
