"""One item of an audit, explained and measured where its worker runs: DiDA on the B-scan at its own size
(``explain_bscan``), then the record the store keeps (``item_record``): the scores, what ``measures`` finds, the d
of every grid (so any item can be opened later as a DiDA View) and a small grey thumbnail for the page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..engine.result import DiDAResult
from ..engine.schedule import grid_json
from ..maps.colour import to_uint8
from ..maps.evidence import evidence_map
from .measures import evidence_shares, probabilities, strongest_against
from .retina import RetinaBand, find_retina_band

#: Width of the grey thumbnail kept per item (the page's table and galleries).
THUMB_WIDTH = 192


def explain_bscan(explainer, bscan: np.ndarray) -> DiDAResult:
    """DiDA of one B-scan on its own, at its own size, with the explainer's grids, fill and score mode.

    The audit's one call into the pipeline: kept this small so that a pipeline-level per-image explanation can
    replace it in one place."""
    return explainer.explain_bscan(bscan)


@dataclass
class ItemRecord:
    """What the store keeps of one item: ``status`` 'done' or 'failed' (with ``reason``), ``row`` (the table's
    plain values) and ``arrays`` (numpy: base scores, each grid's d, the thumbnail, the band on the thumbnail)."""

    id: str
    status: str
    row: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    reason: str | None = None


def failed_record(item_id: str, reason: str) -> ItemRecord:
    return ItemRecord(item_id, "failed", reason=" ".join(str(reason).split())[:500])


def thumbnail(bscan: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """A grey uint8 thumbnail of a B-scan, ``width`` wide (never wider than the B-scan), proportions kept."""
    from PIL import Image

    h, w = bscan.shape
    tw = min(width, w)
    th = max(1, round(h * tw / w))
    img = Image.fromarray(to_uint8(bscan)).resize((tw, th), Image.BILINEAR, reducing_gap=2.0)
    return np.asarray(img, dtype=np.uint8)


def item_record(item_id: str, bscan: np.ndarray, result: DiDAResult, class_names: Sequence[str],
                label: str | None) -> ItemRecord:
    """The record of an explained item: prediction, scores, margin, evidence shares of the predicted class,
    the label's strongest region against it when the prediction is wrong, and the arrays to keep."""
    shape = tuple(int(v) for v in bscan.shape)
    base = np.asarray(result.base_scores, dtype=np.float32)
    order = np.argsort(-base, kind="stable")
    pred = int(order[0])
    margin = float(base[order[0]] - base[order[1]]) if base.size > 1 else None
    band = find_retina_band(bscan)
    shares = evidence_shares(evidence_map(result, pred, shape), band)
    truth = label_index(label, class_names)
    against = None
    if truth is not None and truth != pred:
        region = strongest_against(result, evidence_map(result, truth, shape), band)
        against = region.as_dict() if region else None
    probs = probabilities(base, result.score)
    row = {
        "label": label, "label_class": class_names[truth] if truth is not None else None,
        "predicted": class_names[pred], "scores": [float(v) for v in base], "score": float(base[pred]), "probability": float(probs[pred]),
        "margin": margin, "correct": None if truth is None else truth == pred,
        "shape": list(shape), "band_found": band is not None, **shares.as_dict(), "against": against,
        "region": list(result.region), "image_shape": list(result.image_shape),
        "grids": [grid_json(g) for g in result.grids],
    }
    thumb = thumbnail(bscan)
    arrays = {"base_scores": base, "thumb": thumb}
    for i, g in enumerate(result.grids):
        arrays[f"d{i}"] = np.asarray(result.deltas[g], dtype=np.float32)
    if band is not None:
        small = band.resampled(thumb.shape)
        arrays["band"] = np.stack([small.top, small.bottom]).astype(np.float32)
    return ItemRecord(item_id, "done", row, arrays)


def label_index(label: str | None, class_names: Sequence[str]) -> int | None:
    """The model's class a dataset label names: the same name, or the same once case, spaces, '-' and '_' are
    ignored (Kermany's CNV and a model's cnv); None when it names none."""
    if label is None:
        return None
    if label in class_names:
        return list(class_names).index(label)
    key = _plain(label)
    matches = [i for i, c in enumerate(class_names) if _plain(c) == key]
    return matches[0] if len(matches) == 1 else None


def _plain(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def result_from_record(row: dict, arrays: dict[str, np.ndarray], class_names: Sequence[str], score: str
                       ) -> DiDAResult:
    """The DiDA result of a stored record (to render any item again without the model)."""
    from ..engine.schedule import grid_key

    grids = [grid_key(g) for g in row["grids"]]
    return DiDAResult(
        base_scores=np.asarray(arrays["base_scores"], dtype=np.float32),
        deltas={g: arrays[f"d{i}"] for i, g in enumerate(grids)},
        image_shape=tuple(row["image_shape"]), region=tuple(row["region"]), score=score,
        class_names=tuple(class_names))


def band_of(arrays: dict[str, np.ndarray]) -> RetinaBand | None:
    """The stored band (on the thumbnail's rows and columns), or None."""
    if "band" not in arrays:
        return None
    top, bottom = arrays["band"]
    return RetinaBand(top.astype(np.float64), top.astype(np.float64), bottom.astype(np.float64),
                      int(arrays["thumb"].shape[0]))
