"""The DiDA module's choices turned into what a run needs, without Qt: the settings the worker gets, the B-scans
and classes to explain, and the texts the module shows. ``DiDA.py`` passes the parameter node's plain values (an
enum's ``.value``), so all of this is tested on ``slicer-core``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..engine.estimators import LEAVE_ONE_OUT, SHAPLEY, SHAPLEY_GRIDS
from ..engine.grid import check_weights, validate_grids
from ..engine.schedule import SCHEDULES, grid_json
from ..explanation import parse_top
from ..io.volume import geometry_note
from ..models.python_code import code_to_trust
from ..models.spec import read_spec
from ..runtime import check_runtime
from .layout import BSCAN_VIEW, shows_dida_layout, view_node
from .overlays import overlay_bytes
from .volumes import bscan_count, bscan_shown, scan_geometry


def numbers(text: str, what: str) -> list[float]:
    """Numbers separated by commas (or semicolons)."""
    try:
        return [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"The {what} must be numbers separated by commas: {text!r}") from None


def run_settings(grid_preset: str, custom_grids: str, custom_weights: str, fill: str, score: str,
                 classes: str | Sequence[str], device: str, runtime: str = "auto",
                 estimator: str = LEAVE_ONE_OUT) -> dict:
    """``ExplainSettings`` fields as plain values for the worker (``score="model"`` takes the package's own); a
    preset other than ``"custom"`` is a named schedule (``engine.schedule.SCHEDULES``: ``"paper"``, ``"evidence"``),
    its grids in their JSON form (``grid_json``: a shifted grid as text). Grid sizes and weights are checked here,
    so a bad choice fails before any run. The Shapley estimator runs on its own grids (``SHAPLEY_GRIDS``, the
    paper's budget shared out), whatever the preset."""
    weights = None
    if estimator == SHAPLEY:
        grids = SHAPLEY_GRIDS
    elif grid_preset != "custom":
        grids = SCHEDULES[grid_preset]
    else:
        sizes = numbers(custom_grids, "grid sizes")
        if not sizes or any(v != int(v) for v in sizes):
            raise ValueError("Grid sizes must be whole numbers of cells per side, e.g. 7, 11, 15.")
        grids = tuple(int(v) for v in sizes)
        weights = tuple(numbers(custom_weights, "weights")) or None
        validate_grids(grids, max(grids), max(grids))
        if weights is not None:
            check_weights(weights, sorted(grids))
    return {"grids": [grid_json(g) for g in grids], "weights": list(weights) if weights is not None else None,
            "fill": fill, "score": None if score == "model" else score,
            "classes": classes if isinstance(classes, str) else list(classes), "device": device,
            "runtime": check_runtime(runtime),
            **({"estimator": SHAPLEY} if estimator == SHAPLEY else {})}


def class_rule(choice: str, names: str) -> str | tuple[str, ...]:
    """``"top3"`` or ``"all"`` as chosen, or the class names typed (``choice == "named"``)."""
    if choice == "named":
        chosen = tuple(n.strip() for n in names.split(",") if n.strip())
        if not chosen:
            raise ValueError("Name at least one class, or choose Top 3.")
        return chosen
    return choice


def current_bscan(volume) -> int:
    """The B-scan on screen: in the DiDA View's B-scan view when that layout is shown, else in Red."""
    scene = volume.GetScene()
    layout_node = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    k = bscan_shown(volume, view_node(scene, BSCAN_VIEW if shows_dida_layout(layout_node) else "Red"))
    return k if k is not None else bscan_count(volume) // 2


def bscan_indices(volume, scope: str, first: int, last: int, current: bool) -> list[int]:
    """The B-scans to explain: the one on screen (``current``, or scope ``"current"``), a range, or all."""
    count = bscan_count(volume)
    if current or scope == "current":
        return [current_bscan(volume)]
    if scope == "range":
        if not 0 <= first <= last < count:
            raise ValueError(f"B-scan range {first} to {last} is not within 0 to {count - 1}")
        return list(range(first, last + 1))
    return list(range(count))


def describe_volume(volume) -> str:
    if not volume or volume.GetImageData() is None:
        return ""
    width, depth, count = volume.GetImageData().GetDimensions()
    s = volume.GetSpacing()
    note = geometry_text(volume)
    if note:  # the third spacing of a circle or radial scan is a placeholder: it is not shown as a distance
        return f"{count} B-scan(s) of {depth} x {width} pixels, A-scan spacing {s[0]:.4g} mm, depth {s[1]:.4g} mm\n{note}"
    return f"{count} B-scan(s) of {depth} x {width} pixels, spacing {s[0]:.4g} x {s[1]:.4g} x {s[2]:.4g} mm"


def geometry_text(volume) -> str:
    """For a circle or radial scan, what the views show and do not ("" for a Cartesian volume)."""
    geometry = scan_geometry(volume)
    if geometry == "cartesian":
        return ""
    return (f"{geometry.capitalize()} scan: B-scans are shown side by side as slices; nothing here is a 3-D "
            f"geometry ({geometry_note(geometry)}).")


def describe_model(folder: str | Path) -> str:
    """The model package in one line (name, classes, demo warning), or its problem."""
    try:
        spec = read_spec(folder)
    except Exception as exc:  # every problem of a package is shown, none raised
        return f"Model problem: {exc}"
    text = f"{spec.name}: {len(spec.classes)} classes ({', '.join(spec.classes)})"
    code = code_to_trust(folder)
    if code is not None:
        how = "builds its network with its own Python code" if code.suffix == ".py" else "runs a program that calls " \
            "more than tensor operators"
        text += f" - {how} ({code.name}): DiDA asks before running it"
    return text + (" - a demonstration model, not for clinical use" if spec.demo else "")


def overlay_memory(volume, rule: str | Sequence[str], folder: str | Path) -> int:
    """Bytes the overlays of the chosen classes take on the volume (labels and float maps)."""
    if not volume or volume.GetImageData() is None:
        return 0
    total = len(read_spec(folder).classes)
    count = len(rule) if not isinstance(rule, str) else (parse_top(rule) or total)
    return overlay_bytes(volume, min(count, total))


def model_folder(use_demo: bool, folder) -> Path:
    """The model package chosen: the bundled demo model, or a folder."""
    if use_demo:
        from ..models.package import demo_model_path

        return demo_model_path()
    text = str(folder or "")
    if text in ("", "."):
        raise ValueError("Choose a model package folder, or use the bundled demo model.")
    return Path(text)


def run_choices(p, current: bool) -> tuple[dict, list[int]]:
    """The worker's settings and the B-scans to explain, from the module's parameter node ``p`` (its enums'
    ``.value`` and plain fields)."""
    rule = class_rule(p.classChoice.value, p.classNames)
    settings = run_settings(p.gridPreset.value, p.customGrids, p.customWeights, p.fill.value, p.scoreMode.value,
                            rule, p.device.value, p.runtime.value, p.estimator.value)
    volume = p.inputVolume
    indices = bscan_indices(volume, p.scope.value, int(p.firstBScan), int(p.lastBScan), current) if volume else []
    return settings, indices
