"""The audit's evidence measures in closed form: shares of positive evidence inside, above and below a known band
and in the border, the centroid's depth, the strongest region against a class, on maps written by hand and on
linear scorers run through the real engine (whose d, and so whose evidence map, is known exactly)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import LinearScorer

from DiDALib.audit.measures import border_mask, evidence_shares, probabilities, strongest_against
from DiDALib.audit.retina import RetinaBand
from DiDALib.engine.core import DiDAEngine
from DiDALib.maps.evidence import evidence_map

H, W = 40, 60


def flat_band(top: float, bottom: float, width: int = W, depth: int = H) -> RetinaBand:
    t, b = np.full(width, float(top)), np.full(width, float(bottom))
    return RetinaBand(t, b - 2, b, depth)


def test_shares_of_maps_written_by_hand():
    band = flat_band(10, 30)
    e = np.zeros((H, W))
    e[15:25, 20:40] = 2.0  # inside the band, away from the border
    s = evidence_shares(e, band)
    assert (s.inside, s.above, s.below, s.border) == (1.0, 0.0, 0.0, 0.0)
    assert s.centroid_depth == pytest.approx(20 / H)
    assert s.centroid_in_band == pytest.approx(0.5)
    e[0:2, :] = 1.0  # the top two rows: above the band and in the border (5 % of 40 rows = 2 rows)
    e[35:40, 20:40] = -3.0  # negative evidence counts for nothing
    s = evidence_shares(e, band)
    total = 2.0 * 10 * 20 + 1.0 * 2 * W
    assert s.inside == pytest.approx(400 / total) and s.above == pytest.approx(120 / total)
    assert s.border == pytest.approx(120 / total) and s.below == 0.0
    assert s.total == pytest.approx(total)
    assert evidence_shares(-np.ones((H, W)), band).inside is None  # no positive evidence at all


def test_a_band_that_follows_the_columns():
    top = np.linspace(5, 15, W)  # a tilted retina: the same pixel is inside in one column, above in another
    band = RetinaBand(top, top + 10, top + 12, H)
    e = np.zeros((H, W))
    e[10, :] = 1.0  # one row of evidence: inside where top <= 10.5, above elsewhere
    s = evidence_shares(e, band)
    expected = float(np.mean(top <= 10.5))
    assert s.inside == pytest.approx(expected) and s.above == pytest.approx(1 - expected)
    assert border_mask((H, W)).sum() == H * W - (H - 4) * (W - 6)


def _cells(length: int, n: int) -> list[tuple[int, int]]:
    """The partition rule of METHOD.md: cell i covers [floor(i L / n), floor((i + 1) L / n))."""
    return [(i * length // n, (i + 1) * length // n) for i in range(n)]


def _expected_evidence(weight: np.ndarray, image: np.ndarray, grids) -> np.ndarray:
    """A linear scorer's evidence map from the method alone: masking a cell (fill 0) lowers the logit by the sum of
    weight x pixel over it, so d is that sum; the map is the mean over grid sizes of the d of the pixel's cell."""
    out = np.zeros_like(image, dtype=np.float64)
    for n in grids:
        for r0, r1 in _cells(image.shape[0], n):
            for c0, c1 in _cells(image.shape[1], n):
                out[r0:r1, c0:c1] += (weight[r0:r1, c0:c1] * image[r0:r1, c0:c1]).sum()
    return out / len(grids)


@pytest.mark.parametrize("grids", [(3, 5), (4, 7, 10)])
def test_shares_through_the_engine_on_a_linear_scorer(grids):
    rng = np.random.default_rng(5)
    image = rng.uniform(0.1, 1.0, (H, W)).astype(np.float32)
    model = LinearScorer((1, H, W), 3, seed=2)
    engine = DiDAEngine(model, device="cpu", score="logits", fill=0.0, batch_size=8)
    result = engine.explain(image[None], grids=grids)
    band = RetinaBand(np.linspace(8, 12, W), np.linspace(26, 30, W), np.linspace(28, 32, W), H)
    for k in range(3):
        weight = model.weight[k, 0].detach().double().numpy()
        expected = _expected_evidence(weight, image.astype(np.float64), grids)
        got = evidence_map(result, k)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        p = np.clip(expected, 0, None)
        rows = np.arange(H)[:, None] + 0.5
        inside = (rows >= band.top) & (rows < band.bottom)
        s = evidence_shares(got, band)
        assert s.inside == pytest.approx(p[inside].sum() / p.sum(), abs=1e-5)
        assert s.above == pytest.approx(p[rows < band.top].sum() / p.sum(), abs=1e-5)
        assert s.border == pytest.approx(p[border_mask((H, W))].sum() / p.sum(), abs=1e-5)
        assert s.centroid_depth == pytest.approx((p * rows).sum() / p.sum() / H, abs=1e-5)


def test_the_strongest_region_against_is_the_planted_cell():
    image = np.ones((H, W), np.float32)
    model = LinearScorer((1, H, W), 2, seed=0)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[1, 0, 24:32, 36:48] = -1.0  # only this block speaks against class 1 (cell (3, 3) of 5 x 5)
        model.weight[1, 0, 0:8, 0:12] = 0.5  # and this one for it
    result = DiDAEngine(model, device="cpu", score="logits", fill=0.0, batch_size=8).explain(image[None], grids=(2, 5))
    band = flat_band(20, 36)
    region = strongest_against(result, evidence_map(result, 1), band)
    assert region.box == (24, 36, 32, 48)
    # Its mean evidence: half the 5 x 5 cell's d (-96) plus half the 2 x 2 cell's that holds it (-96 as well).
    assert region.value == pytest.approx(-96.0)
    assert region.inside == pytest.approx(1.0)
    assert strongest_against(result, np.abs(evidence_map(result, 1)), band) is None  # nothing against


def test_probabilities_from_every_score_mode():
    z = np.array([2.0, 0.5, -1.0])
    p = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(probabilities(p, "probabilities"), p)
    np.testing.assert_allclose(probabilities(z, "logits"), p)
    log_odds = np.log(p / (1 - p))
    np.testing.assert_allclose(probabilities(log_odds, "log-odds"), p)
