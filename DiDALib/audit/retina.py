"""The retina band of a B-scan, found from its own pixels: from the inner limiting membrane (ILM) down to just below
the retinal pigment epithelium (RPE), per A-scan (column).

The method, in the order it runs (all sizes relative to the B-scan, so it works at any resolution):

1. A flat saturated fill (the white wedges of a rotated export) is set to the background level, then speckle is
   averaged out by a box blur of ``BLUR_AXIAL`` of the depth by ``BLUR_LATERAL`` of the width.
2. The RPE is the brightest layer of an OCT B-scan, and the deepest bright one: per column, the deepest row whose
   blurred brightness reaches ``RPE_LEVEL`` of the column's maximum (the nerve fibre layer can be as bright where
   a detachment thins and tilts the RPE).
3. Levels: the background is the ``BACKGROUND_PERCENTILE``-th percentile of the blurred B-scan (vitreous and noise
   floor), the retina's is the median over columns of the RPE's brightness. A B-scan whose two levels differ by
   less than ``MIN_CONTRAST`` has no band (``find_retina_band`` returns None).
4. The ILM is, per column, the first row from the top whose blurred brightness passes ``ILM_LEVEL`` of the way
   from the background to the RPE's level (the vitreous is dark, the nerve fibre layer bright), never below the
   RPE.
5. Both curves are median-filtered across ``SMOOTH_LATERAL`` of the width, which removes single columns that
   vessel shadows or speckle threw off.
6. Drusen and pigment epithelial detachments lift the RPE off Bruch's membrane. Bruch's membrane is smooth, so a
   quadratic is fitted to the RPE curve by iteratively dropping points more than 2 robust deviations above it
   (lifted) or 3 below it; the band's floor is the deeper of the RPE and that fit, so a lifted RPE keeps what lies
   under it (drusen, a PED) inside the band, and the band never ends above the RPE found. Where the fit lies more
   than ``MAX_LIFT`` of the depth below the RPE, it is no membrane (a fit thrown off by a strongly curved retina):
   the RPE is the floor.
7. The band ends ``BELOW_RPE`` of the depth under that floor (about 4 pixels of a 256-pixel phantom, 7 of a
   496-pixel Spectralis B-scan: Bruch's membrane and the choriocapillaris).

Tested in closed form on the phantoms (``DiDALib.phantom``, whose layer boundaries are known): the ILM and RPE
found against the drawn ones, and the band holding the drawn findings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLUR_AXIAL = 0.006
BLUR_LATERAL = 0.01
BACKGROUND_PERCENTILE = 5.0
MIN_CONTRAST = 0.08
ILM_LEVEL = 0.35
RPE_LEVEL = 0.85
SMOOTH_LATERAL = 0.04
BELOW_RPE = 0.015
PAD_RUN = 4
PAD_TOLERANCE = 0.04
MAX_LIFT = 0.15


@dataclass(frozen=True)
class RetinaBand:
    """Per column of a (depth, width) B-scan: ``top`` the ILM, ``rpe`` the RPE's lower edge and ``bottom`` the band's
    lower edge, as row coordinates (a pixel of row r is inside when ``top <= r + 0.5 < bottom``)."""

    top: np.ndarray
    rpe: np.ndarray
    bottom: np.ndarray
    depth: int

    @property
    def width(self) -> int:
        return int(self.top.shape[0])

    def resampled(self, shape: tuple[int, int]) -> RetinaBand:
        """The band of the same B-scan seen at another (depth, width): columns sampled at their centres, rows
        scaled."""
        h, w = int(shape[0]), int(shape[1])
        cols = np.minimum(((np.arange(w) + 0.5) * self.width / w).astype(np.int64), self.width - 1)
        f = h / self.depth
        return RetinaBand(self.top[cols] * f, self.rpe[cols] * f, self.bottom[cols] * f, h)

    def mask(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Boolean (depth, width): inside the band (on ``shape`` when given)."""
        band = self if shape is None or tuple(shape) == (self.depth, self.width) else self.resampled(shape)
        centres = np.arange(band.depth, dtype=np.float64)[:, None] + 0.5
        return (centres >= band.top[None, :]) & (centres < band.bottom[None, :])


