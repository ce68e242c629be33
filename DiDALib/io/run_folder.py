"""The folder of a run's results, as ``dida explain --out`` writes it and the Slicer module's Export results writes
it again for a run it shows: the volume and per class its labelmap, net map, scale and en-face maps (NRRD), the
colour tables, ``scores.csv``, ``dida_results.npz``, the figures, ``report.html`` and, last, ``run.json`` (which
lists every file, so that a later write may replace the folder: ``output_dir``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ..explanation import VolumeExplanation
from .output_dir import RUN_FILE, staged_output
from .proof import HASHES_FIELD, MARKER, fingerprints
from .results import RESULTS_FILE, write_maps, write_results, write_scores
from .run_maps import MapChoices, plan_maps, save_figure, write_map_figures, write_map_outputs
from .volume import OCTVolume


def volume_fields(volume: OCTVolume) -> dict:
    """What ``run.json`` says about the input volume: its source and format, a non-Cartesian scan's geometry,
    and its spacing (in mm, or in pixels when the file gave none)."""
    return {"input": volume.source, "input_format": volume.format,
            **({"scan_geometry": volume.describe()} if not volume.cartesian else {})}


def estimator_fields(explanation: VolumeExplanation, description: dict) -> dict:
    """What ``run.json`` says about the estimator (``description``: ``engine.shapley.describe``'s plain values):
    its name and, for Shapley values, its permutations and seed and how large the values' standard errors are
    (each value's own is in ``dida_results.npz``)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in description.items()}
    errors = [s for r in explanation.results.values() for s in (r.stderr or {}).values()]
    if errors and "shapley" in out:
        values = np.concatenate([d.ravel() for r in explanation.results.values() for d in r.deltas.values()])
        flat = np.concatenate([s.ravel() for s in errors])
        out["shapley"]["stderr"] = {"largest": float(flat.max()), "median": float(np.median(flat)),
                                    "largest_abs_value": float(np.abs(values).max())}
    return out


def spacing_field(volume: OCTVolume) -> dict:
    return {"spacing_mm" if volume.spacing_unit == "mm" else "spacing_pixels": list(volume.spacing)}


def write_run_files(stage: Path, volume: OCTVolume, explanation: VolumeExplanation, classes: Sequence[int],
                    summary: dict, figures: bool = True, point: tuple[int, int] | None = None,
                    truths: Sequence[str] | None = None, maps: MapChoices = MapChoices(), report: bool = True) -> None:
    """Every file of a run but run.json, into the staging folder ``stage``; ``summary`` (what run.json will say,
    with its ``saturation_scale``) gains each shown class's files."""
    import SimpleITK as sitk

    from ..reports.figures import dida_view_figure

    scale = summary["saturation_scale"]
    reference = volume.to_sitk()
    sitk.WriteImage(reference, str(stage / "volume.nrrd"), useCompression=True)
    summary["class_files"] = write_maps(stage, explanation, classes, reference, volume.n_bscans, scale)
    plan = plan_maps(maps, explanation, classes)
    write_map_outputs(stage, volume, explanation, classes, plan, reference, summary)
    del reference
    write_scores(stage / "scores.csv", explanation)
    write_results(stage / RESULTS_FILE, explanation, summary)
    if figures:
        (stage / "figures").mkdir()
        for i in explanation.indices if "classes" in maps.views else ():  # one at a time, each at panel size
            fig = dida_view_figure(volume.bscans[i], explanation, i, explanation.figure_classes(i, classes),
                                   scale=scale, point=point, truth=truths[i] if truths else None)
            save_figure(fig, stage / "figures" / f"dida_view_bscan{i:03d}.png", summary)
        write_map_figures(stage, volume, explanation, classes, maps, plan, summary, point, truths)
    if report:  # last: it shows the fundus figure where one was drawn
        _write_report(stage, volume, explanation, summary, plan, point, truths)


def _write_report(stage: Path, volume: OCTVolume, explanation: VolumeExplanation, summary: dict, plan,
                  point: tuple[int, int] | None, truths: Sequence[str] | None) -> None:
    from ..reports.html import REPORT_FILE, write_report
    from ..reports.page_data import PageSource

    fundus = stage / "figures" / "dida_enface_fundus.png"
    src = PageSource(explanation, volume.bscans, summary, plan.pairs, plan.contrast_scale, truths, point)
    write_report(stage / REPORT_FILE, src, fundus.read_bytes() if fundus.is_file() else None)


def seal_run(stage: Path, summary: dict) -> None:
    """Write ``run.json`` last, listing every file written with its size and SHA-256 (``proof``): it marks the
    folder as a whole DiDA result, and only a result whose files still match may be replaced later."""
    summary["files"] = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*")
                              if p.is_file() and p.relative_to(stage).as_posix() != MARKER)
    summary[HASHES_FIELD] = fingerprints(stage, summary["files"])
    (stage / RUN_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def write_run_folder(out: str | os.PathLike, volume: OCTVolume, explanation: VolumeExplanation,
                     classes: Sequence[int], summary: dict, force: bool = False,
                     protect: Iterable[str | os.PathLike] = (), what: str = "the output folder",
                     note: Callable[[str], None] | None = None, **options) -> Path:
    """Write the folder ``out`` of an explanation already computed, all or nothing (``output_dir.staged_output``:
    a non-empty folder DiDA did not write is refused, a DiDA result is replaced only with ``force``, a failure
    leaves nothing). ``options``: ``write_run_files``'s figures, point, truths, maps, report. Returns the folder."""
    if not explanation.results:
        raise ValueError("there are no finished B-scans to write: explain at least one B-scan first")
    with staged_output(out, force, protect, 0, what, note) as stage:
        write_run_files(stage, volume, explanation, classes, summary, **options)
        seal_run(stage, summary)
    return Path(os.path.abspath(os.fspath(out)))
