"""The DiDA View figure (the paper's Figure 5): the B-scan, then the top classes' Mixed Images over it; and its
contrast variant, the B-scan then "A rather than B" panels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..engine.grid import grid_size
from ..engine.result import DiDAResult
from ..engine.schedule import is_aligned
from ..engine.saturation import saturation_warning
from ..engine.scores import format_score, score_unit
from ..explanation import VolumeExplanation
from ..maps.colour import grey_to_uint8, overlay
from ..maps.contrast import contrast_result, default_pairs
from ..maps.evidence import evidence_map, strongest_point
from ..maps.mixing import mixed_image, saturation_scale

SQUARE_COLOUR = (255, 220, 0)
#: Background of a band of text below a figure: the saturation warning (amber) and the demonstration notice (red).
WARNING_COLOUR = (120, 80, 0)
NOTICE_COLOUR = (150, 20, 20)
#: Drawn into every figure (and shown on every page) of a package whose model.json says ``demo``.
DEMO_NOTICE = "Demonstration model - not for clinical use"


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


def _label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font, anchor: str,
           background: tuple[int, int, int] = (0, 0, 0)) -> None:
    box = draw.textbbox(xy, text, font=font, anchor=anchor)
    pad = 3
    draw.rectangle((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), fill=background)
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
    result = _explained(explanation, index)
    classes = list(result.top_classes(3)) if classes is None else list(classes)
    scale = explanation.scale() if scale is None else scale
    titles = dict(titles or {})
    panels = []
    for k in classes:
        name = explanation.class_names[k]
        panels.append((result, k, f"{titles.get(name, name)}  {caption_score(result.base_scores[k], result.score)}"))
    legend = (f"red: evidence for the class · blue: evidence against · full brightness at |d| = {scale:.3g} "
              f"({score_unit(result.score)}) · {_grid_text(result)}")
    return panel_figure(bscan, bscan_header(index, truth), panels, explanation.weights, scale, legend, point,
                        panel_width, opacity, saturation_warning([result]))


def contrast_view_figure(
    bscan: np.ndarray,
    explanation: VolumeExplanation,
    index: int,
    pairs: Sequence[tuple[int, int]] | None = None,
    scale: float | None = None,
    point: tuple[int, int] | None = None,
    truth: str | None = None,
    titles: Mapping[str, str] | None = None,
    panel_width: int = 480,
    opacity: float = 0.85,
) -> Image.Image:
    """The B-scan, then one contrast panel per pair (A, B): red where a region speaks for A rather than B, blue
    where it speaks for B rather than A, with the margin C_A - C_B in the corner. The pairs default to the B-scan's
    top class against each of its next two; ``scale`` to the strongest contrast evidence of these pairs."""
    result = _explained(explanation, index)
    pairs = default_pairs(result.base_scores) if pairs is None else list(pairs)
    titles = dict(titles or {})
    names = explanation.class_names
    panels = []
    for a, b in pairs:
        c = contrast_result(result, a, b)
        panels.append((c, 0, f"{titles.get(names[a], names[a])} vs {titles.get(names[b], names[b])}  "
                             f"{caption_score(c.base_scores[0], result.score, signed=True)}"))
    if scale is None:
        scale = saturation_scale([c for c, _, _ in panels], weights=explanation.weights)
    legend = (f"red: speaks for the first class rather than the second · blue: for the second · full brightness at "
              f"|d_A - d_B| = {scale:.3g} ({score_unit(result.score)}) · {_grid_text(result)}")
    return panel_figure(bscan, bscan_header(index, truth), panels, explanation.weights, scale, legend, point,
                        panel_width, opacity, saturation_warning([result]))


def strongest_place(panels: Sequence[tuple[DiDAResult, int]], shape: tuple[int, int],
                    bscan_shape: tuple[int, int]) -> tuple[int, int]:
    """Where the square goes by default, in B-scan pixels: where the evidence maps of the panels' (result, class)
    are strongest, found on panels of ``shape`` (the PNG figure and the page find it alike, so they agree)."""
    depth, width = bscan_shape
    r, c = strongest_point([evidence_map(result, k, shape) for result, k in panels])
    return min(depth - 1, int((r + 0.5) * depth / shape[0])), min(width - 1, int((c + 0.5) * width / shape[1]))


def panel_figure(bscan: np.ndarray, header: str, panels: Sequence[tuple[DiDAResult, int, str]], weights, scale: float,
                 legend: str, point: tuple[int, int] | None = None, panel_width: int = 480,
                 opacity: float = 0.85, warning: str | None = None) -> Image.Image:
    """The B-scan with ``header`` in its corner, then for each (result, class, caption) its Mixed Image (``weights``,
    ``scale``) laid over the B-scan with the caption, the same small square at ``point`` (B-scan pixels; default:
    where the panels' evidence maps are strongest) in all of them, ``legend`` below, and ``warning`` (the
    saturation warning) in a band under it."""
    depth, width = np.asarray(bscan).shape
    ph = max(1, int(round(depth * panel_width / width)))
    mixed = [mixed_image(r, k, weights, scale, (ph, panel_width)) for r, k, _ in panels]
    if point is None:  # found on the panels, given in B-scan pixels
        point = strongest_place([(r, k) for r, k, _ in panels], (ph, panel_width), (depth, width))
    row, col = point
    if not (0 <= row < depth and 0 <= col < width):
        raise ValueError(f"point {point} lies outside the {depth} x {width} B-scan")

    # Every panel is built at its own size (the Mixed Images sampled straight onto it), so a figure of a huge
    # B-scan costs a few panels' worth of memory, not several image-sized RGB copies.
    sy, sx = ph / depth, panel_width / width
    grey = panel_bscan(bscan, (ph, panel_width))
    images = [np.repeat(grey[..., None], 3, axis=-1)] + [overlay(grey, m, opacity) for m in mixed]
    captions = [header] + [c for _, _, c in panels]
    gap, footer = 6, 28
    fig = Image.new("RGB", (len(images) * panel_width + (len(images) - 1) * gap, ph + footer), (24, 24, 24))
    draw = ImageDraw.Draw(fig)
    font = load_font(max(12, panel_width // 28))
    half = max(4, int(round(panel_width / 24)))
    for p, (img, caption) in enumerate(zip(images, captions)):
        x0 = p * (panel_width + gap)
        fig.paste(Image.fromarray(img), (x0, 0))
        cx, cy = x0 + col * sx, row * sy
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), outline=SQUARE_COLOUR, width=2)
        if p == 0:
            _label(draw, (x0 + 6, 6), caption, font, "la")
        else:
            _label(draw, (x0 + panel_width - 6, ph - 6), caption, font, "rd")
    draw.text((6, ph + footer // 2), legend, font=load_font(max(11, panel_width // 34)), fill=(220, 220, 220), anchor="lm")
    return add_band(fig, warning, WARNING_COLOUR) if warning else fig


def caption_score(value: float, mode: str, signed: bool = False) -> str:
    """A score in a panel's caption, named by its mode: ``p = 0.934``, ``log-odds 15.54`` (``engine.scores``)."""
    return format_score(value, mode, 3 if mode == "probabilities" else 2, signed)


