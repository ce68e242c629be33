"""DiDALib: Differential Image Diagnostic Analysis for image classifiers, without Qt.

The engine (``DiDAEngine``) masks every cell of several grid sizes and records, for every class, how much the
score falls (``d > 0``, evidence for) or rises (``d < 0``, evidence against); ``mixed_image`` and ``render`` turn
those numbers into the paper's Grid and Mixed Images.
"""

from .devices import describe_device, resolve_device, resolve_precision
from .engine import DiDACancelled, DiDAEngine, Progress, as_image
from .grid import DEFAULT_GRIDS, cell_boxes, cell_index_map, check_weights, default_weights, grid_edges, validate_grids
from .masks import fill_image, mask_batch
from .mixing import MixedImage, brightness, cell_map, grid_image, mixed_image, mixed_images, saturation_scale
from .render import grey_to_uint8, mixed_to_rgb, overlay, signed_to_rgb
from .result import DiDAResult

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_GRIDS",
    "DiDACancelled",
    "DiDAEngine",
    "DiDAResult",
    "MixedImage",
    "Progress",
    "as_image",
    "brightness",
    "cell_boxes",
    "cell_index_map",
    "cell_map",
    "check_weights",
    "default_weights",
    "describe_device",
    "fill_image",
    "grey_to_uint8",
    "grid_edges",
    "grid_image",
    "mask_batch",
    "mixed_image",
    "mixed_images",
    "mixed_to_rgb",
    "overlay",
    "resolve_device",
    "resolve_precision",
    "saturation_scale",
    "signed_to_rgb",
    "validate_grids",
]
