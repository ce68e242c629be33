"""Mixed Images as label values and the two-dimensional DiDA colour table (positive level x negative level).

Slicer shows a labelmap through a colour table, one colour per integer. Since positive and negative evidence
accumulate separately, one label encodes both: ``label = p * LEVELS + q`` with p, q the quantised positive and
negative brightness. Its colour takes the hue of the evidence (red, blue, purple where both) and an opacity that
grows with its strength (``colour.evidence_rgba``, the one colour rule, which the PNG overlays use too); label 0
(no evidence) is fully transparent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .colour import evidence_rgba

#: Quantisation levels per sign: 16 x 16 = 256 labels, so a labelmap fits in uint8.
LEVELS = 16
COLOR_TABLE_NAME = "DiDA-RedBlue"


def label_dtype(levels: int = LEVELS) -> type:
    """The smallest unsigned integer type that holds every label: uint8 for 16 levels."""
    return np.uint8 if levels * levels <= 256 else np.uint16


def encode_labels(positive: np.ndarray, negative: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """Quantise positive and negative brightness in [0, 1] into one label per pixel (uint8 for 16 levels)."""
    pos = np.asarray(positive, dtype=np.float32)
    neg = np.asarray(negative, dtype=np.float32)
    if pos.shape != neg.shape:
        raise ValueError(f"positive {pos.shape} and negative {neg.shape} maps differ in shape")
    top = levels - 1
    p = np.clip(np.rint(np.nan_to_num(pos) * top), 0, top).astype(np.int32)
    q = np.clip(np.rint(np.nan_to_num(neg) * top), 0, top).astype(np.int32)
    return (p * levels + q).astype(label_dtype(levels))


def decode_labels(labels: np.ndarray, levels: int = LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative brightness back from labels (to the quantisation step)."""
    lab = np.asarray(labels).astype(np.int32)
    return (lab // levels) / (levels - 1), (lab % levels) / (levels - 1)


def label_color(label: int, levels: int = LEVELS) -> tuple[float, float, float, float]:
    """RGBA in [0, 1] of one label: hue of the evidence, opacity = its strength (p + q, saturating)."""
    p, q = divmod(int(label), levels)
    return tuple(float(v) for v in evidence_rgba(np.float64(p), np.float64(q), full=levels - 1))


def label_name(label: int, levels: int = LEVELS) -> str:
    p, q = divmod(int(label), levels)
    return "none" if p == q == 0 else f"for {p}/{levels - 1} against {q}/{levels - 1}"


def color_table_entries(levels: int = LEVELS) -> list[tuple[int, str, tuple[float, float, float, float]]]:
    """Every label of the table: (index, name, RGBA in [0, 1])."""
    return [(i, label_name(i, levels), label_color(i, levels)) for i in range(levels * levels)]


def write_color_table(path: str | Path, levels: int = LEVELS) -> Path:
    """Write the table as a Slicer colour table file (``.ctbl``/``.txt``: ``index name R G B A``, 0-255)."""
    out = Path(path)
    lines = [f"# {COLOR_TABLE_NAME}: DiDA evidence, label = positive_level * {levels} + negative_level",
             f"# {levels * levels} colours: red = evidence for the class, blue = against, label 0 transparent"]
    for i, name, rgba in color_table_entries(levels):
        r, g, b, a = (int(round(255 * v)) for v in rgba)
        lines.append(f"{i} {name.replace(' ', '_').replace('/', 'of')} {r} {g} {b} {a}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
