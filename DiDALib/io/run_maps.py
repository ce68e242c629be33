"""The maps beyond the paper in a run's folder (``dida explain``, the Slicer module's Export results): contrasts
("A rather than B"), feature scale and en-face evidence, as files and figures. They are made from the run's d
values: no model pass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .map_files import (
    SCALE_TABLE_NAME,
    contrast_scale,
    enface_maps,
    enface_scale,
    write_contrast_maps,
    write_enface_maps,
    write_scale_maps,
    write_scale_table,
)
from .volume import OCTVolume
from ..maps.contrast import default_pairs, parse_pairs
from ..maps.scale import feature_scale, grid_sizes
from ..explanation import VolumeExplanation

VIEWS = ("classes", "contrast", "scale")
#: Why a volume of one B-scan gets no en-face map or figure: a strip of one row of A-scans shows nothing a B-scan's
#: own maps do not.
ONE_BSCAN = "not drawn: a single B-scan has no en-face extent"


@dataclass(frozen=True)
class MapChoices:
    """What a run adds to the paper's maps: contrast pairs (``A:B`` texts or ``top``; none when empty) and the
    figures per B-scan (``VIEWS``)."""

    contrasts: tuple[str, ...] = ("top",)
    views: tuple[str, ...] = ("classes",)

    @property
    def contrast_count(self) -> int:
        """At most how many contrast maps the run writes (``top`` is two pairs)."""
        return sum(2 if s.strip().lower() == "top" else 1 for s in self.contrasts)


def run_pairs(choices: MapChoices, explanation: VolumeExplanation,
              shown: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """The run's contrast pairs, ``top`` ranked by each class's highest score over the explained B-scans, among the
    classes ``shown``."""
    return parse_pairs(choices.contrasts, explanation.class_names, explanation.scores().max(axis=0), shown)


def bscan_pairs(choices: MapChoices, explanation: VolumeExplanation, index: int,
                shown: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """The contrast pairs of one B-scan's figure: ``top`` is that B-scan's top class against its next two, among the
    classes ``shown``."""
    r = explanation.results[index]
    return (parse_pairs(choices.contrasts, explanation.class_names, r.base_scores, shown)
            or default_pairs(r.base_scores, among=shown))


@dataclass(frozen=True)
class MapPlan:
    """The contrasts of a run: its pairs (for the labelmaps), each B-scan's figure pairs, and one saturation
    scale for all of them."""

    pairs: list[tuple[int, int]]
    figure_pairs: dict[int, list[tuple[int, int]]]
    contrast_scale: float


def plan_maps(choices: MapChoices, explanation: VolumeExplanation, shown: Sequence[int] | None = None) -> MapPlan:
    """The run's contrasts; ``top`` pairs only classes ``shown`` (all when None)."""
    pairs = run_pairs(choices, explanation, shown)
    figure_pairs = ({i: bscan_pairs(choices, explanation, i, shown) for i in explanation.indices}
                    if "contrast" in choices.views and choices.contrasts else {})
    every = sorted(set(pairs) | {p for ps in figure_pairs.values() for p in ps})
    return MapPlan(pairs, figure_pairs, contrast_scale(explanation, every) if every else 0.0)


def write_map_outputs(stage: Path, volume: OCTVolume, explanation: VolumeExplanation, classes: Sequence[int],
                      plan: MapPlan, reference, summary: dict) -> None:
    """Contrast and scale labelmaps and en-face maps into the staging folder; ``summary`` says which files."""
    names = explanation.class_names
    summary["contrast_scale"] = plan.contrast_scale
    summary["contrasts"] = write_contrast_maps(stage, explanation, plan.pairs, reference, volume.n_bscans,
                                               plan.contrast_scale)
    scale_files = write_scale_maps(stage, explanation, classes, reference, volume.n_bscans)
    lateral, axial, distance = volume.spacing
    unit = volume.spacing_unit
    write_scale_table(stage / f"{SCALE_TABLE_NAME}.ctbl", grid_sizes(explanation.results[explanation.indices[0]].grids),
                      explanation.bscan_shape, (lateral, axial), unit)
    enface_files = {}
    if volume.n_bscans > 1:
        maps = enface_maps(explanation, classes, volume.n_bscans)
        summary["enface_scale"] = enface_scale(maps)
        enface_files = write_enface_maps(stage, maps, names, (lateral, distance))
    else:
        summary["enface"] = ONE_BSCAN
    for name, files in summary["class_files"].items():
        files["scale"] = scale_files[name]
        if name in enface_files:
            files["enface"] = enface_files[name]


