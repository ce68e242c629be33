"""``dida explain`` of unrelated B-scans: ``--images``, or a folder of images of different sizes (which no volume can
hold). Each image is explained on its own at its own size (``independent.explain_independent``) and written as a
one-B-scan result of its own under ``images/<name>/`` (its maps, figures, page and run.json, so ``dida view`` opens
it), with one score table over all of them (``scores.csv``: file, size, score mode, scores) and no volume maps: no
geometry, en-face map or score plot across B-scans of different patients."""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from pathlib import Path

from ..engine.grid import passes_per_image
from ..engine.saturation import saturation_warning
from ..engine.scores import format_score
from ..independent import explain_independent
from ..io.image_set import BScanImage, LazyBScans, independent_bscans
from ..io.output_dir import check_output, staged_output
from ..io.results import class_file_stems
from ..io.run_folder import seal_run, write_run_files
from ..io.run_maps import MapChoices
from ..models.package import ModelPackage
from ..pipeline import ExplainSettings, VolumeExplainer
from .common import note, progress_bar
from .maps import check_pairs
from .preflight import plan_run

IMAGES_DIR = "images"
#: What the run record of independent B-scans keeps of each image's own run record.
SHARED_FIELDS = ("model", "model_name", "demo_model", "device", "precision", "score", "score_choice", "memory_format",
                 "fill", "grids", "grid_schedule", "weights", "masked_images_per_bscan")


def run_independent(images: Sequence[BScanImage], package: ModelPackage, settings: ExplainSettings, out_dir: Path,
                    source: str = "", force: bool = False, figures: bool = True,
                    point: tuple[int, int] | None = None, quiet: bool = False, protect: Sequence[str | Path] = (),
                    memory_limit: int | None = None, maps: MapChoices = MapChoices(), report: bool = True) -> dict:
    """Explain each of ``images`` on its own and write the results into ``out_dir`` (all or nothing, as
    ``run_explain``: the folder, memory and disk are checked first). Returns the run's summary."""
    from .explain import _summary, warn_about

    check_output(out_dir, force, protect, "--out")
    largest = max(images, key=lambda im: im.shape[0] * im.shape[1])
    settings, footprint = plan_run(1, largest.shape, package.spec, settings, 1, figures, memory_limit, note,
                                   contrasts=maps.contrast_count)
    explainer = VolumeExplainer(package, settings)  # checks class names
    check_pairs(maps, package.spec.classes)
    folders = folder_names([im.name for im in images])
    with staged_output(out_dir, force, protect, footprint.disk * len(images), "--out", note) as stage:
        started = time.perf_counter()
        bar = progress_bar(len(images) * passes_per_image(settings.grids), quiet, "DiDA")
        done = [0]

        def progress(_images: int, passes: int) -> None:
            if bar is not None:
                bar.update(passes - done[0])
                done[0] = passes

        entries, results, last = [], [], time.perf_counter()
        try:
            for image, explanation in zip(images, explain_independent(explainer, LazyBScans(images), progress)):
                volume = image.volume()
                classes = explanation.select_classes(settings.classes)
                own = _summary(volume, package, settings, explainer, explanation, classes, time.perf_counter() - last)
                own["input_kind"] = "one of independent B-scans"
                folder = stage / IMAGES_DIR / folders[image.name]
                folder.mkdir(parents=True)
                inside = point if point and all(0 <= v < n for v, n in zip(point, image.shape)) else None
                write_run_files(folder, volume, explanation, classes, own, figures, inside, None, maps, report)
                seal_run(folder, own)
                result = explanation.results[0]
                results.append(result)
                entries.append({"file": image.name, "folder": f"{IMAGES_DIR}/{folders[image.name]}",
                                "shape": list(image.shape), "classes_shown": own["classes_shown"],
                                "top": explanation.class_names[int(result.top_classes(1)[0])]})
                last = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()
        summary = {key: own[key] for key in SHARED_FIELDS if key in own}
        summary.update({"format": own["format"], "dida_version": own["dida_version"], "input": source,
                        "input_kind": "independent B-scans", "images": entries,
                        "seconds": round(time.perf_counter() - started, 2)})
        warning = saturation_warning(results, [im.name for im in images])
        if warning:
            summary["score_warning"] = warning
        write_scores(stage / "scores.csv", images, results, package.spec.classes)
        seal_run(stage, summary)
    warn_about(package, summary, source)
    return summary


def folder_names(names: Sequence[str]) -> dict[str, str]:
    """Each image's folder name: its file name without the extension where those are unique (else with it),
    made safe and unique on every file system (``io.results.class_file_stems``)."""
    bare = [Path(n).stem or n for n in names]
    keys = bare if len(set(bare)) == len(bare) else list(names)
    stems = class_file_stems(keys)
    return {n: stems[k] for n, k in zip(names, keys)}


def write_scores(path: Path, images: Sequence[BScanImage], results, class_names: Sequence[str]) -> Path:
    """``scores.csv`` of independent B-scans: one row per image (its file, size and score mode, then one column per
    class)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "depth", "width", "score_mode", *class_names])
        for image, r in zip(images, results):
            w.writerow([image.name, *image.shape, r.score, *(f"{v:.6g}" for v in r.base_scores)])
    return path


def explain_images(args, package: ModelPackage, settings: ExplainSettings, maps: MapChoices,
                   point: tuple[int, int] | None, limit: int | None, protect) -> int:
    """``dida explain`` of unrelated B-scans, from its parsed arguments."""
    from .explain import parse_bscans

    images = independent_bscans(args.input, limit)
    chosen = parse_bscans(args.bscans, len(images))
    images = [images[k] for k in chosen]
    out = Path(args.out)
    summary = run_independent(images, package, settings, out, str(args.input), force=args.force,
                              figures=not args.no_figures, point=point, quiet=args.quiet, protect=protect,
                              memory_limit=limit, maps=maps, report=not args.no_report)
    print_images(out, summary)
    return 0


def print_images(out_dir: Path, summary: dict) -> None:
    """What a run of independent B-scans found and wrote: a line per image, then where to look."""
    out = Path(out_dir).resolve()
    entries = summary["images"]
    print(f"DiDA explained {len(entries)} independent B-scan(s), each at its own size, in {summary['seconds']} s on "
          f"{summary['device']}")
    choice = summary.get("score_choice")
    print(f"score: {summary['score']}" + (f" ({choice})" if choice else ""))
    with open(out / "scores.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for entry, row in zip(entries, rows):
        top = entry["top"]
        print(f"  {entry['file']} ({entry['shape'][0]} x {entry['shape'][1]}): {top} "
              f"{format_score(float(row[top]), summary['score'])} -> {entry['folder']}/")
    files = sum(1 for p in out.rglob("*") if p.is_file())
    print(f"wrote {files} file(s) to {out}: scores.csv, run.json and one folder per image in {IMAGES_DIR}/")
    page = out / entries[0]["folder"] / "report.html" if entries else None
    print(f"open the score table {out / 'scores.csv'}" + (f", or a DiDA View page, e.g. {page}"
                                                          if page is not None and page.is_file() else ""))
