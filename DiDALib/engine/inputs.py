"""What enters the engine, checked once: an image in model-input form, a region of it, a volume's shared shape,
and a cancel request."""

from __future__ import annotations

import numpy as np
import torch


def cancel_requested(cancel) -> bool:
    """Whether ``cancel`` (None, a callable or a ``threading.Event``) asks the run to stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def as_image(image, name: str = "image") -> torch.Tensor:
    """Check one model-input image and return it as a float32 (C, H, W) tensor (never a view the caller owns)."""
    if isinstance(image, np.ndarray):
        if image.dtype == bool or not (np.issubdtype(image.dtype, np.number)) or np.iscomplexobj(image):
            raise TypeError(f"{name} has dtype {image.dtype}: DiDA needs real-valued pixels")
        t = torch.from_numpy(np.array(image, dtype=np.float32, copy=True))
    elif isinstance(image, torch.Tensor):
        if image.dtype == torch.bool or image.is_complex():
            raise TypeError(f"{name} has dtype {image.dtype}: DiDA needs real-valued pixels")
        t = image.detach().to(torch.float32, copy=True)
    else:
        raise TypeError(f"{name} is a {type(image).__name__}: give a (C, H, W) numpy array or torch tensor")
    if t.ndim != 3:
        hint = " (a grey 2D image needs a channel axis: image[None])" if t.ndim == 2 else ""
        raise ValueError(
            f"{name} has {t.ndim} dimension(s), shape {tuple(t.shape)}: DiDA explains one (C, H, W) image "
            f"in model-input form{hint}"
        )
    if min(t.shape) < 1:
        raise ValueError(f"{name} is empty, shape {tuple(t.shape)}")
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise ValueError(
            f"{name} has {bad} non-finite pixel(s) (NaN or inf): repair or replace them (e.g. numpy.nan_to_num) "
            "before explaining"
        )
    return t


def same_shape(index: int, image: torch.Tensor, first: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape every image of a volume must share (the first one's); a clear error for one that differs, before
    images of different shapes meet in one batch. ``image`` is image ``index`` as the engine holds it, (1, C, H, W)."""
    shape = tuple(image.shape[1:])
    if first is not None and shape != first:
        what = "their number of channels" if shape[0] != first[0] else "height x width"
        raise ValueError(
            f"image {index} has shape {shape} (C, H, W) but image 0 has {first}: they differ in {what}; "
            "every image of a volume must have the same shape"
        )
    return shape


def check_region(region, height: int, width: int) -> tuple[int, int, int, int]:
    if region is None:
        return (0, 0, height, width)
    try:
        top, left, h, w = (int(v) for v in region)
    except (TypeError, ValueError):
        raise ValueError(f"region {region!r} must be (top, left, height, width)") from None
    if top < 0 or left < 0 or h < 1 or w < 1 or top + h > height or left + w > width:
        raise ValueError(f"region {(top, left, h, w)} does not lie inside the {height} x {width} image")
    return (top, left, h, w)