def write_map_figures(stage: Path, volume: OCTVolume, explanation: VolumeExplanation, classes: Sequence[int],
                      choices: MapChoices, plan: MapPlan, summary: dict, point: tuple[int, int] | None,
                      truths: Sequence[str] | None) -> None:
    """The en-face figure of the shown classes, and per B-scan the contrast and scale figures asked for."""
    from ..reports.figures import bscan_header, contrast_view_figure
    from ..reports.map_figures import enface_figure, enface_fundus_figure, scale_figure

    names = explanation.class_names
    lateral, axial, distance = volume.spacing
    on_fundus = _fundus_reason(volume)
    if volume.n_bscans > 1:
        maps = enface_maps(explanation, classes, volume.n_bscans)
        captioned = [(m, names[m.class_index]) for m in maps]
        save_figure(enface_figure(captioned, (lateral, distance), summary["enface_scale"], volume.spacing_unit),
                    stage / "figures" / "dida_enface.png", summary, run_wide=True)
    if on_fundus is None:
        try:
            positions = np.asarray(volume.metadata["bscan_positions_mm"])
            fig = enface_fundus_figure(captioned, volume.fundus.image, positions, volume.fundus.spacing,
                                       summary["enface_scale"])
        except ValueError as exc:  # the B-scans are no raster of parallel lines
            on_fundus = str(exc)
        else:
            save_figure(fig, stage / "figures" / "dida_enface_fundus.png", summary, run_wide=True)
    summary["enface_on_fundus"] = "figures/dida_enface_fundus.png" if on_fundus is None else f"not drawn: {on_fundus}"
    for i in explanation.indices:
        truth = truths[i] if truths else None
        if plan.figure_pairs.get(i):
            fig = contrast_view_figure(volume.bscans[i], explanation, i, plan.figure_pairs[i], plan.contrast_scale,
                                       point, truth)
            save_figure(fig, stage / "figures" / f"dida_contrast_bscan{i:03d}.png", summary)
        if "scale" in choices.views:
            r = explanation.results[i]
            scales = [(feature_scale(r, k, explanation.bscan_shape), names[k])
                      for k in explanation.figure_classes(i, classes)]
            fig = scale_figure(volume.bscans[i], scales, (lateral, axial), volume.spacing_unit, bscan_header(i, truth))
            save_figure(fig, stage / "figures" / f"dida_scale_bscan{i:03d}.png", summary)


def save_figure(fig, path: Path, summary: dict, run_wide: bool = False) -> None:
    """Save a run's figure with its provenance: the demonstration notice of a demo model, and on a figure of the
    whole run (``run_wide``: en-face) the run's saturation warning (a B-scan's own figure draws its own)."""
    from ..reports.figures import WARNING_COLOUR, add_band, with_provenance

    if run_wide and summary.get("score_warning"):
        fig = add_band(fig, summary["score_warning"], WARNING_COLOUR)
    # Speckled B-scans barely compress: zlib level 1 wrote demo figures as small as optimize=True (950 vs 960 kB)
    # in a sixth of the time (0.04 vs 0.26 s each).
    with_provenance(fig, bool(summary.get("demo_model"))).save(path, compress_level=1)


def _fundus_reason(volume: OCTVolume) -> str | None:
    """Why the en-face map cannot be laid on the fundus image (None: it can)."""
    if volume.n_bscans == 1:
        return ONE_BSCAN.removeprefix("not drawn: ")
    if volume.fundus is None:
        return "the file has no fundus image"
    if not volume.cartesian:
        return f"a {volume.geometry} scan's A-scans do not tile an area of the fundus"
    positions = volume.metadata.get("bscan_positions_mm") or []
    if len(positions) != volume.n_bscans:
        return "the file gives no B-scan positions on the fundus"
    return None


__all__ = ["VIEWS", "MapChoices", "MapPlan", "bscan_pairs", "plan_maps", "run_pairs", "write_map_figures",
           "write_map_outputs"]
