"""Masked images on the device: fill values and one vectorised pass that hides each image's cells."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import torch
import torch.nn.functional as F

Fill = float | Sequence[float] | str

#: Fills computed from the image itself (the others are numbers, in the model-input domain).
FILL_NAMES: tuple[str, ...] = ("mean", "blur", "background")


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (C, H, W) tensor, edges replicated."""
    radius = max(1, int(round(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=image.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = (k / k.sum()).to(image.dtype)
    c = image.shape[0]
    img = image[None]
    img = F.pad(img, (radius, radius, 0, 0), mode="replicate")
    img = F.conv2d(img, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    img = F.pad(img, (0, 0, radius, radius), mode="replicate")
    img = F.conv2d(img, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return img[0]


def lateral_median(image: torch.Tensor, region: tuple[int, int, int, int], fraction: float = 0.5) -> torch.Tensor:
    """The B-scan's own reflectivity with focal structure removed: inside ``region`` every pixel becomes the median
    of its row over the neighbouring ``fraction`` of the region's columns (A-scans), edges mirrored.

    OCT layers run across the B-scan and lesions are local along it, so the lateral median keeps each depth's
    layer brightness (a masked cell shows retina, not a black hole that looks like fluid) and removes any finding
    narrower than half the window."""
    top, left, rh, rw = region
    sub = image[:, top : top + rh, left : left + rw]
    k = min(round(rw * fraction) // 2, rw - 1)  # half the window
    out = image.clone()
    if k < 1:
        return out
    padded = F.pad(sub[None], (k, k, 0, 0), mode="reflect")[0]  # (C, rh, rw + 2k)
    out[:, top : top + rh, left : left + rw] = padded.unfold(2, 2 * k + 1, 1).median(dim=-1).values
    return out


def fill_image(image: torch.Tensor, fill: Fill, region: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """What a masked cell shows, broadcastable against the (C, H, W) image.

    ``fill`` is a number or one number per channel (in the model-input domain), ``"mean"`` (the per-channel mean of
    the explained region), ``"blur"`` (a Gaussian-blurred copy, sigma = 1/20 of the region's smaller side, which
    removes detail at the scale of a cell while keeping the local brightness) or ``"background"`` (the lateral
    median, ``lateral_median``: the layers' own brightness at each depth, without the finding).
    """
    c, h, w = image.shape
    top, left, rh, rw = region if region is not None else (0, 0, h, w)
    if isinstance(fill, str):
        if fill == "mean":
            return image[:, top : top + rh, left : left + rw].mean(dim=(1, 2), keepdim=True)
        if fill == "blur":
            return gaussian_blur(image, sigma=max(1.0, min(rh, rw) / 20.0))
        if fill == "background":
            return lateral_median(image, (top, left, rh, rw))
        raise ValueError(f"fill {fill!r} is not known: use a number, one number per channel, {', '.join(FILL_NAMES)}")
    if isinstance(fill, bool):
        raise TypeError("fill must be a number, a sequence of numbers, 'mean' or 'blur', not a bool")
    if isinstance(fill, Real):
        values = [float(fill)]
    else:
        try:
            values = [float(v) for v in fill]
        except TypeError:
            raise TypeError(f"fill {fill!r} must be a number, one number per channel, 'mean' or 'blur'") from None
        if len(values) != c:
            raise ValueError(f"fill has {len(values)} values but the image has {c} channels: give one per channel")
    t = torch.tensor(values, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    if not torch.isfinite(t).all():
        raise ValueError(f"fill {values} is not finite")
    return t


def mask_batch(
    images: torch.Tensor,
    fills: torch.Tensor,
    hidden: torch.Tensor,
    image_index: torch.Tensor | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Build B masked images at once.

    ``images`` (M, C, H, W) are the sources and ``fills`` (M, C, H, W) or (M, C, 1, 1) what their masked cells
    show. Row b of the batch is source ``image_index[b]`` (source 0 when ``image_index`` is None, which needs no
    gather) with the pixels where ``hidden[b]`` ((B, 1, H, W) bool, e.g. ``plan.JobPlan.masks``) is True
    replaced by its fill; a mask without a True pixel leaves the image as it is.
    """
    if image_index is not None:
        images, fills = images[image_index], fills[image_index]
    elif images.shape[0] != 1:
        raise ValueError("image_index is needed when there is more than one source image")
    # Broadcasting one source against B masks writes each output pixel once, with no gathered copies.
    out = torch.where(hidden, fills, images)
    return out.contiguous(memory_format=memory_format)
