"""Files a run writes: overlays and float maps as NRRD, the colour table, scores, raw results, run settings.

Everything is written into a staging folder that becomes the output folder only when complete (``output_dir``);
this module only says what goes in it and how class names become file names.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import SimpleITK as sitk

from ..engine.result import DiDAResult
from ..engine.schedule import is_aligned, parse_grids
from ..maps.labels import (
    COLOR_TABLE_NAME,
    encode_labels,
    label_dtype,
    write_color_table,
)
from ..explanation import VolumeExplanation

RESULTS_FILE = "dida_results.npz"
RESULTS_FORMAT = "dida-results/1"
#: Longest class-name part of a file name, in UTF-8 bytes (file names are limited to 255 bytes).
STEM_BYTES = 80
#: Results with shifted grids (``OffsetGrid``): the grids are named in ``grid_keys``, and a reader of format 1
#: refuses the file rather than reading only its aligned grids.
RESULTS_FORMAT_OFFSETS = "dida-results/2"
#: Results of an estimator other than leave-one-out (``estimator``; Shapley values with their standard errors in
#: ``se_<grid>``): a reader of formats 1 and 2 refuses the file rather than showing the values as leave-one-out d.
RESULTS_FORMAT_ESTIMATOR = "dida-results/3"
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def _array_name(key, prefix: str = "d_") -> str:
    """The npz entry of a grid's d: ``d_9`` for a size, ``d_9@1-2_0`` for a shifted grid ('/' would be a folder);
    ``prefix="se_"`` names its standard errors."""
    return prefix + str(key).replace("/", "-")


def _stem(name: str) -> tuple[str, bool]:
    """A class name as letters (of any script), digits, '-' and '_', bounded in length; and whether it was cut."""
    s = re.sub(r"[^\w-]+", "_", unicodedata.normalize("NFC", name)).strip("_")
    cut = len(s.encode()) > STEM_BYTES
    if cut:
        s = s.encode()[:STEM_BYTES].decode(errors="ignore").rstrip("_")
    return s or "class", cut


def _tag(name: str, digits: int = 8) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:digits]


def class_file_stems(class_names: Sequence[str]) -> dict[str, str]:
    """Each class name's part of its file names: readable, at most ``STEM_BYTES`` long, and unique even on a file
    system that ignores case. A name that is its own stem keeps it; a name whose stem collides with another's,
    was shortened, or is reserved on Windows gets a stable suffix (a hash of the name), the same in every run."""
    stems = {n: _stem(n) for n in class_names}
    groups: dict[str, list[str]] = {}
    for n, (s, _) in stems.items():
        groups.setdefault(s.casefold(), []).append(n)
    for digits in (8, 16, 40):
        out = {}
        for n, (s, cut) in stems.items():
            group = groups[s.casefold()]
            exact = [m for m in group if stems[m][0] == m]
            plain = not cut and s.casefold() not in _RESERVED and (len(group) == 1 or exact == [n])
            out[n] = s if plain else f"{s}-{_tag(n, digits)}"
        if len({v.casefold() for v in out.values()}) == len(out):
            return out
    raise ValueError(f"class names {list(class_names)} cannot be given distinct file names")  # a SHA-1 collision


def class_files(class_names: Sequence[str]) -> dict[str, dict[str, str]]:
    """The labelmap and net-map file of each class: ``{class: {"label": ..., "net": ...}}``."""
    return {n: {"label": f"DiDA_{s}_label.nrrd", "net": f"DiDA_{s}_net.nrrd"}
            for n, s in class_file_stems(class_names).items()}


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.CopyInformation(reference)
    return img


def write_maps(folder: Path, explanation: VolumeExplanation, classes: Sequence[int], reference: sitk.Image,
               n_bscans: int, scale: float) -> dict[str, dict[str, str]]:
    """For each class: a labelmap NRRD (labels of the DiDA colour table) and a float NRRD of the net evidence,
    both on the input volume's geometry; B-scans that were not explained stay 0. Returns each shown class's
    files (``class_files``) and writes the colour table."""
    depth, width = explanation.bscan_shape
    names = class_files(explanation.class_names)
    written = {}
    for k in classes:
        labels = np.zeros((n_bscans, depth, width), label_dtype())
        net = np.zeros((n_bscans, depth, width), np.float32)
        for i in explanation.indices:
            m = explanation.mixed(i, k, scale)
            labels[i] = encode_labels(m.positive, m.negative)
            net[i] = m.net
        files = names[explanation.class_names[k]]
        for kind, arr in (("label", labels), ("net", net)):
            sitk.WriteImage(_like(arr, reference), str(folder / files[kind]), useCompression=True)
        del labels, net
        written[explanation.class_names[k]] = files
    write_color_table(folder / f"{COLOR_TABLE_NAME}.ctbl")
    return written


def write_scores(path: Path, explanation: VolumeExplanation) -> Path:
    """``scores.csv``: one row per explained B-scan, its score mode (probabilities, logits or log-odds: the unit of
    the numbers), then one column per class (the unmasked image's scores)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["bscan", "score_mode", *explanation.class_names])
        for i in explanation.indices:
            r = explanation.results[i]
            w.writerow([i, r.score, *(f"{v:.6g}" for v in r.base_scores)])
    return path


def write_results(path: Path, explanation: VolumeExplanation, extra: dict | None = None) -> Path:
    """The raw d of every grid and class of every explained B-scan (numpy arrays only, no pickles), so any class
    can be rendered later without running the model again."""
    idx = explanation.indices
    first = explanation.results[idx[0]]
    aligned = is_aligned(first.grids)
    plain = first.estimator == "leave-one-out"
    arrays = {
        "format": np.array(RESULTS_FORMAT_ESTIMATOR if not plain else RESULTS_FORMAT if aligned
                           else RESULTS_FORMAT_OFFSETS),
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
    if not aligned or not plain:
        arrays["grid_keys"] = np.array([str(g) for g in first.grids], dtype=str)
    if not plain:
        arrays["estimator"] = np.array(first.estimator)
    if explanation.weights is not None:
        arrays["weights"] = np.array(explanation.weights, dtype=np.float64)
    for n in first.grids:
        arrays[_array_name(n)] = np.stack([explanation.results[i].deltas[n] for i in idx]).astype(np.float32)
        if first.stderr is not None:
            arrays[_array_name(n, "se_")] = np.stack([explanation.results[i].stderr[n] for i in idx]).astype(np.float32)
    np.savez_compressed(path, **arrays)
    return path


def load_results(path: str | Path | BinaryIO, max_bytes: int | None = None,
                 where: str | None = None) -> VolumeExplanation:
    """Read a results file back into a ``VolumeExplanation`` (without unpickling anything).

    The file may come from anyone: every array's shape and type is checked from the npz headers first (``limits``:
    nothing is decompressed), against each other (a class name per score column, d of every grid for every B-scan
    and class) and against ``max_bytes`` (default: the memory available now); a ``ValueError`` names what is
    wrong. ``path`` may be an open binary file (read from its start; ``where`` names it in messages).

    Returns a ``VolumeExplanation``: ``class_names``, ``results`` (B-scan index -> ``DiDAResult``), ``scores()``,
    and ``mixed(index, class_index)`` / ``evidence(index, class_index)`` for any class, without the model.

    Example
    -------
    >>> run = load_results("results/dida_results.npz")   # written by dida explain
    >>> e = run.evidence(run.indices[0], 0)
    """
    from ..footprint import Footprint
    from .limits import npz_bytes, npz_headers

    where = where or str(path)
    try:
        headers = npz_headers(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{where}: not a DiDA results file ({exc})") from None
    _check_layout(headers, where)
    need = 2 * npz_bytes(headers)  # the arrays, and a copy while they are read
    part = f"the arrays of {Path(str(where)).name}"
    Footprint({part: need}, {part: "this results file is larger than its run could have written: run dida "
                             "explain again"}, need).check(max_bytes, f"reading {where}")
    if hasattr(path, "seek"):
        path.seek(0)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{where}: not a DiDA results file ({exc})") from None
    with data:
        arrays = {name: data[name] for name in headers}  # each member decompressed once
    grids = _grids(arrays, headers, where)
    _check_values(arrays, where)
    names = tuple(str(c) for c in arrays["class_names"])
    region = tuple(int(v) for v in arrays["region"])
    image_shape = tuple(int(v) for v in arrays["image_shape"])
    weights = tuple(float(w) for w in arrays["weights"]) if "weights" in arrays else None
    estimator = str(arrays["estimator"]) if "estimator" in arrays else "leave-one-out"
    errors = all(_array_name(n, "se_") in arrays for n in grids)
    out = VolumeExplanation(names, {}, tuple(int(v) for v in arrays["bscan_shape"]), weights)
    for row, i in enumerate(int(v) for v in arrays["bscans"]):
        out.results[i] = DiDAResult(
            base_scores=arrays["base_scores"][row],
            deltas={n: arrays[_array_name(n)][row] for n in grids},
            image_shape=image_shape,
            region=region,
            score=str(arrays["score"]),
            index=i,
            class_names=names,
            estimator=estimator,
            stderr={n: arrays[_array_name(n, "se_")][row] for n in grids} if errors else None,
        )
    return out


#: Every array a results file holds, and its number of dimensions (the shapes are checked in ``_check_layout``).
_REQUIRED = {"format": 0, "class_names": 1, "bscans": 1, "base_scores": 2, "grids": 1, "image_shape": 1,
             "region": 1, "bscan_shape": 1, "score": 0}


def _check_layout(headers: dict, where) -> None:
    """Refuse (``ValueError``, naming the array and what it should be) a results file whose arrays' shapes and
    types (``npz_headers``) do not fit together."""
    def bad(what: str) -> ValueError:
        return ValueError(f"{where}: not a DiDA results file this dida can read ({what}): run dida explain again")

    for name, ndim in _REQUIRED.items():
        if name not in headers:
            raise bad(f"it has no {name!r} array")
        shape, dtype = headers[name]
        if len(shape) != ndim:
            raise bad(f"{name!r} has shape {shape}")
        text = name in ("format", "class_names", "score")
        if text != (dtype.kind == "U") or (not text and dtype.kind not in "iuf"):
            raise bad(f"{name!r} holds {dtype}")
    (k,), (b,) = headers["class_names"][0], headers["bscans"][0]
    if k < 1 or b < 1 or headers["base_scores"][0] != (b, k):
        raise bad(f"{k} class names and {b} B-scans but scores of shape {headers['base_scores'][0]}")
    for name, size in (("image_shape", 2), ("region", 4), ("bscan_shape", 2)):
        if headers[name][0] != (size,):
            raise bad(f"{name!r} has shape {headers[name][0]}, not ({size},)")
    keys = "grid_keys" if "grid_keys" in headers else "grids"
    (g,) = headers[keys][0]
    if g < 1 or headers["grids"][0] != (g,):
        raise bad(f"{g} grid keys but 'grids' of shape {headers['grids'][0]}")
    d_arrays = sorted(n for n in headers if n.startswith("d_"))
    if len(d_arrays) != g:
        raise bad(f"{len(d_arrays)} d arrays for {g} grids")
    for name in d_arrays:
        shape, dtype = headers[name]
        if len(shape) != 4 or shape[:2] != (b, k) or dtype.kind != "f" or max(shape[2:]) > 4096:
            raise bad(f"{name!r} has shape {shape} ({dtype}), not ({b} B-scans, {k} classes, rows, columns)")
    if "weights" in headers and not (len(headers["weights"][0]) == 1 and 1 <= headers["weights"][0][0] <= g):
        raise bad(f"'weights' has shape {headers['weights'][0]} for {g} grids")  # one per grid size


def _check_values(arrays: dict, where) -> None:
    """Refuse values no run writes: repeated or negative B-scan indices, empty or repeated class names, sizes that
    are not positive, a region outside the model input, an unknown score mode."""
    from ..engine.scores import SCORE_MODES

    names = [str(c) for c in arrays["class_names"]]
    bscans = [int(v) for v in arrays["bscans"]]
    depth, width = (int(v) for v in arrays["bscan_shape"])
    height, wide = (int(v) for v in arrays["image_shape"])
    top, left, tall, across = (int(v) for v in arrays["region"])
    problems = [
        (not all(names) or len(set(names)) != len(names), f"class names {names[:5]} are empty or repeated"),
        (min(bscans) < 0 or len(set(bscans)) != len(bscans), "B-scan indices are negative or repeated"),
        (not (0 < depth <= 65536 and 0 < width <= 65536), f"'bscan_shape' is {depth} x {width}"),
        (not (0 < height <= 65536 and 0 < wide <= 65536), f"'image_shape' is {height} x {wide}"),
        (not (0 <= top and 0 <= left and 0 < tall and 0 < across and top + tall <= height and left + across <= wide),
         "'region' lies outside the model input"),
        (str(arrays["score"]) not in SCORE_MODES, f"score mode {str(arrays['score'])[:40]!r}"),
    ]
    for wrong, what in problems:
        if wrong:
            raise ValueError(f"{where}: not a DiDA results file this dida can read ({what}): run dida explain again")


def _grids(arrays: dict, headers: dict, where) -> list:
    """The grids of a results file (sizes, or the names of shifted grids), each with its d array of the right size."""
    if str(arrays["format"]) not in (RESULTS_FORMAT, RESULTS_FORMAT_OFFSETS, RESULTS_FORMAT_ESTIMATOR):
        raise ValueError(f"{where}: not a DiDA results file (expected format {RESULTS_FORMAT})")
    try:
        if "grid_keys" in arrays:
            grids = list(parse_grids(",".join(str(g) for g in arrays["grid_keys"])))
        else:
            grids = [int(n) for n in arrays["grids"]]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: its grids cannot be read ({exc}): run dida explain again") from None
    sizes = {getattr(n, "n", n) for n in grids}
    if "weights" in arrays and len(arrays["weights"]) != len(sizes):
        raise ValueError(f"{where}: {len(arrays['weights'])} weights for {len(sizes)} grid sizes: run dida explain "
                         "again")
    for n in grids:
        name = _array_name(n)
        size = getattr(n, "n", n)
        shape = headers.get(name, ((),))[0]
        if name not in arrays or not (size >= 1 and all(size <= v <= size + 1 for v in shape[2:])):
            raise ValueError(f"{where}: the d array of grid {n} is missing or has shape {shape}: run dida explain "
                             "again")
        errors = headers.get(_array_name(n, "se_"))
        if errors is not None and errors[0] != shape:
            raise ValueError(f"{where}: the standard errors of grid {n} have shape {errors[0]}, not {shape}: run "
                             "dida explain again")
    if "estimator" in arrays and str(arrays["estimator"]) not in ("leave-one-out", "shapley"):
        raise ValueError(f"{where}: estimator {str(arrays['estimator'])[:40]!r} is not known: run dida explain again")
    return grids
