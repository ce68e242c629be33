"""Files a run writes: overlays and float maps as NRRD, the colour table, scores, raw results, run settings.

Everything goes into a fresh folder beside the destination and is moved into place only when complete, so a
failed or cancelled run never leaves half-written outputs, and existing outputs are replaced only when asked.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..engine.result import DiDAResult
from ..engine.schedule import is_aligned, parse_grids
from ..maps.labels import COLOR_TABLE_NAME, encode_labels, label_dtype, write_color_table
from ..pipeline import VolumeExplanation

RESULTS_FILE = "dida_results.npz"
RESULTS_FORMAT = "dida-results/1"
#: Results with shifted grids (``OffsetGrid``): the grids are named in ``grid_keys``, and a reader of format 1
#: refuses the file rather than reading only its aligned grids.
RESULTS_FORMAT_OFFSETS = "dida-results/2"


def _array_name(key) -> str:
    """The npz entry of a grid's d: ``d_9`` for a size, ``d_9@1-2_0`` for a shifted grid ('/' would be a folder)."""
    return "d_" + str(key).replace("/", "-")


def safe_name(name: str) -> str:
    """A class name as a file-name part: letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "class"


def check_output_dir(out_dir: str | Path, force: bool = False) -> Path:
    """The resolved output folder, refused if it is a file, or holds files and ``force`` is not set."""
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder: choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} already holds files: choose another --out, or add --force to replace it")
    return out


@contextmanager
def staged_output(out_dir: str | Path, force: bool = False) -> Iterator[Path]:
    """A temporary folder that becomes ``out_dir`` only if the block completes.

    Refuses an existing non-empty ``out_dir`` unless ``force``; with ``force`` the old folder is replaced only
    after the new one is complete.
    """
    out = check_output_dir(out_dir, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    stage.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.CopyInformation(reference)
    return img


def write_maps(folder: Path, explanation: VolumeExplanation, classes: Sequence[int], reference: sitk.Image,
               n_bscans: int, scale: float) -> list[Path]:
    """For each class: a labelmap NRRD (labels of the DiDA colour table) and a float NRRD of the net evidence,
    both on the input volume's geometry; B-scans that were not explained stay 0."""
    depth, width = explanation.bscan_shape
    written = []
    for k in classes:
        labels = np.zeros((n_bscans, depth, width), label_dtype())
        net = np.zeros((n_bscans, depth, width), np.float32)
        for i in explanation.indices:
            m = explanation.mixed(i, k, scale)
            labels[i] = encode_labels(m.positive, m.negative)
            net[i] = m.net
        stem = f"DiDA_{safe_name(explanation.class_names[k])}"
        for suffix, arr in (("_label.nrrd", labels), ("_net.nrrd", net)):
            path = folder / f"{stem}{suffix}"
            sitk.WriteImage(_like(arr, reference), str(path), useCompression=True)
            written.append(path)
    path = write_color_table(folder / f"{COLOR_TABLE_NAME}.ctbl")
    written.append(path)
    return written


def write_scores(path: Path, explanation: VolumeExplanation) -> Path:
    """``scores.csv``: one row per explained B-scan, one column per class (the unmasked image's scores)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["bscan", *explanation.class_names])
        for i in explanation.indices:
            w.writerow([i, *(f"{v:.6g}" for v in explanation.results[i].base_scores)])
    return path


def write_results(path: Path, explanation: VolumeExplanation, extra: dict | None = None) -> Path:
    """The raw d of every grid and class of every explained B-scan (numpy arrays only, no pickles), so any class
    can be rendered later without running the model again."""
    idx = explanation.indices
    first = explanation.results[idx[0]]
    aligned = is_aligned(first.grids)
    arrays = {
        "format": np.array(RESULTS_FORMAT if aligned else RESULTS_FORMAT_OFFSETS),
        "class_names": np.array(explanation.class_names, dtype=str),
        "bscans": np.array(idx, dtype=np.int64),
        "base_scores": explanation.scores().astype(np.float32),
        "grids": np.array([getattr(g, "n", g) for g in first.grids], dtype=np.int64),
        "image_shape": np.array(first.image_shape, dtype=np.int64),
        "region": np.array(first.region, dtype=np.int64),
        "bscan_shape": np.array(explanation.bscan_shape, dtype=np.int64),
        "score": np.array(first.score),
        "meta": np.array(json.dumps(extra or {})),
    }
    if not aligned:
        arrays["grid_keys"] = np.array([str(g) for g in first.grids], dtype=str)
    if explanation.weights is not None:
        arrays["weights"] = np.array(explanation.weights, dtype=np.float64)
    for n in first.grids:
        arrays[_array_name(n)] = np.stack([explanation.results[i].deltas[n] for i in idx]).astype(np.float32)
    np.savez_compressed(path, **arrays)
    return path


def load_results(path: str | Path) -> VolumeExplanation:
    """Read a results file back into a ``VolumeExplanation`` (without unpickling anything)."""
    p = Path(path)
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p}: not a DiDA results file ({exc})") from None
    with data:
        if "format" not in data or str(data["format"]) not in (RESULTS_FORMAT, RESULTS_FORMAT_OFFSETS):
            raise ValueError(f"{p}: not a DiDA results file (expected format {RESULTS_FORMAT})")
        names = tuple(str(c) for c in data["class_names"])
        if "grid_keys" in data:
            grids = list(parse_grids(",".join(str(g) for g in data["grid_keys"])))
        else:
            grids = [int(n) for n in data["grids"]]
        region = tuple(int(v) for v in data["region"])
        image_shape = tuple(int(v) for v in data["image_shape"])
        weights = tuple(float(w) for w in data["weights"]) if "weights" in data else None
        out = VolumeExplanation(names, {}, tuple(int(v) for v in data["bscan_shape"]), weights)
        for row, i in enumerate(int(v) for v in data["bscans"]):
            out.results[i] = DiDAResult(
                base_scores=data["base_scores"][row],
                deltas={n: data[_array_name(n)][row] for n in grids},
                image_shape=image_shape,
                region=region,
                score=str(data["score"]),
                index=i,
                class_names=names,
            )
    return out
