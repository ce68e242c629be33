"""Unrelated B-scans, each explained on its own: images of different patients, sizes and devices, as a folder of
Kermany images or an audit's dataset holds them.

A volume's B-scans share one size, one geometry and one eye, and its maps across B-scans (en-face, scores along the
volume) mean something. Unrelated images share none of that: each is explained as a volume of one B-scan at its own
size, with one score mode for all of them (``auto`` settled on all at once, so their scores stay comparable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from .explanation import VolumeExplanation
from .pipeline import VolumeExplainer


def explain_independent(explainer: VolumeExplainer, bscans: Sequence[np.ndarray],
                        progress: Callable[[int, int], None] | None = None, cancel=None) -> Iterator[VolumeExplanation]:
    """One ``VolumeExplanation`` per B-scan (depth, width) of ``bscans`` (any sizes; a list, or a sequence that
    reads each on indexing), in order, each with its one result at index 0. ``progress(images_done, passes_done)``
    counts over all of them. The score mode is settled first on all the B-scans (one model pass each)."""
    explainer.resolve_score(bscans)
    images = passes = 0
    for k in range(len(bscans)):
        b = np.asarray(bscans[k], dtype=np.float32)

        def step(p, done=passes):
            if progress is not None:
                progress(images, done + p.passes_done)

        explanation = explainer.explain_all(b[None], progress=step, cancel=cancel)
        passes += sum(1 + sum(d.shape[1] * d.shape[2] for d in r.deltas.values())
                      for r in explanation.results.values())
        images += 1
        if progress is not None:
            progress(images, passes)
        yield explanation
