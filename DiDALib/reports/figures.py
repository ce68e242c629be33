"""The DiDA View figure (the paper's Figure 5): the B-scan, then the top classes' Mixed Images over it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..engine.grid import grid_size
from ..engine.schedule import is_aligned
from ..maps.colour import grey_to_uint8, overlay
from ..maps.evidence import strongest_point
from ..pipeline import VolumeExplanation

SQUARE_COLOUR = (255, 220, 0)


def load_font(size: int) -> ImageFont.ImageFont:
    """Pillow's default font at ``size`` pixels (its fixed bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


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
    and the same small square drawn at ``point`` (default: where the shown classes' evidence maps are strongest)
    in all panels."""
    if index not in explanation.results:
        raise ValueError(f"B-scan {index} was not explained (explained: {explanation.indices})")
    result = explanation.results[index]
    classes = list(result.top_classes(3)) if classes is None else list(classes)
    scale = explanation.scale() if scale is None else scale
    titles = dict(titles or {})
    depth, width = explanation.bscan_shape
    mixed = [explanation.mixed(index, k, scale) for k in classes]
    if point is None:
        point = strongest_point([explanation.evidence(index, k) for k in classes])
    row, col = point
    if not (0 <= row < depth and 0 <= col < width):
        raise ValueError(f"point {point} lies outside the {depth} x {width} B-scan")

    grey = grey_to_uint8(bscan, 0.0, 1.0)
    panels = [np.repeat(grey[..., None], 3, axis=-1)]
    captions = [f"B-scan {index}" + (f" · diagnosis: {truth}" if truth else "")]
    for k, m in zip(classes, mixed):
        panels.append(overlay(grey, m, opacity))
        name = explanation.class_names[k]
        captions.append(f"{titles.get(name, name)}  {result.base_scores[k]:.3f}")

    ph = max(1, int(round(depth * panel_width / width)))
    gap, footer = 6, 28
    fig = Image.new("RGB", (len(panels) * panel_width + (len(panels) - 1) * gap, ph + footer), (24, 24, 24))
    draw = ImageDraw.Draw(fig)
    font = load_font(max(12, panel_width // 28))
    half = max(4, int(round(panel_width / 24)))
    sx, sy = panel_width / width, ph / depth
    for p, (img, caption) in enumerate(zip(panels, captions)):
        x0 = p * (panel_width + gap)
        fig.paste(Image.fromarray(img).resize((panel_width, ph), Image.Resampling.BILINEAR), (x0, 0))
        cx, cy = x0 + col * sx, row * sy
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), outline=SQUARE_COLOUR, width=2)
        if p == 0:
            _label(draw, (x0 + 6, 6), caption, font, "la")
        else:
            _label(draw, (x0 + panel_width - 6, ph - 6), caption, font, "rd")
    unit = "probability" if result.score == "probabilities" else "logit"
    sizes = sorted({grid_size(g) for g in result.grids})
    legend = (f"red: evidence for the class · blue: evidence against · full brightness at |d| = {scale:.3g} "
              f"({unit}) · {len(result.grids)} grids {sizes[0]}-{sizes[-1]}"
              + ("" if is_aligned(result.grids) else " (overlapping)"))
    draw.text((6, ph + footer // 2), legend, font=load_font(max(11, panel_width // 34)), fill=(220, 220, 220), anchor="lm")
    return fig
