"""The DiDA View figure (the paper's Figure 5): the B-scan, then the top classes' Mixed Images over it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..engine.scores import score_unit
from ..maps.colour import grey_to_uint8, overlay
from ..maps.mixing import MixedImage, mixed_image
from ..pipeline import VolumeExplanation

SQUARE_COLOUR = (255, 220, 0)


def load_font(size: int) -> ImageFont.ImageFont:
    """Pillow's default font at ``size`` pixels (its fixed bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def panel_bscan(bscan: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The B-scan resized (bilinear, antialiased) to a panel's (height, width) and windowed to grey uint8: resized
    first, so that a huge B-scan never has an image-sized RGB copy."""
    b = np.ascontiguousarray(bscan, dtype=np.float32)  # float32 2-D opens as a mode "F" image
    small = np.asarray(Image.fromarray(b).resize((size[1], size[0]), Image.Resampling.BILINEAR))
    return grey_to_uint8(small, 0.0, 1.0)


def strongest_point(mixed: Sequence[MixedImage]) -> tuple[int, int]:
    """(row, col) where the given Mixed Images' evidence, for or against, is strongest in total."""
    total = None
    for m in mixed:
        s = m.positive + m.negative
        total = s if total is None else total + s
    row, col = np.unravel_index(int(np.argmax(total)), total.shape)
    return int(row), int(col)


def _label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font, anchor: str) -> None:
    box = draw.textbbox(xy, text, font=font, anchor=anchor)
    pad = 3
    draw.rectangle((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), fill=(0, 0, 0))
    draw.text(xy, text, font=font, fill=(255, 255, 255), anchor=anchor)


def dida_view_figure(
    bscan: np.ndarray,
    explanation: VolumeExplanation,
    index: int,
    classes: Sequence[int] | None = None,
    scale: float | None = None,
    point: tuple[int, int] | None = None,
    truth: str | None = None,
    titles: Mapping[str, str] | None = None,
    panel_width: int = 480,
    opacity: float = 0.85,
) -> Image.Image:
    """Four panels side by side: the B-scan (with the known diagnosis when given), then the Mixed Image of each of
    the B-scan's top three classes (or ``classes``) laid over it, each with its class name and score in the corner,
    and the same small square drawn at ``point`` (default: the strongest evidence) in all panels."""
    if index not in explanation.results:
        raise ValueError(f"B-scan {index} was not explained (explained: {explanation.indices})")
    result = explanation.results[index]
    classes = list(result.top_classes(3)) if classes is None else list(classes)
    scale = explanation.scale() if scale is None else scale
    titles = dict(titles or {})
    depth, width = explanation.bscan_shape
    ph = max(1, int(round(depth * panel_width / width)))
    mixed = [mixed_image(result, k, explanation.weights, scale, (ph, panel_width)) for k in classes]
    if point is None:  # found on the panels, given in B-scan pixels
        r, c = strongest_point(mixed)
        point = (min(depth - 1, int((r + 0.5) * depth / ph)), min(width - 1, int((c + 0.5) * width / panel_width)))
    row, col = point
    if not (0 <= row < depth and 0 <= col < width):
        raise ValueError(f"point {point} lies outside the {depth} x {width} B-scan")

    # Every panel is built at its own size (the Mixed Images sampled straight onto it), so a figure of a huge
    # B-scan costs a few panels' worth of memory, not several image-sized RGB copies.
    sy, sx = ph / depth, panel_width / width
    grey = panel_bscan(bscan, (ph, panel_width))
    panels = [np.repeat(grey[..., None], 3, axis=-1)]
    captions = [f"B-scan {index}" + (f" · diagnosis: {truth}" if truth else "")]
    for k, m in zip(classes, mixed):
        panels.append(overlay(grey, m, opacity))
        name = explanation.class_names[k]
        captions.append(f"{titles.get(name, name)}  {result.base_scores[k]:.3f}")

    gap, footer = 6, 28
    fig = Image.new("RGB", (len(panels) * panel_width + (len(panels) - 1) * gap, ph + footer), (24, 24, 24))
    draw = ImageDraw.Draw(fig)
    font = load_font(max(12, panel_width // 28))
    half = max(4, int(round(panel_width / 24)))
    for p, (img, caption) in enumerate(zip(panels, captions)):
        x0 = p * (panel_width + gap)
        fig.paste(Image.fromarray(img), (x0, 0))
        cx, cy = x0 + col * sx, row * sy
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), outline=SQUARE_COLOUR, width=2)
        if p == 0:
            _label(draw, (x0 + 6, 6), caption, font, "la")
        else:
            _label(draw, (x0 + panel_width - 6, ph - 6), caption, font, "rd")
    unit = score_unit(result.score)
    legend = (f"red: evidence for the class · blue: evidence against · full brightness at |d| = {scale:.3g} "
              f"({unit}) · {len(result.grids)} grids {result.grids[0]}-{result.grids[-1]}")
    draw.text((6, ph + footer // 2), legend, font=load_font(max(11, panel_width // 34)), fill=(220, 220, 220), anchor="lm")
    return fig
