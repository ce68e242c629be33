"""Figures of the maps beyond the paper: the feature-scale map over a B-scan, and the en-face evidence of a volume."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..maps.colour import evidence_rgba, grey_to_uint8, to_uint8
from ..maps.enface import EnFaceMap
from ..maps.scale import FeatureScale
from ..maps.scale_colours import scale_palette, scale_rgba
from .figures import _label, load_font

BACKGROUND = (24, 24, 24)
UNEXPLAINED = (70, 70, 70)


def _composite(grey: np.ndarray, rgba: np.ndarray, opacity: float) -> np.ndarray:
    base = np.repeat(grey.astype(np.float32)[..., None] / 255.0, 3, axis=-1)
    alpha = opacity * rgba[..., 3:]
    return to_uint8(base * (1.0 - alpha) + rgba[..., :3] * alpha)


def scale_figure(bscan: np.ndarray, scales: Sequence[tuple[FeatureScale, str]], spacing: tuple[float, float],
                 unit: str = "mm", header: str = "", panel_width: int = 480, opacity: float = 0.85) -> Image.Image:
    """The B-scan, then each class's feature-scale map over it (one colour per grid size, opaque as the evidence),
    and a legend of the grid sizes with their cell sizes (lateral x axial, from ``spacing`` per pixel)."""
    depth, width = np.asarray(bscan).shape
    grey = grey_to_uint8(bscan, 0.0, 1.0)
    full = max((float(s.strength.max()) for s, _ in scales), default=0.0)
    images = [np.repeat(grey[..., None], 3, axis=-1)]
    images += [_composite(grey, scale_rgba(s.grid, s.strength, s.grids, full), opacity) for s, _ in scales]
    captions = [header] + [c for _, c in scales]
    ph = max(1, int(round(depth * panel_width / width)))
    gap, legend_h = 6, 34
    fig = Image.new("RGB", (len(images) * panel_width + (len(images) - 1) * gap, ph + legend_h), BACKGROUND)
    draw = ImageDraw.Draw(fig)
    font = load_font(max(12, panel_width // 28))
    for p, (img, caption) in enumerate(zip(images, captions)):
        x0 = p * (panel_width + gap)
        fig.paste(Image.fromarray(img).resize((panel_width, ph), Image.Resampling.NEAREST), (x0, 0))
        if caption and p == 0:
            _label(draw, (x0 + 6, 6), caption, font, "la")
        elif caption:
            _label(draw, (x0 + panel_width - 6, ph - 6), caption, font, "rd")
    grids = scales[0][0].grids if scales else ()
    small = load_font(max(11, panel_width // 34))
    x = 6
    for n, rgb in sorted(scale_palette(grids).items(), reverse=True):
        lateral, axial = scales[0][0].cell_size(n, (depth, width), spacing)
        draw.rectangle((x, ph + 10, x + 14, ph + 24), fill=tuple(int(round(255 * v)) for v in rgb))
        text = f"{n}x{n}: {lateral:.2g} x {axial:.2g} {unit}"
        draw.text((x + 18, ph + 17), text, font=small, fill=(220, 220, 220), anchor="lm")
        x += 26 + int(draw.textlength(text, font=small))
    return fig


def enface_rgb(m: EnFaceMap, scale: float) -> np.ndarray:
    """(n_bscans, width, 3) uint8: the evidence colour rule (red for, blue against) over black, grey where a B-scan
    was not explained."""
    pos = np.nan_to_num(m.positive / scale if scale > 0 else m.positive * 0)
    neg = np.nan_to_num(m.negative / scale if scale > 0 else m.negative * 0)
    rgba = evidence_rgba(np.clip(pos, 0, 1), np.clip(neg, 0, 1))
    rgb = to_uint8(rgba[..., :3] * np.sqrt(rgba[..., 3:]))  # brightness as a Mixed Image's: square root of |d| / s
    rgb[~m.explained] = UNEXPLAINED
    return rgb


def enface_figure(maps: Sequence[tuple[EnFaceMap, str]], spacing: tuple[float, float], scale: float,
                  unit: str = "mm", panel_width: int = 384, legend: str = "") -> Image.Image:
    """Each class's en-face evidence at the scan's true proportions (``spacing`` = lateral, B-scan distance), the
    last B-scan at the top: one panel per class, with its caption and ``legend`` below."""
    n_bscans, width = maps[0][0].positive.shape
    aspect = (n_bscans * spacing[1]) / (width * spacing[0])
    ph = max(n_bscans, min(4 * panel_width, int(round(panel_width * aspect))))
    gap, footer, top = 6, 26, 22
    fig = Image.new("RGB", (len(maps) * panel_width + (len(maps) - 1) * gap, top + ph + footer), BACKGROUND)
    draw = ImageDraw.Draw(fig)
    font = load_font(max(12, panel_width // 28))
    for p, (m, caption) in enumerate(maps):
        x0 = p * (panel_width + gap)
        img = Image.fromarray(enface_rgb(m, scale)[::-1]).resize((panel_width, ph), Image.Resampling.NEAREST)
        fig.paste(img, (x0, top))
        draw.text((x0 + 2, top // 2), caption, font=font, fill=(240, 240, 240), anchor="lm")
    text = legend or (f"red: evidence for · blue: against · strongest along each A-scan · full brightness at "
                      f"|d| = {scale:.3g} · {width} A-scans x {n_bscans} B-scans, {width * spacing[0]:.3g} x "
                      f"{n_bscans * spacing[1]:.3g} {unit}; B-scan 0 at the bottom")
    draw.text((6, top + ph + footer // 2), text, font=load_font(max(11, panel_width // 34)), fill=(220, 220, 220),
              anchor="lm")
    return fig


def enface_fundus_figure(maps: Sequence[tuple[EnFaceMap, str]], fundus: np.ndarray, positions: np.ndarray,
                         fundus_spacing: tuple[float, float], scale: float, panel_width: int = 384,
                         opacity: float = 0.85) -> Image.Image:
    """Each class's en-face evidence laid on the fundus image where its A-scans were taken (``enface_on_fundus``),
    in the evidence colours over the grey fundus, one panel per class."""
    from ..maps.enface import enface_on_fundus

    h, w = fundus.shape
    ph = max(1, int(round(h * panel_width / w)))
    grey = grey_to_uint8(fundus, 0.0, 1.0)
    gap, top = 6, 22
    fig = Image.new("RGB", (len(maps) * panel_width + (len(maps) - 1) * gap, top + ph), BACKGROUND)
    draw = ImageDraw.Draw(fig)
    font = load_font(max(12, panel_width // 28))
    for p, (m, caption) in enumerate(maps):
        pos, neg = enface_on_fundus(m, positions, (h, w), fundus_spacing)
        ok = ~np.isnan(pos)
        rgba = np.zeros((h, w, 4), np.float32)
        if scale > 0:
            rgba[ok] = evidence_rgba(np.clip(pos[ok] / scale, 0, 1), np.clip(neg[ok] / scale, 0, 1))
        img = _composite(grey, rgba, opacity)
        x0 = p * (panel_width + gap)
        fig.paste(Image.fromarray(img).resize((panel_width, ph), Image.Resampling.BILINEAR), (x0, top))
        draw.text((x0 + 2, top // 2), caption, font=font, fill=(240, 240, 240), anchor="lm")
    return fig