def _box(a: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """A moving average of 2 radius + 1 samples along ``axis`` (edges repeated)."""
    if radius < 1:
        return a
    a = np.moveaxis(a, axis, 0)
    p = np.pad(a, [(radius + 1, radius)] + [(0, 0)] * (a.ndim - 1), mode="edge")
    c = np.cumsum(p, axis=0, dtype=np.float64)
    out = (c[2 * radius + 1:] - c[: -2 * radius - 1]) / (2 * radius + 1)
    return np.moveaxis(out, 0, axis)


def _running_median(v: np.ndarray, radius: int) -> np.ndarray:
    if radius < 1:
        return v
    p = np.pad(v, radius, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(p, 2 * radius + 1), axis=1)


def _padding(b: np.ndarray) -> np.ndarray:
    """Pixels of a flat saturated fill (the white wedges and lines that rotated or registered exports pad with): at
    the image's maximum along a run of ``2 PAD_RUN + 1`` pixels across or down. Speckled tissue is never flat."""
    full = b >= b.max() - PAD_TOLERANCE
    if not full.any():
        return full
    f = full.astype(np.float64)
    return full & ((_box(f, PAD_RUN, 1) > 1 - 1e-9) | (_box(f, PAD_RUN, 0) > 1 - 1e-9))


def _membrane(rpe: np.ndarray, limit: float) -> np.ndarray:
    """The band's floor under the RPE curve (step 6): the deeper of the RPE and a quadratic fitted to its rows that
    are neither lifted nor too deep, the fit used only within ``limit`` rows below the RPE."""
    x = (np.arange(rpe.size) + 0.5) / rpe.size - 0.5
    keep = np.ones(rpe.size, bool)
    fit = np.full(rpe.size, float(np.median(rpe)))
    spread = 1.0
    for _ in range(8):
        if keep.sum() < 3:
            break
        fit = np.polyval(np.polyfit(x[keep], rpe[keep], 2), x)
        r = rpe - fit
        spread = 1.4826 * float(np.median(np.abs(r[keep]))) + 0.5
        new = (r > -2.0 * spread) & (r < 3.0 * spread)
        if np.array_equal(new, keep):
            break
        keep = new
    # The fit only ever lowers the floor (under a lifted RPE), never raises it above the RPE found; a fit far below
    # the RPE is no membrane (thrown off by a strongly curved retina): there the RPE is kept.
    return np.maximum(rpe, np.where(fit - rpe <= limit, fit, rpe))


def find_retina_band(bscan: np.ndarray) -> RetinaBand | None:
    """The retina band of a B-scan (depth, width) of display intensities (brighter = more reflective), or None
    when the B-scan has too little contrast to show one. The module docstring gives the method."""
    b = np.asarray(bscan, dtype=np.float64)
    if b.ndim != 2 or min(b.shape) < 8:
        return None
    depth, width = b.shape
    pad = _padding(b)
    if pad.any():
        b = np.where(pad, np.percentile(b[~pad], BACKGROUND_PERCENTILE) if (~pad).any() else 0.0, b)
    s = _box(_box(b, max(1, round(BLUR_AXIAL * depth)), 0), max(1, round(BLUR_LATERAL * width)), 1)
    cols = np.arange(width)
    strong = s >= RPE_LEVEL * s.max(axis=0, keepdims=True)
    rpe = depth - 1 - np.argmax(strong[::-1], axis=0)  # the deepest strong row of each column
    high = float(np.median(s[rpe, cols]))
    low = float(np.percentile(s, BACKGROUND_PERCENTILE))
    if not high - low >= MIN_CONTRAST * max(high, 1e-12):
        return None
    rows = np.arange(depth)[:, None]
    above = (s > low + ILM_LEVEL * (high - low)) & (rows <= rpe[None, :])
    ilm = np.where(above.any(axis=0), np.argmax(above, axis=0), rpe).astype(np.float64)
    radius = max(1, round(SMOOTH_LATERAL * width / 2))
    rpe_row = _running_median(rpe.astype(np.float64) + 0.5, radius)
    top = np.minimum(_running_median(ilm, radius), rpe_row)
    bottom = np.minimum(_membrane(rpe_row, MAX_LIFT * depth) + BELOW_RPE * depth, depth)
    return RetinaBand(np.clip(top, 0, depth), np.clip(rpe_row, 0, depth), np.maximum(bottom, top), depth)
