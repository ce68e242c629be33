"""What the interactive DiDA View page shows, made in Python: every colour and every number the page displays.

The page (``reports.html``) only looks up and composites; it holds no colour rule and computes no evidence:

- Every map the page shows depends on the pixel only through the cells that hold it, so it is constant on the
  *atoms* of the panel: the rectangles cut by every grid's row and column edges together (about 100 x 100 on a
  480-pixel panel with the 8 default grids). Each (B-scan, class) ships its map once per atom, as a small
  lossless image, and the page expands it through two shared index arrays (row -> atom row, column -> atom
  column).
- Each atom carries the Mixed Image's positive and negative brightness quantised to 256 levels (red and green)
  and the feature scale's grid and strength (blue). The colours are lookup tables made by the project's one
  colour rule (``maps.colour.evidence_rgba`` at 256 levels per sign, as ``maps.labels`` makes Slicer's table at
  16, and ``maps.scale_colours.scale_rgba``).
- The readout under the cursor is the run's own d (float32, as in ``dida_results.npz``) looked up by the cell of
  each grid that holds the atom; the square's first place per B-scan is ``strongest_place``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, features

from ..engine.result import DiDAResult
from ..engine.scores import score_unit
from ..explanation import VolumeExplanation
from ..maps.colour import evidence_rgba
from ..maps.contrast import contrast_name, contrast_result
from ..maps.enface import enface_map, enface_scale
from ..maps.mixing import MixedImage, cell_map, mixed_image
from ..maps.scale import FeatureScale, feature_scale, grid_sizes
from ..maps.scale_colours import scale_palette, scale_rgba
from .figures import SQUARE_COLOUR, panel_bscan, strongest_place
from .map_figures import enface_rgb

#: Classes whose maps a page carries at most (all of a model with this many or fewer; else the best-scoring ones).
PAGE_CLASSES = 12
#: Grey B-scans are lossless PNG while all of them together stay under this many bytes; beyond it JPEG (quality
#: ``JPEG_QUALITY``), which halves them on speckled OCT and keeps a 128-B-scan page well under 30 MB.
LOSSLESS_GREY_BYTES = 8_000_000
JPEG_QUALITY = 90
#: Quantisation of the Mixed Image's brightness per sign on the page (the labelmaps use 16 for Slicer's table).
PAGE_LEVELS = 256
#: A score's name in the page's captions, as in the figures' (``reports.figures.caption_score``).
SCORE_LABELS = {"probabilities": "p", "logits": "logit", "log-odds": "log-odds"}
#: One line colour per class in the score plot (categorical; evidence keeps red and blue).
CLASS_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
                 "#9c755f", "#bab0ac", "#17becf", "#bcbd22")


def b64(data: bytes | np.ndarray) -> str:
    """Bytes (or an array's little-endian bytes) as base64 text."""
    raw = data.astype(data.dtype.newbyteorder("<")).tobytes() if isinstance(data, np.ndarray) else bytes(data)
    return base64.b64encode(raw).decode("ascii")


def image_url(pixels: np.ndarray, lossless: bool = True) -> str:
    """A uint8 image (H, W) or (H, W, 3) as a data URL: lossless WebP where Pillow writes it (the demo's atom images
    took 3.6 kB each, PNG 5.5 kB), else PNG; JPEG where ``lossless`` is False."""
    img = Image.fromarray(np.ascontiguousarray(pixels))
    buf = io.BytesIO()
    if not lossless:
        img.save(buf, format="JPEG", quality=JPEG_QUALITY)
        mime = "jpeg"
    elif features.check("webp") and img.mode == "RGB":
        img.save(buf, format="WEBP", lossless=True, quality=50, method=2)  # 6 ms; method 6 took 600, no smaller
        mime = "webp"
    else:
        # Speckle barely compresses: level 6 gave 108 kB for 115 kB on a demo panel, in 20 ms for 15 with the resize.
        img.save(buf, format="PNG", compress_level=1)
        mime = "png"
    return f"data:image/{mime};base64," + b64(buf.getvalue())


def panel_shape(bscan_shape: tuple[int, int], panel_width: int) -> tuple[int, int]:
    """(height, width) of a panel, as the PNG figures size theirs."""
    depth, width = bscan_shape
    return max(1, round(depth * panel_width / width)), int(panel_width)


@dataclass(frozen=True)
class Atoms:
    """The atoms of a panel: ``rows[y]`` / ``cols[x]`` the atom row / column of each panel row / column, ``row_at``
    / ``col_at`` one panel row / column inside each atom, and ``cells[g]`` (atom rows, atom columns) the cell
    number (``cell_map``) of grid g that holds each atom."""

    rows: np.ndarray
    cols: np.ndarray
    row_at: np.ndarray
    col_at: np.ndarray
    cells: dict[int, np.ndarray]

    def sample(self, panel_map: np.ndarray) -> np.ndarray:
        """A map on the panel's pixels as one value per atom, checked to be constant on every atom."""
        values = panel_map[np.ix_(self.row_at, self.col_at)]
        if not np.array_equal(values[self.rows][:, self.cols], panel_map, equal_nan=True):
            raise ValueError("a page map is not constant on the grid cells: it cannot be stored per atom")
        return values


def _first_seen(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``keys`` numbered by first appearance: (index of each row's group, first row of each group)."""
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.ravel()].astype(np.int64), first[order]


def panel_atoms(result: DiDAResult, shape: tuple[int, int]) -> Atoms:
    """The atoms of a result's grids sampled onto a panel of ``shape`` (every grid's cell map, as ``mixed_image``
    samples it). Works for any grids whose cells are products of row and column bands."""
    maps = np.stack([cell_map(result, g, shape) for g in result.grids])  # (G, H, W)
    rows, row_at = _first_seen(maps.transpose(1, 0, 2).reshape(shape[0], -1))
    cols, col_at = _first_seen(maps.transpose(2, 0, 1).reshape(shape[1], -1))
    cells = {g: maps[i][np.ix_(row_at, col_at)] for i, g in enumerate(result.grids)}
    atoms = Atoms(rows, cols, row_at, col_at, cells)
    for i in range(len(result.grids)):
        atoms.sample(maps[i])  # the cells are products of row and column bands, or this refuses
    return atoms


def evidence_lut(levels: int = PAGE_LEVELS) -> np.ndarray:
    """(levels * levels * 4,) uint8: the RGBA of label ``p * levels + q`` (p, q the quantised positive and negative
    brightness) by ``evidence_rgba``, exactly as ``maps.labels`` colours Slicer's labels."""
    p, q = np.divmod(np.arange(levels * levels, dtype=np.float64), levels)
    return np.clip(np.rint(evidence_rgba(p, q, full=levels - 1) * 255), 0, 255).astype(np.uint8).ravel()


def scale_levels(n_grids: int) -> int:
    """Strength levels of the feature scale per grid in the blue channel (``grid index * levels + level``)."""
    return 256 // (n_grids + 1)


def scale_lut(grids: Sequence[int]) -> np.ndarray:
    """(256 * 4,) uint8: the RGBA of blue value ``i * L + s`` (i the 1-based grid index, s the strength level) by
    ``scale_rgba``; 0 (no scale) transparent."""
    levels = scale_levels(len(grids))
    value = np.arange(256)
    index, level = np.divmod(value, levels)
    valid = (index >= 1) & (index <= len(grids))
    grid = np.where(valid, np.asarray([0, *grids])[np.minimum(index, len(grids))], 0)
    # Levels are uniform in opacity (scale_rgba's opacity is the square root of strength / full).
    strength = (level / max(levels - 1, 1)) ** 2
    return np.clip(np.rint(scale_rgba(grid, strength, grids, 1.0) * 255), 0, 255).astype(np.uint8).ravel()


def quantise(brightness: np.ndarray, levels: int = PAGE_LEVELS) -> np.ndarray:
    """Brightness in [0, 1] as uint8 levels (the page's ``encode_labels`` at ``levels`` per sign)."""
    return np.clip(np.rint(np.nan_to_num(brightness) * (levels - 1)), 0, levels - 1).astype(np.uint8)


def scale_channel(fs: FeatureScale, full: float) -> np.ndarray:
    """The blue channel of one class's feature scale on a panel: 0 where no scale, else grid index * L + level, the
    level uniform in the opacity ``scale_rgba`` gives strength / ``full``."""
    grids = list(fs.grids)
    levels = scale_levels(len(grids))
    index = np.zeros(fs.grid.shape, np.int64)
    for i, n in enumerate(grids, start=1):
        index[fs.grid == n] = i
    rel = np.sqrt(np.clip(fs.strength / full, 0.0, 1.0)) if full > 0 else np.zeros(fs.grid.shape)
    level = np.clip(np.rint(rel * (levels - 1)), 0, levels - 1).astype(np.int64)
    return np.where(index > 0, index * levels + level, 0).astype(np.uint8)


def page_classes(explanation: VolumeExplanation, limit: int = PAGE_CLASSES) -> list[int]:
    """The classes a page carries: every class of a model with at most ``limit``, else the ``limit`` classes of
    highest score over the B-scans (model order kept)."""
    k = len(explanation.class_names)
    if k <= limit:
        return list(range(k))
    return sorted(explanation.select_classes(f"top{limit}"))


def _atom_image(atoms: Atoms, mixed: MixedImage, blue: np.ndarray | None) -> str:
    p, q = atoms.sample(quantise(mixed.positive)), atoms.sample(quantise(mixed.negative))
    b = atoms.sample(blue) if blue is not None else np.zeros_like(p)
    return image_url(np.stack([p, q, b], axis=-1))


@dataclass
class PageSource:
    """A run as the page needs it: results, the B-scans (n_bscans, depth, width) in [0, 1], the contrast pairs
    and their saturation scale, and what run.json says (``run``: spacing, score, model, input)."""

    explanation: VolumeExplanation
    bscans: np.ndarray
    run: Mapping
    pairs: Sequence[tuple[int, int]] = ()
    contrast_scale: float = 0.0
    truths: Sequence[str] | None = None
    point: tuple[int, int] | None = None  # (row, col) in B-scan pixels where the square starts (default: strongest)


def page_data(src: PageSource, panel_width: int = 480) -> dict:
    """Everything the page shows, as JSON-ready values (base64 for arrays and images)."""
    ex = src.explanation
    indices = ex.indices
    first = ex.results[indices[0]]
    shape = panel_shape(ex.bscan_shape, panel_width)
    if src.point is not None and not all(0 <= v < n for v, n in zip(src.point, ex.bscan_shape)):
        raise ValueError(f"point {tuple(src.point)} lies outside the {ex.bscan_shape[0]} x {ex.bscan_shape[1]} B-scans")
    classes = page_classes(ex)
    scale = ex.scale()
    atoms = panel_atoms(first, shape)
    # Lossless while the first B-scan's PNG, times the B-scans, fits the budget (speckle makes them all alike).
    lossless = _png_bytes(panel_bscan(src.bscans[indices[0]], shape)) * len(indices) <= LOSSLESS_GREY_BYTES
    with_scale = scale_levels(len(grid_sizes(first.grids))) >= 2
    bscans = []
    for i in indices:
        r = ex.results[i]
        top = [int(k) for k in r.top_classes(3)]
        scales = {k: feature_scale(r, k, shape) for k in classes} if with_scale else {}
        # The opacity of the feature scale saturates as in the scale figure: at the strongest of the top classes.
        full = max((float(scales[k].strength.max()) for k in top if k in scales), default=0.0)
        maps = [_atom_image(atoms, mixed_image(r, k, ex.weights, scale, shape),
                            scale_channel(scales[k], full) if with_scale else None) for k in classes]
        pairs = [_atom_image(atoms, mixed_image(contrast_result(r, a, b), 0, ex.weights, src.contrast_scale, shape),
                             None) for a, b in src.pairs]
        bscans.append({
            "index": i,
            "scores": [float(v) for v in r.base_scores],
            "order": [int(k) for k in np.argsort(-r.base_scores, kind="stable")],
            "point": list(src.point or strongest_place([(r, k) for k in top], shape, ex.bscan_shape)),
            "grey": image_url(panel_bscan(src.bscans[i], shape), lossless),
            "maps": maps,
            "pairs": pairs,
            "truth": src.truths[i] if src.truths else None,
        })
    grids = list(first.grids)
    slot = {k: s for s, k in enumerate(classes)}
    # Per grid (in the order of ``grids``): d of every explained B-scan and carried class, float32 as in the npz.
    d = [b64(np.stack([ex.results[i].deltas[g][classes].reshape(len(classes), -1) for i in indices])
             .astype(np.float32)) for g in grids]
    wide = [int(atoms.cells[g].max()) >= 65536 for g in grids]
    return {
        "format": "dida-page/1",
        "class_names": list(ex.class_names),
        "classes": classes,
        "class_colours": [CLASS_COLOURS[s % len(CLASS_COLOURS)] for s in range(len(classes))],
        "bscans": bscans,
        "n_bscans": int(src.bscans.shape[0]),
        "bscan_shape": list(ex.bscan_shape),
        "panel": list(shape),
        "grids": [g if isinstance(g, (int, np.integer)) else str(g) for g in grids],
        "grid_names": [f"{g} x {g}" if isinstance(g, (int, np.integer)) else str(g) for g in grids],
        "cells": [b64(atoms.cells[g].astype(np.uint32 if w else np.uint16)) for g, w in zip(grids, wide)],
        "cell_bytes": [4 if w else 2 for w in wide],
        "d": d,
        "class_slot": {str(k): s for k, s in slot.items()},
        "shown": _shown(ex, classes, src.run),
        "atoms": {"rows": b64(atoms.rows.astype(np.uint16)), "cols": b64(atoms.cols.astype(np.uint16)),
                  "n_rows": int(atoms.row_at.size), "n_cols": int(atoms.col_at.size)},
        "lut": b64(evidence_lut()),
        "scale_lut": b64(scale_lut(grid_sizes(grids))) if with_scale else None,
        "scale_legend": _scale_legend(grid_sizes(grids), ex.bscan_shape, src.run) if with_scale else [],
        "pairs": [{"a": a, "b": b, "name": contrast_name(ex.class_names, a, b)} for a, b in src.pairs],
        "saturation_scale": scale,
        "contrast_scale": src.contrast_scale,
        "score_unit": score_unit(first.score),
        "estimator": first.estimator,
        "score_label": SCORE_LABELS.get(first.score, first.score),  # how a caption names a score: "p = 0.934"
        "square": {"half": max(4, round(panel_width / 24)),  # as the figure's
                    "colour": _hex(SQUARE_COLOUR)},
        "grey_format": "PNG (lossless)" if lossless else f"JPEG (quality {JPEG_QUALITY})",
        # a volume of one B-scan has no en-face extent, and one explained B-scan no line of scores
        "enface": _enface(ex, classes, int(src.bscans.shape[0]), src.run) if src.bscans.shape[0] > 1 else None,
        "plot": len(indices) > 1,
    }


def _shown(ex: VolumeExplanation, classes: Sequence[int], run: Mapping) -> list[int]:
    """The classes the run shows (``--classes``), which the panels start with; every carried class when the run
    does not say."""
    names = list(ex.class_names)
    shown = [names.index(c) for c in run.get("classes_shown", ()) if c in names and names.index(c) in classes]
    return shown or list(classes)


def _hex(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def _png_bytes(grey: np.ndarray) -> int:
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG", compress_level=1)
    return buf.tell()


def _spacing(run: Mapping) -> tuple[list[float], str]:
    if "spacing_mm" in run:
        return [float(v) for v in run["spacing_mm"]], "mm"
    return [float(v) for v in run.get("spacing_pixels", (1.0, 1.0, 1.0))], "px"


def _scale_legend(grids: Sequence[int], bscan_shape: tuple[int, int], run: Mapping) -> list[dict]:
    """Each grid's colour and cell size (lateral x axial), as the scale figure's legend names them."""
    (lateral, axial, _), unit = _spacing(run)
    depth, width = bscan_shape
    palette = scale_palette(grids)
    return [{"grid": g, "colour": _hex(tuple(round(255 * v) for v in palette[g])),
             "text": f"{g}x{g}: {width * lateral / g:.2g} x {depth * axial / g:.2g} {unit}"} for g in grids]


def _enface(ex: VolumeExplanation, classes: Sequence[int], n_bscans: int, run: Mapping) -> dict:
    """Each carried class's en-face map (B-scan 0 at the bottom, as in the en-face figure) and its aspect."""
    (lateral, _, distance), unit = _spacing(run)
    maps = [enface_map(ex.results, k, n_bscans, ex.bscan_shape, ex.weights) for k in classes]
    scale = enface_scale(maps)
    width = ex.bscan_shape[1]
    return {"images": [image_url(enface_rgb(m, scale)[::-1]) for m in maps], "scale": scale,
            "aspect": (n_bscans * distance) / (width * lateral), "unit": unit,
            "size": f"{width * lateral:.3g} x {n_bscans * distance:.3g} {unit}"}
