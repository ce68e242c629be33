"""DiDA's evidence map: the plain signed readout of any schedule's passes, and Mixed Images of shifted grids."""

import numpy as np
import pytest
import torch
from conftest import LinearScorer

from DiDALib import (
    EVIDENCE_GRIDS,
    DiDAEngine,
    DiDAResult,
    OffsetGrid,
    evidence_map,
    evidence_maps,
    mixed_image,
    offset_grids,
    saturation_scale,
)
from DiDALib.maps.evidence import strongest_point


def _result(deltas, shape=(4, 4)):
    return DiDAResult(np.array([0.6, 0.4], np.float32), {g: np.asarray(d, np.float32) for g, d in deltas.items()},
                      shape, (0, 0, *shape), class_names=("a", "b"))


def test_the_map_is_the_mean_over_sizes_of_the_mean_over_offsets():
    """Sizes count alike however many offsets they have; a pixel reads the d of every cell that hid it."""
    d2 = np.zeros((2, 2, 2))
    d2[0, 0, 0] = 0.4  # rows 0-1, cols 0-1
    d2s = np.zeros((2, 3, 3))  # the 2 x 2 grid shifted by half a cell: edges at 0, 1, 3, 4
    d2s[0, 1, 1] = 0.2  # rows 1-2, cols 1-2
    d4 = np.full((2, 4, 4), -0.1)
    r = _result({2: d2, OffsetGrid(2, "1/2", "1/2"): d2s, 4: d4})
    e = evidence_map(r, "a")
    expect = np.full((4, 4), -0.1 / 2)  # size 4: -0.1 everywhere; size 2: the mean of two grids
    expect[:2, :2] += (0.4 / 2) / 2
    expect[1:3, 1:3] += (0.2 / 2) / 2
    np.testing.assert_allclose(e, expect, rtol=1e-6)
    assert e.dtype == np.float32 and e.shape == (4, 4)
    np.testing.assert_allclose(evidence_map(r, 1), np.full((4, 4), -0.05), rtol=1e-6)
    big = evidence_map(r, "a", shape=(8, 12))  # nearest resampling: each region pixel becomes a 2 x 3 block
    np.testing.assert_allclose(big, np.repeat(np.repeat(e, 2, axis=0), 3, axis=1))
    assert evidence_maps(r, ["a", "b"]).shape == (2, 4, 4)


def test_on_the_papers_grids_it_is_the_plain_mean_of_the_grids():
    r = _result({2: np.random.default_rng(0).normal(size=(2, 2, 2)), 4: np.random.default_rng(1).normal(size=(2, 4, 4))})
    np.testing.assert_allclose(evidence_map(r, 0), (r.delta_map(2, 0) + r.delta_map(4, 0)) / 2, rtol=1e-6)


def _spot_model(shape, sign: float, rows, cols) -> LinearScorer:
    """A linear scorer whose class 0 depends only on a small square (for, or against, by ``sign``)."""
    m = LinearScorer(shape, classes=2)
    with torch.no_grad():
        m.weight.zero_()
        m.weight[0, :, rows, cols] = sign
    return m


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_evidence_sits_on_what_the_model_uses_and_offsets_narrow_it(sign):
    """The only pixels class 0 uses carry its evidence (positive for, negative against), nothing far away; with
    half-cell offsets the map's extreme covers less than one aligned cell around them."""
    shape = (1, 40, 40)
    model = _spot_model(shape, sign, slice(20, 22), slice(12, 14))
    image = np.ones(shape, np.float32)
    engine = DiDAEngine(model, device="cpu", score="logits", fill=0.0, batch_size=64)
    aligned = engine.explain(image, grids=(4, 8))
    shifted = engine.explain(image, grids=offset_grids((4, 8), 2))
    for r in (aligned, shifted):
        e = sign * evidence_map(r, 0)
        assert e.max() > 0 and np.all(e >= -1e-6)
        peak = np.argwhere(e >= e.max() - 1e-6)
        assert peak[:, 0].min() <= 20 < peak[:, 0].max() + 1 and peak[:, 1].min() <= 12 < peak[:, 1].max() + 1
        assert np.all(np.abs(e[:8, :]) < 1e-6) and np.all(np.abs(evidence_map(r, 1)) < 1e-6)
    def plateau(r):
        e = sign * evidence_map(r, 0)
        return int((e >= e.max() - 1e-6).sum())

    assert plateau(shifted) < plateau(aligned) <= 5 * 5
    assert strongest_point([evidence_map(shifted, 0), evidence_map(shifted, 1)])[0] in (20, 21)


def test_mixed_images_of_shifted_grids_share_a_sizes_weight():
    """Mixed Images work on any schedule: each size keeps the paper's weight, shared by its offsets, the default
    scale is the strongest Mixed-Image evidence, and the brightest pixel is on what the model uses."""
    shape = (1, 48, 48)
    model = _spot_model(shape, 1.0, slice(10, 14), slice(30, 33))
    r = DiDAEngine(model, device="cpu", score="logits", fill=0.0).explain(np.ones(shape, np.float32),
                                                                          grids=EVIDENCE_GRIDS)
    m = mixed_image(r, 0)
    assert m.positive.shape == (48, 48) and m.weights.size == len(EVIDENCE_GRIDS)
    sizes = sorted({getattr(g, "n", g) for g in EVIDENCE_GRIDS})
    per_size = [m.weights[[getattr(g, "n", g) == n for g in r.grids]].sum() for n in sizes]
    np.testing.assert_allclose(np.array(per_size) / per_size[0], np.linspace(1.0, 1.5, len(sizes)))
    assert 0.5 < m.positive.max() <= 1 and m.negative.max() == 0
    row, col = np.unravel_index(np.argmax(m.positive), m.positive.shape)
    assert 10 <= row < 14 and 30 <= col < 33
    assert m.scale == pytest.approx(saturation_scale(r))
