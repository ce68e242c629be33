"""What ``dida explain`` and ``dida demo`` check before the long computation, beside the output folder: that
loading the model package fits in memory (before it is loaded), and that the run fits in memory and its files on
the disk, with an automatic CPU batch size capped to what fits (``footprint`` has the estimates)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from ..footprint import Footprint, available_memory, fitting_batch, loading_footprint, run_footprint
from ..models.spec import ModelSpec, read_spec
from ..pipeline import ExplainSettings, parse_top


def check_loading(model: str | Path, limit: int | None = None) -> None:
    """Refuse a model package whose loading (weights and one test pass) would not fit in memory, before loading."""
    path = Path(model)
    if not path.exists():
        return  # the loader names what is missing
    spec = read_spec(path)
    weights = (path if path.is_dir() else path.parent) / spec.weights
    size = weights.stat().st_size if weights.is_file() else 0
    loading_footprint(spec.input_size, spec.channels, size).check(limit, "loading the model package")


def shown_classes(rule: str | Sequence[str], num_classes: int) -> int:
    """How many classes a run writes maps for."""
    if isinstance(rule, str):
        top = parse_top(rule)
        return num_classes if top is None else min(top, num_classes)
    return len(set(rule))


def plan_run(n_bscans: int, bscan_shape: Sequence[int], spec: ModelSpec, settings: ExplainSettings,
             explained: int, figures: bool, limit: int | None = None,
             note: Callable[[str], None] = lambda _msg: None, contrasts: int = 0) -> tuple[ExplainSettings, Footprint]:
    """The settings to run with and the run's footprint, refused (``NotEnoughMemory``) if it cannot fit in
    ``limit`` (default: the memory available now). Without ``--batch-size`` on the CPU, the engine may try
    batches up to 32 images: where those would not fit, the largest batch that does is fixed instead."""
    from ..engine.devices import CPU_BATCH_CANDIDATES, resolve_device
    from ..engine.grid import validate_grids
    from ..models.preprocess import input_region

    _, _, height, width = input_region(tuple(bscan_shape), spec)
    try:  # against the region the B-scans fill in the model input, before any progress is shown
        validate_grids(settings.grids, height, width)
    except ValueError as exc:
        raise ValueError(f"--grids: {exc}") from None
    passes = settings.passes_per_image()
    shown = shown_classes(settings.classes, len(spec.classes))

    def footprint(batch: int) -> Footprint:
        return run_footprint(n_bscans, bscan_shape, explained, len(spec.classes), shown, passes, spec.input_size,
                             spec.channels, batch, figures, contrasts, len(settings.grids))

    if resolve_device(settings.device).type == "cuda":
        return settings, _checked(footprint(1), limit)  # batches live on the GPU, which halves them when full
    if settings.batch_size is not None:
        return settings, _checked(footprint(settings.batch_size), limit)
    room = limit if limit is not None else available_memory()
    if room is not None and footprint(max(CPU_BATCH_CANDIDATES)).peak > room:
        batch = fitting_batch(lambda b: footprint(b).peak <= room, CPU_BATCH_CANDIDATES)
        if batch is not None:
            note(f"batches of {batch} image(s) (larger ones would not fit in memory)")
            return dataclasses.replace(settings, batch_size=batch), footprint(batch)
        return settings, _checked(footprint(1), limit)
    return settings, footprint(max(CPU_BATCH_CANDIDATES))


def _checked(footprint: Footprint, limit: int | None) -> Footprint:
    footprint.check(limit)
    return footprint
