"""What a run produced and which classes and B-scans it covers, in numpy alone (no torch): ``VolumeExplanation``
(the results of a run over some B-scans of one volume) and the rules shared by every front end (``class_indices``,
``parse_top``, ``chosen_bscans``). The Slicer session, the results files and a torch-free ``DiDATest`` use it;
``pipeline`` re-exports it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .engine.result import DiDAResult
from .maps.evidence import evidence_map
from .maps.mixing import MixedImage, mixed_image, mixed_peak
from .suggest import did_you_mean


def parse_top(spec: str) -> int | None:
    """``'top3'`` → 3, ``'all'`` → None (every class); other strings are not a top-N rule."""
    s = spec.strip().lower()
    if s == "all":
        return None
    if s.startswith("top") and s[3:].isdigit() and int(s[3:]) >= 1:
        return int(s[3:])
    raise ValueError(f"classes {spec!r} is not 'topN' (e.g. top3), 'all' or a list of class names")


def class_indices(class_names: Sequence[str], rule: str | Sequence[str], ranking=None) -> list[int]:
    """Class indices to show: names as given (each checked against ``class_names``), or by a ``topN``/``all`` rule
    the classes ranked by ``ranking`` (one value per class, highest first; the model's order when None)."""
    if isinstance(rule, str):
        top = parse_top(rule)
        order = np.argsort(-np.asarray(ranking), kind="stable") if ranking is not None else np.arange(len(class_names))
        return [int(k) for k in (order if top is None else order[:top])]
    unknown = [c for c in rule if c not in class_names]
    if unknown:
        raise ValueError(f"class(es) {unknown} are not among the model's classes {list(class_names)}"
                         + did_you_mean(unknown[0], class_names))
    return [list(class_names).index(c) for c in rule]


def chosen_bscans(n_bscans: int, indices: Sequence[int] | None) -> list[int]:
    """The B-scans to explain (all when ``indices`` is None), each checked to exist and given once."""
    chosen = list(range(n_bscans)) if indices is None else [int(i) for i in indices]
    for i in chosen:
        if not 0 <= i < n_bscans:
            raise ValueError(f"B-scan {i} does not exist: the volume has B-scans 0..{n_bscans - 1}")
    if len(set(chosen)) != len(chosen):
        raise ValueError("a B-scan index is repeated")
    return chosen



@dataclass
class VolumeExplanation:
    """Results of a run over some B-scans of one volume."""

    class_names: tuple[str, ...]
    results: dict[int, DiDAResult] = field(default_factory=dict)  # B-scan index → result
    bscan_shape: tuple[int, int] = (0, 0)
    weights: tuple[float, ...] | None = None
    _peaks: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def indices(self) -> list[int]:
        return sorted(self.results)

    def scores(self) -> np.ndarray:
        """Base scores (explained B-scans in index order × classes)."""
        return np.stack([self.results[i].base_scores for i in self.indices]) if self.results else np.zeros((0, len(self.class_names)))

    def scale(self) -> float:
        """One saturation scale for all classes and all B-scans of the run (``mixing.saturation_scale``)."""
        peaks = self._peaks
        for i, r in self.results.items():
            if peaks.get(i, (None,))[0] is not r:  # each result's peak is computed once, however often this is asked
                peaks[i] = (r, mixed_peak(r, self.weights))
        return max((peaks[i][1] for i in self.results), default=0.0)

    def select_classes(self, rule: str | Sequence[str]) -> list[int]:
        """Class indices to show: names as given, or the top N ranked by their highest score over the B-scans."""
        return class_indices(self.class_names, rule, self.scores().max(axis=0) if self.results else None)

    def figure_classes(self, index: int, shown: Sequence[int], n: int = 3) -> list[int]:
        """The classes of B-scan ``index``'s figure: its own top ``n`` by score among the classes ``shown``."""
        keep = {int(k) for k in shown}
        return [int(k) for k in self.results[index].top_classes(len(self.class_names)) if int(k) in keep][:n]

    def mixed(self, index: int, class_index: int, scale: float | None = None) -> MixedImage:
        """The Mixed Image of one class on B-scan ``index``, on the B-scan's own pixel grid."""
        r = self.results[index]
        return mixed_image(r, class_index, self.weights, self.scale() if scale is None else scale, self.bscan_shape)

    def evidence(self, index: int, class_index: int) -> np.ndarray:
        """The evidence map (``maps.evidence``) of one class on B-scan ``index``, on the B-scan's own pixel grid:
        the signed readout for points, rankings and reported numbers."""
        return evidence_map(self.results[index], class_index, self.bscan_shape)
