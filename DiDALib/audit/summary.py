"""An audit's dataset-level figures, from its store alone (no model): accuracy and confusion matrix, per class the
mean evidence maps on a common frame and the distribution of evidence inside the retina, and the flagged lists.

- The common frame has the median B-scan's proportions (median depth and width of the explained items), at most
  ``FRAME_MAX`` pixels on its longer side; every item's evidence map is resampled onto it (nearest, as the DiDA
  View samples cells), i.e. each B-scan is stretched onto the median shape.
- Per class k, the items of class k are those labelled k (those predicted k where the dataset has no labels);
  the class's maps are the means over them of k's evidence, its positive part (for) and its negative part
  (against), and its distribution is that of the predicted class's share of evidence inside the retina.
- Flagged: correct but with less than ``INSIDE_FLAG`` of the evidence inside the retina ("right for the wrong
  reasons"); wrong with a probability of at least ``CONFIDENT``; the most confused (label, prediction) pairs, each
  with its mean contrast map "predicted rather than label" (the predicted class's evidence minus the label's).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..maps.evidence import evidence_map
from .explain import label_index, result_from_record
from .store import AuditStore

FRAME_MAX = 256
INSIDE_FLAG = 0.5
CONFIDENT = 0.9
PAIRS_SHOWN = 3
HISTOGRAM_BINS = 10


@dataclass
class ClassMaps:
    """Mean maps of one class on the common frame: for, against (both >= 0, units of d) and the mean grey B-scan."""

    n: int
    positive: np.ndarray
    negative: np.ndarray
    grey: np.ndarray


@dataclass
class AuditSummary:
    """What ``summary.json`` holds (``figures``) and the maps the page draws."""

    figures: dict
    frame: tuple[int, int]
    classes: dict[str, ClassMaps] = field(default_factory=dict)
    pairs: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (label, predicted) -> mean contrast
    scale: float = 0.0  # one brightness scale for the thumbnails (units of d)


def _frame(shapes: Sequence[Sequence[int]]) -> tuple[int, int]:
    if not shapes:
        return (64, 64)
    depth, width = (float(np.median([s[i] for s in shapes])) for i in (0, 1))
    f = min(1.0, FRAME_MAX / max(depth, width))
    return max(8, round(depth * f)), max(8, round(width * f))


def _resized(grey: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(grey).resize((frame[1], frame[0]), Image.BILINEAR), dtype=np.float64)


def _histogram(values: list[float]) -> list[int]:
    counts, _ = np.histogram(np.clip(values, 0, 1), bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return [int(c) for c in counts]


def summarize(store: AuditStore) -> AuditSummary:
    """The summary of everything the store holds (finished items; the plan's unfinished ones are counted)."""
    settings = store.settings()
    names: list[str] = list(settings["classes"])
    score = settings["score_mode"]
    records = list(store.records())
    done = [(i, row) for i, status, _, row in records if status == "done"]
    failed = [{"id": i, "reason": reason} for i, status, reason, _ in records if status == "failed"]
    frame = _frame([row["shape"] for _, row in done])
    k_count = len(names)
    confusion = np.zeros((k_count, k_count), np.int64)
    sums = {k: [np.zeros(frame), np.zeros(frame), np.zeros(frame), 0] for k in range(k_count)}
    pair_sums: dict[tuple[int, int], np.ndarray] = defaultdict(lambda: np.zeros(frame))
    inside: dict[int, list[float]] = defaultdict(list)
    peaks: list[float] = []
    labelled = any(row.get("label_class") for _, row in done)
    for item_id, row in done:
        arrays = store.arrays(item_id)
        result = result_from_record(row, arrays, names, score)
        pred = names.index(row["predicted"])
        truth = label_index(row.get("label_class"), names)
        group = truth if labelled else pred
        if truth is not None:
            confusion[truth, pred] += 1
        maps = {}
        for k in {group, pred} | ({truth} if truth is not None else set()):
            if k is not None:
                maps[k] = evidence_map(result, k, frame).astype(np.float64)
        if group is not None:
            s = sums[group]
            s[0] += np.clip(maps[group], 0, None)
            s[1] += np.clip(-maps[group], 0, None)
            s[2] += _resized(arrays["thumb"], frame)
            s[3] += 1
            if row.get("inside") is not None:
                inside[group].append(row["inside"])
        if truth is not None and truth != pred:
            pair_sums[(truth, pred)] += maps[pred] - maps[truth]
        peaks.append(float(np.abs(maps[pred]).max()))
    known = int(confusion.sum())
    correct = int(np.trace(confusion))
    pair_counts = Counter({(t, p): int(confusion[t, p]) for t in range(k_count) for p in range(k_count)
                           if t != p and confusion[t, p] > 0})
    top_pairs = [pair for pair, _ in sorted(pair_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:PAIRS_SHOWN]]
    right_wrong = sorted(((row.get("inside"), i) for i, row in done
                          if row.get("correct") and row.get("inside") is not None and row["inside"] < INSIDE_FLAG))
    confident = sorted(((-row["probability"], i) for i, row in done
                        if row.get("correct") is False and row["probability"] >= CONFIDENT))
    counts = store.counts()
    figures = {
        "items": counts["items"], "explained": len(done), "failed": len(failed),
        "unfinished": counts["items"] - len(done) - len(failed),
        "labelled": known,
        "accuracy": correct / known if known else None,
        "classes": names,
        "confusion": {"rows": "label", "columns": "predicted", "counts": confusion.tolist()},
        "per_class": {names[k]: {
            "items": int(sums[k][3]),
            "inside_mean": float(np.mean(inside[k])) if inside[k] else None,
            "inside_median": float(np.median(inside[k])) if inside[k] else None,
            "inside_histogram": _histogram(inside[k]),
            "recall": float(confusion[k, k] / confusion[k].sum()) if confusion[k].sum() else None,
        } for k in range(k_count)},
        "histogram_bins": HISTOGRAM_BINS,
        "flags": {
            "right_for_wrong_reasons": [i for _, i in right_wrong],
            "wrong_and_confident": [i for _, i in confident],
            "confused_pairs": [{"label": names[t], "predicted": names[p], "count": pair_counts[(t, p)]}
                               for t, p in top_pairs],
        },
        "thresholds": {"inside_flag": INSIDE_FLAG, "confident_probability": CONFIDENT},
        "frame": list(frame),
        "failures": failed,
    }
    out = AuditSummary(figures, frame)
    for k in range(k_count):
        n = sums[k][3]
        if n:
            out.classes[names[k]] = ClassMaps(n, sums[k][0] / n, sums[k][1] / n, sums[k][2] / n)
    for t, p in top_pairs:
        out.pairs[(names[t], names[p])] = pair_sums[(t, p)] / pair_counts[(t, p)]
    out.scale = float(np.percentile(peaks, 95)) if peaks else 0.0
    return out
