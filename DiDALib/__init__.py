"""DiDALib: Differential Image Diagnostic Analysis for image classifiers, without Qt.

The engine (``DiDAEngine``) masks every cell of several grid sizes and records, for every class, how much the
score falls (``d > 0``, evidence for) or rises (``d < 0``, evidence against); ``mixed_image`` and ``render`` turn
those numbers into the paper's Grid and Mixed Images.

Names are imported on first use, so that ``import DiDALib.oct_readers`` (say, in Slicer's file reader at start-up)
does not load torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "describe_device": "devices",
    "resolve_device": "devices",
    "resolve_precision": "devices",
    "DiDACancelled": "engine",
    "DiDAEngine": "engine",
    "Progress": "engine",
    "as_image": "engine",
    "DEFAULT_GRIDS": "grid",
    "cell_boxes": "grid",
    "cell_index_map": "grid",
    "check_weights": "grid",
    "default_weights": "grid",
    "grid_edges": "grid",
    "validate_grids": "grid",
    "fill_image": "masks",
    "mask_batch": "masks",
    "MixedImage": "mixing",
    "brightness": "mixing",
    "cell_map": "mixing",
    "grid_image": "mixing",
    "mixed_image": "mixing",
    "mixed_images": "mixing",
    "saturation_scale": "mixing",
    "grey_to_uint8": "render",
    "mixed_to_rgb": "render",
    "overlay": "render",
    "signed_to_rgb": "render",
    "DiDAResult": "result",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'DiDALib' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