def add_band(fig: Image.Image, text: str, background: tuple[int, int, int]) -> Image.Image:
    """``fig`` with a band of ``text`` below it, drawn into the image (so it stays with every copy of the figure);
    text wider than the figure wraps onto more lines."""
    font = load_font(max(12, min(18, fig.width // 60)))
    probe = ImageDraw.Draw(fig)
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and probe.textlength(trial, font=font) > fig.width - 24:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    step = int(font.size * 1.5) if hasattr(font, "size") else 16
    out = Image.new("RGB", (fig.width, fig.height + step * len(lines) + 8), background)
    out.paste(fig, (0, 0))
    draw = ImageDraw.Draw(out)
    for k, ln in enumerate(lines):
        _label(draw, (10, fig.height + 4 + step * k + step // 2), ln, font, "lm", background=background)
    return out


def _explained(explanation: VolumeExplanation, index: int) -> DiDAResult:
    if index not in explanation.results:
        raise ValueError(f"B-scan {index} was not explained (explained: {explanation.indices})")
    return explanation.results[index]


def bscan_header(index: int, truth: str | None) -> str:
    """The B-scan panel's header: its number and, where the input knows it, its label, said to be the input's (a
    bare diagnosis there read as the model's)."""
    return f"B-scan {index}" + (f" · label (file): {truth}" if truth else "")


def with_provenance(fig: Image.Image, demo: bool) -> Image.Image:
    """A figure as it is saved: with the demonstration notice drawn in below it when the model is a demo."""
    return add_band(fig, DEMO_NOTICE, NOTICE_COLOUR) if demo else fig


def _grid_text(result: DiDAResult) -> str:
    sizes = sorted({grid_size(g) for g in result.grids})
    return (f"{len(result.grids)} grids {sizes[0]}-{sizes[-1]}" + ("" if is_aligned(result.grids) else " (overlapping)")
            + (", Shapley values" if result.estimator == "shapley" else ""))
