"""How a B-scan becomes the model input: width scaling, stretch or letterbox, channels and normalisation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .spec import ModelSpec


def input_region(bscan_shape: tuple[int, int], spec: ModelSpec) -> tuple[int, int, int, int]:
    """Where a B-scan of shape (depth, width) lands in the model input: (top, left, height, width)."""
    depth, width = int(bscan_shape[0]), int(bscan_shape[1])
    out_h, out_w = spec.input_size
    if spec.resize == "stretch":
        return (0, 0, out_h, out_w)
    eff_w = width * spec.width_scale
    scale = min(out_h / depth, out_w / eff_w)
    h = max(1, min(out_h, int(round(depth * scale))))
    w = max(1, min(out_w, int(round(eff_w * scale))))
    return ((out_h - h) // 2, (out_w - w) // 2, h, w)


def preprocess_bscan(bscan: np.ndarray, spec: ModelSpec) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """A B-scan (depth, width) of display intensities in [0, 1] as the model input (C, H, W), and the region it
    covers there. Width scaling and resizing are one bilinear, antialiased resize onto the region (the two linear
    maps compose), so DiDA's cells map back onto the B-scan as crisp rectangles; a letterbox margin stays black."""
    b = np.asarray(bscan, dtype=np.float32)
    if b.ndim != 2:
        raise ValueError(f"a B-scan must be 2D (depth, width); got shape {b.shape}")
    top, left, h, w = input_region(b.shape, spec)
    t = torch.from_numpy(np.ascontiguousarray(b))[None, None]
    t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0, 0]
    out_h, out_w = spec.input_size
    canvas = torch.zeros((out_h, out_w), dtype=torch.float32)
    canvas[top : top + h, left : left + w] = t
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(-1, 1, 1)
    x = (canvas[None].expand(spec.channels, out_h, out_w) - mean) / std
    return x.contiguous(), (top, left, h, w)
