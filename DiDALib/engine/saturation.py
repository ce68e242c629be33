"""When probability maps show nothing: a saturated model's probabilities, flagged with the fix (numpy only, so the
Slicer session can say it too).

A confident classifier's top probability sits at 1.000 while its logits still move: p (1 - p), the most a unit of
logit can move p, is below 0.001 from p = 0.999 on. Every d is then tiny, yet the maps are drawn at their own
saturation scale (full brightness at the strongest |d|), so they look as vivid as any: red and blue for changes of a
thousandth of a percentage point. ``saturation_warning`` says so for a run in probabilities when, on any explained
B-scan,

- the top probability is at least ``SATURATED_TOP`` (0.999: there a full unit of logit evidence moves p by at most
  0.001; ``auto`` already switches to log-odds from 0.99), or
- the strongest |d| of any grid and class is below ``FAINT_SHARE`` (1 %) of the B-scan's top score: the brightest
  colour then stands for a change no reader would call one.

The fix is log-odds: the score mode ``auto`` where the top probability is saturated (it chooses log-odds from 0.99),
``log-odds`` itself where only the d are faint (``auto`` would keep probabilities there).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .result import DiDAResult

SATURATED_TOP = 0.999
FAINT_SHARE = 0.01
FIX_SATURATED = "explain again with score mode auto (--score auto: log-odds where the model saturates)"
FIX_FAINT = "explain again with score mode log-odds (--score log-odds)"


def saturation_warning(results: Iterable[DiDAResult], names: Sequence[str] | None = None) -> str | None:
    """One sentence for a run in probabilities whose maps show changes too small to mean anything, else None.
    ``names``: what to call each result, in order (independent images' file names), instead of its B-scan."""
    hits = []
    for k, r in enumerate(results):
        if r.score != "probabilities":
            continue
        top = float(np.max(r.base_scores))
        peak = max((float(np.abs(d).max()) for d in r.deltas.values() if d.size), default=0.0)
        if top >= SATURATED_TOP or peak < FAINT_SHARE * top:
            hits.append((names[k] if names is not None else f"B-scan {r.index}", top, peak))
    if not hits:
        return None
    name, top, peak = max(hits, key=lambda h: (h[1], -h[2]))
    kind = "images" if names is not None else "B-scans"
    where = name if len(hits) == 1 else f"{len(hits)} {kind} (e.g. {name})"
    share = 100.0 * peak / top if top > 0 else 0.0
    if top >= SATURATED_TOP:
        return (f"probabilities are saturated on {where} (top probability {top:.4f}, strongest |d| {peak:.3g}): the "
                f"colours show changes too small to mean anything; {FIX_SATURATED}")
    return (f"the probability maps of {where} are faint (strongest |d| {peak:.3g}, {share:.2g} % of the top score "
            f"{top:.3f}): their full colours stand for changes too small to mean anything; {FIX_FAINT}")
