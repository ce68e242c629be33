"""Export results: the run the module shows, written as a folder exactly like ``dida explain --out`` writes one
(``io.run_folder``), by the same rules: a new or empty folder is filled, a folder DiDA wrote is replaced only when
the user agreed (``force``), any other folder is refused with one sentence and left untouched, and a failure
leaves nothing behind (``io.output_dir.staged_output``)."""

from __future__ import annotations

import os
from pathlib import Path

from .. import __version__
from ..engine.grid import passes_per_image
from ..engine.saturation import saturation_warning
from ..engine.schedule import format_grids, grid_json, grid_key
from ..io.output_dir import RUN_FORMAT, check_output, foreign_files
from ..io.run_folder import estimator_fields, spacing_field, volume_fields, write_run_folder
from ..io.volume import OCTVolume
from .session import ExplainSession
from .volumes import oct_from_volume_node

#: How the messages name the folder (``output_dir``'s sentences start with it).
WHAT = "The export folder"


def replaceable(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds an earlier DiDA result and nothing else: the module asks before replacing it."""
    path = Path(folder)
    return path.is_dir() and any(path.iterdir()) and foreign_files(path) == []


def run_summary(session: ExplainSession, volume: OCTVolume) -> dict:
    """What ``run.json`` says about a session's run, as ``dida explain`` says it (from the worker's ready event;
    the time a run took is not known here, and is left out)."""
    info, explanation = session.info, session.explanation
    grids = [grid_key(g) for g in info["grids"]]
    shown = shown_classes(session)
    return {
        "format": RUN_FORMAT,
        "dida_version": __version__,
        **volume_fields(volume),
        "model": str(info["path"]),
        "model_name": info["model"],
        "demo_model": bool(info["demo"]),
        "device": info["device_name"],
        "score": info["score"],
        "fill": info.get("fill", session.settings.get("fill")),
        "grids": [grid_json(g) for g in grids],
        "grid_schedule": format_grids(grids),
        "weights": list(info["weights"]),
        "bscans": list(explanation.indices),
        "classes_shown": [explanation.class_names[k] for k in shown],
        "saturation_scale": explanation.scale(),
        **({"score_warning": w} if (w := saturation_warning(explanation.results.values())) else {}),
        "masked_images_per_bscan": info.get("shapley", {}).get("passes_per_image", passes_per_image(grids)) - 1,
        **estimator_fields(explanation, {k: info[k] for k in ("estimator", "shapley") if k in info}),
        **spacing_field(volume),
        "exported_from": "3D Slicer, DiDA module",
    }


def export_session(folder: str | os.PathLike, session: ExplainSession | None, force: bool = False,
                   figures: bool = True, report: bool = True) -> Path:
    """Write the results of ``session`` (its run's shown classes, every finished B-scan) into ``folder``; raises
    ``ValueError`` with one sentence when it cannot (nothing is written then). Returns the folder."""
    if session is None or session.explanation is None or not session.explanation.results or session.info is None:
        raise ValueError("There are no results of this session to export: explain a B-scan first (a run read back "
                         "from a saved scene keeps its maps but not DiDA's results).")
    volume = oct_from_volume_node(session.volume)
    protect = [p for p in (session.info.get("path"), volume.source) if p and os.path.exists(str(p))]
    if not force and Path(folder).is_dir() and any(Path(folder).iterdir()) and not replaceable(folder):
        check_output(folder, True, protect, WHAT)  # refuses with the sentence that names what is in the way
    return write_run_folder(folder, volume, session.explanation, shown_classes(session), run_summary(session, volume),
                            force, protect, WHAT,
                            figures=figures, report=report)


def shown_classes(session: ExplainSession) -> list[int]:
    """The classes the run shows (its overlays, best first), as ``dida explain`` writes its shown classes."""
    if session.run is not None and session.run.overlays:
        return [o.class_index for o in session.run.overlays]
    return session.explanation.select_classes(session.classes)
