"""Files of the maps beyond the paper: contrast labelmaps, feature-scale labelmaps with their colour table, and the
en-face evidence of a volume (NRRD on the scan's own geometry, and a PNG). All are computed from a run's d values,
so they cost no model pass and can be made again from ``dida_results.npz``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..explanation import VolumeExplanation
from ..maps.contrast import contrast_result
from ..maps.enface import EnFaceMap, enface_map, enface_scale
from ..maps.labels import encode_labels, label_dtype
from ..maps.mixing import mixed_image, saturation_scale
from ..maps.scale import feature_scale
from ..maps.scale_colours import scale_palette
from .results import class_file_stems

SCALE_TABLE_NAME = "DiDA-Scale"


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.CopyInformation(reference)
    return img


def contrast_scale(explanation: VolumeExplanation, pairs: Sequence[tuple[int, int]]) -> float:
    """One saturation scale for every contrast of a run: the strongest contrast evidence over its B-scans."""
    results = [contrast_result(r, a, b) for r in explanation.results.values() for a, b in pairs]
    return saturation_scale(results, weights=explanation.weights)


def contrast_files(class_names: Sequence[str], pairs: Sequence[tuple[int, int]]) -> list[dict[str, str]]:
    """The labelmap and net-map file of each contrast (A, B), ``DiDA-contrast_<A>_vs_<B>_label.nrrd``: the hyphen
    after DiDA keeps them apart from every class's files, and a pair whose name would repeat another's (class
    names holding "_vs_") gets a stable suffix."""
    stems = class_file_stems(class_names)
    out, seen = [], set()
    for a, b in pairs:
        stem = f"DiDA-contrast_{stems[class_names[a]]}_vs_{stems[class_names[b]]}"
        if stem.casefold() in seen:
            stem += "-" + hashlib.sha1(f"{class_names[a]}\0{class_names[b]}".encode()).hexdigest()[:8]
        seen.add(stem.casefold())
        out.append({"label": f"{stem}_label.nrrd", "net": f"{stem}_net.nrrd"})
    return out


def write_contrast_maps(folder: Path, explanation: VolumeExplanation, pairs: Sequence[tuple[int, int]],
                        reference: sitk.Image, n_bscans: int, scale: float) -> list[dict]:
    """Per pair (A, B): a labelmap of the DiDA colour table (red: A rather than B) and a float NRRD of the net
    contrast, on the input volume's geometry. Returns ``{"classes": [A, B], "files": {...}}`` per pair."""
    depth, width = explanation.bscan_shape
    names = explanation.class_names
    written = []
    for (a, b), files in zip(pairs, contrast_files(names, pairs)):
        labels = np.zeros((n_bscans, depth, width), label_dtype())
        net = np.zeros((n_bscans, depth, width), np.float32)
        for i in explanation.indices:
            m = mixed_image(contrast_result(explanation.results[i], a, b), 0, explanation.weights, scale,
                            explanation.bscan_shape)
            labels[i] = encode_labels(m.positive, m.negative)
            net[i] = m.net
        for kind, arr in (("label", labels), ("net", net)):
            sitk.WriteImage(_like(arr, reference), str(folder / files[kind]), useCompression=True)
        written.append({"classes": [names[a], names[b]], "files": files})
    return written


def write_scale_table(path: Path, grids: Sequence[int], bscan_shape: tuple[int, int],
                      spacing: tuple[float, float], unit: str) -> Path:
    """The colour table of the scale labelmaps (label = n of the n x n grid), naming each grid's cell size."""
    depth, width = bscan_shape
    lines = [f"# {SCALE_TABLE_NAME}: DiDA feature scale, label = n of the n x n grid whose normalised evidence peaks",
             "0 none 0 0 0 0"]
    for n, rgb in sorted(scale_palette(grids).items()):
        r, g, b = (int(round(255 * v)) for v in rgb)
        cells = f"{width * spacing[0] / n:.3g}x{depth * spacing[1] / n:.3g}{unit}"
        lines.append(f"{n} {n}x{n}_cells_{cells} {r} {g} {b} 255")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_scale_maps(folder: Path, explanation: VolumeExplanation, classes: Sequence[int], reference: sitk.Image,
                     n_bscans: int) -> dict[str, str]:
    """Per class: a labelmap of the grid size at which its evidence peaks (0 where there is too little), on the
    input volume's geometry (the colour table is ``write_scale_table``'s). Returns class name -> file."""
    depth, width = explanation.bscan_shape
    stems = class_file_stems(explanation.class_names)
    written = {}
    for k in classes:
        labels = np.zeros((n_bscans, depth, width), np.uint16)  # a grid size may exceed 255 on a wide B-scan
        for i in explanation.indices:
            labels[i] = feature_scale(explanation.results[i], k, explanation.bscan_shape).grid
        name = explanation.class_names[k]
        written[name] = f"DiDA_{stems[name]}_scale.nrrd"
        sitk.WriteImage(_like(labels, reference), str(folder / written[name]), useCompression=True)
    return written


def enface_maps(explanation: VolumeExplanation, classes: Sequence[int], n_bscans: int) -> list[EnFaceMap]:
    """The en-face evidence of each class over the explained B-scans of a volume of ``n_bscans``."""
    return [enface_map(explanation.results, k, n_bscans, explanation.bscan_shape, explanation.weights)
            for k in classes]


def write_enface_maps(folder: Path, maps: Sequence[EnFaceMap], class_names: Sequence[str],
                      spacing: tuple[float, float]) -> dict[str, str]:
    """Per class: a 2-D NRRD of (for, against) evidence per (B-scan, A-scan), spacing (lateral, B-scan distance);
    B-scans that were not explained hold NaN. Returns class name -> file."""
    stems = class_file_stems(class_names)
    written = {}
    for m in maps:
        img = sitk.GetImageFromArray(np.stack([m.positive, m.negative], axis=-1), isVector=True)
        img.SetSpacing((float(spacing[0]), float(spacing[1])))
        name = class_names[m.class_index]
        written[name] = f"DiDA_{stems[name]}_enface.nrrd"
        sitk.WriteImage(img, str(folder / written[name]), useCompression=True)
    return written


__all__ = ["SCALE_TABLE_NAME", "contrast_files", "contrast_scale", "enface_maps", "enface_scale",
           "write_contrast_maps", "write_enface_maps", "write_scale_maps", "write_scale_table"]
