"""Colour: the one rule that colours evidence (``evidence_rgba``, used by the PNG overlays and by the labelmap colour
table), Grid and Mixed Images as RGB (red for, blue against), and overlays on a grey B-scan."""

from __future__ import annotations

import numpy as np

from .mixing import MixedImage


def evidence_rgba(positive, negative, full: float = 1.0) -> np.ndarray:
    """RGBA in [0, 1] (last axis) of positive and negative evidence: the hue of the evidence (red for, blue
    against, purple where both, by their ratio) and an opacity that grows with its strength p + q, saturating at
    ``full`` (1 for brightness, the top level for quantised levels)."""
    pos = np.asarray(positive, dtype=np.result_type(positive, np.float32))
    neg = np.asarray(negative, dtype=pos.dtype)
    peak = np.maximum(np.maximum(pos, neg), 1e-12)
    return np.stack([pos / peak, np.zeros_like(pos), neg / peak, np.clip((pos + neg) / full, 0.0, 1.0)], axis=-1)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def signed_to_rgb(signed: np.ndarray) -> np.ndarray:
    """A signed brightness map in [-1, 1] (a Grid Image) as RGB uint8: red for >= 0, blue for < 0."""
    s = np.asarray(signed, dtype=np.float32)
    return to_uint8(np.stack([np.clip(s, 0, 1), np.zeros_like(s), np.clip(-s, 0, 1)], axis=-1))


def mixed_to_rgb(mixed: MixedImage) -> np.ndarray:
    """A Mixed Image as RGB uint8: red = positive evidence, blue = negative evidence (both can show)."""
    return to_uint8(np.stack([mixed.positive, np.zeros_like(mixed.positive), mixed.negative], axis=-1))


def grey_to_uint8(image: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """A B-scan windowed to uint8 grey (by default between its 0.5th and 99.5th percentiles)."""
    img = np.asarray(image, dtype=np.float32)
    finite = img[np.isfinite(img)]
    if low is None or high is None:
        lo, hi = (np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0))
        low = lo if low is None else low
        high = hi if high is None else high
    span = max(float(high) - float(low), 1e-12)
    return to_uint8(np.nan_to_num((img - low) / span))


def overlay(bscan: np.ndarray, mixed: MixedImage, opacity: float = 0.6) -> np.ndarray:
    """A Mixed Image laid semi-transparently over a grey B-scan (same shape), as RGB uint8.

    Each pixel takes the hue of its evidence (red, blue, or purple where both) with an opacity that grows with
    its strength, so places without contribution show the B-scan unchanged. ``bscan`` is uint8 grey, or any real
    image (windowed by ``grey_to_uint8``); ``opacity`` in [0, 1] is that of the strongest evidence.

    Returns (height, width, 3) uint8, e.g. for ``PIL.Image.fromarray(...).save("overlay.png")``.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity {opacity} must be within 0..1")
    grey = bscan if bscan.dtype == np.uint8 else grey_to_uint8(bscan)
    if grey.shape != mixed.positive.shape:
        raise ValueError(f"B-scan shape {grey.shape} differs from the Mixed Image's {mixed.positive.shape}")
    base = np.repeat(grey.astype(np.float32)[..., None] / 255.0, 3, axis=-1)
    rgba = evidence_rgba(mixed.positive, mixed.negative)
    alpha = opacity * rgba[..., 3:]
    return to_uint8(base * (1.0 - alpha) + rgba[..., :3] * alpha)
