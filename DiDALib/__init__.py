"""DiDALib: Differential Image Diagnostic Analysis for image classifiers, without Qt.

The library is laid out by job:

- ``engine``: the grid partition, on-device masks, devices, the engine (``DiDAEngine``) and its result type;
- ``runtime``: what runs the model's passes on a CPU (``auto``: the fastest runtime whose d equal torch's);
- ``maps``: Grid and Mixed Images, the evidence map, colours and the label encoding of overlays;
- ``io``: the OCT volume type, one reader module per source, the format registry, and the results files;
- ``models``: model packages (``model.json``), their architectures, loading, validation and preprocessing;
- ``mrml``: everything that touches Slicer's scene (runs in Slicer and on ``slicer-core``);
- ``reports``: the DiDA View figure and the interactive page (``report.html``);
- ``evaluation``: faithfulness metrics, baseline explainers and phantom cases (the benchmark's and CI's);
- ``pipeline`` (a volume and a model package to results), ``cli`` (the ``dida`` command), ``phantom``.

The engine masks every cell of several grid sizes and records, for every class, how much the score falls
(``d > 0``, evidence for) or rises (``d < 0``, evidence against), or each cell's Shapley value from random orders
of hiding the cells (``explain(..., estimator=Shapley())``, read like d); ``mixed_image`` and the colour functions turn
those numbers into the paper's Grid and Mixed Images, and ``evidence_map`` into one signed, measurable map per class
(most faithful on the overlapping grids of ``EVIDENCE_GRIDS``).

Quick start (README.md; the reference is ``help(DiDALib.DiDAEngine)`` and the help of every name below)::

    from DiDALib import DiDAEngine, mixed_image, overlay
    result = DiDAEngine(model).explain(image)        # image: (C, H, W) as the model takes it
    mixed = mixed_image(result, class_index=0)       # red: for class 0, blue: against it
    rgb = overlay(grey_image, mixed)                 # (H, W, 3) uint8

Grid schedules (tuples of grid keys): ``DEFAULT_GRIDS`` = ``PAPER_GRIDS``, the paper's aligned 7, 9, ..., 21;
``EVIDENCE_GRIDS``, sizes 7, 11 and 15 at 2 x 2 half-cell offsets; ``SHAPLEY_GRIDS``, 5 and 9 for
``estimator=Shapley()``; ``SCHEDULES`` by name (``paper``, ``evidence``). The rest of the API: docs/python.md.

Names are imported on first use, so that ``import DiDALib.io.registry`` (say, in Slicer's file reader at start-up)
does not load torch.
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "describe_device": ".engine.devices",
    "resolve_device": ".engine.devices",
    "resolve_precision": ".engine.devices",
    "DiDACancelled": ".engine.core",
    "DiDAEngine": ".engine.core",
    "Progress": ".engine.core",
    "as_image": ".engine.core",
    "DEFAULT_GRIDS": ".engine.grid",
    "SHAPLEY_GRIDS": ".engine.estimators",
    "Shapley": ".engine.estimators",
    "OffsetGrid": ".engine.grid",
    "grid": ".engine.grid",
    "passes_per_image": ".engine.grid",
    "EVIDENCE_GRIDS": ".engine.schedule",
    "PAPER_GRIDS": ".engine.schedule",
    "SCHEDULES": ".engine.schedule",
    "format_grids": ".engine.schedule",
    "offset_grids": ".engine.schedule",
    "parse_grids": ".engine.schedule",
    "schedule_grids": ".engine.schedule",
    "cell_boxes": ".engine.grid",
    "cell_index_map": ".engine.grid",
    "check_weights": ".engine.grid",
    "default_weights": ".engine.grid",
    "grid_edges": ".engine.grid",
    "validate_grids": ".engine.grid",
    "fill_image": ".engine.masks",
    "mask_batch": ".engine.masks",
    "DiDAResult": ".engine.result",
    "evidence_map": ".maps.evidence",
    "evidence_maps": ".maps.evidence",
    "MixedImage": ".maps.mixing",
    "brightness": ".maps.mixing",
    "cell_map": ".maps.mixing",
    "grid_image": ".maps.mixing",
    "mixed_image": ".maps.mixing",
    "mixed_images": ".maps.mixing",
    "saturation_scale": ".maps.mixing",
    "grey_to_uint8": ".maps.colour",
    "mixed_to_rgb": ".maps.colour",
    "overlay": ".maps.colour",
    "signed_to_rgb": ".maps.colour",
    "OCTReadError": ".io.volume",
    "OCTVolume": ".io.volume",
    "load_oct": ".io.registry",
    "load_results": ".io.results",
    "ModelPackageError": ".models.spec",
    "load_model_package": ".models.package",
    "ExplainSettings": ".pipeline",
    "VolumeExplainer": ".pipeline",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
