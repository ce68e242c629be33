"""Mixed Images keep positive and negative evidence apart; brightness, scale, colours and overlays."""

import numpy as np
import pytest

from DiDALib import DiDAResult, brightness, grid_image, mixed_image, mixed_images, saturation_scale
from DiDALib.maps.colour import mixed_to_rgb, overlay, signed_to_rgb
from DiDALib.maps.mixing import mixed_peak


def _result(deltas, shape=(8, 8), base=(0.7, 0.3)):
    return DiDAResult(np.array(base, np.float32), {n: np.asarray(d, np.float32) for n, d in deltas.items()},
                      shape, (0, 0, *shape), class_names=("a", "b"))


def test_brightness_is_monotone_saturating_and_zero_at_zero():
    d = np.array([-0.4, -0.1, 0.0, 0.05, 0.1, 0.2, 0.9])
    a = brightness(d, 0.2)
    assert a[2] == 0 and a[1] == a[4] and a[3] < a[4] < a[5]
    assert a[5] == 1 and a[6] == 1 and a[0] == 1
    assert np.all(brightness(d, 0.0) == 0)
    # The default curve lifts weak evidence (gamma 0.5) but keeps the order and the saturation point.
    np.testing.assert_allclose(brightness(d, 0.2), np.minimum(np.abs(d) / 0.2, 1) ** 0.5, rtol=1e-6)
    np.testing.assert_allclose(brightness(d, 0.2, gamma=1.0), np.minimum(np.abs(d) / 0.2, 1), rtol=1e-6)
    with pytest.raises(ValueError, match="gamma"):
        brightness(d, 0.2, gamma=0)
    with pytest.raises(ValueError):
        brightness(d, float("nan"))


def test_a_cell_positive_at_one_scale_and_negative_at_another_shows_both():
    d2 = np.zeros((2, 2, 2))
    d2[0, 0, 0] = 0.4  # top-left quarter: for class a at grid 2
    d4 = np.zeros((2, 4, 4))
    d4[0, 0, 0] = -0.2  # top-left 2x2 pixels: against class a at grid 4
    r = _result({2: d2, 4: d4})
    m = mixed_image(r, "a", weights=[0.5, 0.5], scale=0.4, gamma=1.0)
    assert m.positive[0, 0] == pytest.approx(0.5) and m.negative[0, 0] == pytest.approx(0.25)
    assert m.positive[3, 3] == pytest.approx(0.5) and m.negative[3, 3] == 0  # only grid 2's cell covers it
    assert m.net[0, 0] == pytest.approx(0.25)
    rgb = mixed_to_rgb(m)
    assert rgb[0, 0, 0] > 0 and rgb[0, 0, 2] > 0 and rgb[0, 0, 1] == 0  # red and blue together
    assert np.all(m.positive[4:, :] == 0) and np.all(m.negative[4:, :] == 0)


def test_the_default_scale_makes_the_strongest_mixed_pixel_fully_bright():
    d2 = np.zeros((2, 2, 2))
    d2[0, 0, 0], d2[1, 1, 1] = 0.16, -0.04
    d4 = np.zeros((2, 4, 4))
    d4[0, 0, 0] = 0.04
    r = _result({2: d2, 4: d4})
    # Top-left 2 x 2 pixels of class a: the power mean over grids, (0.5 * 0.16**0.5 + 0.5 * 0.04**0.5) ** 2.
    peak = (0.5 * 0.4 + 0.5 * 0.2) ** 2
    assert mixed_peak(r, weights=[1, 1]) == pytest.approx(peak)
    assert mixed_peak(r, weights=[1, 1], classes=[1]) == pytest.approx(0.5**2 * 0.04)
    assert mixed_peak(r, weights=[1, 0]) == pytest.approx(0.16)  # one grid: its largest |d|
    m = mixed_image(r, "a", weights=[1, 1])
    assert m.scale == pytest.approx(peak)
    # Grid 2 saturates there (0.16 > 0.09): 0.5 * 1 + 0.5 * (0.04 / 0.09) ** 0.5.
    assert m.positive[0, 0] == pytest.approx(0.5 + 0.5 * (0.04 / peak) ** 0.5, rel=1e-5) and m.positive[7, 7] == 0
    agree = _result({2: d2, 4: np.where(d4 > 0, 0.16, 0.0)})
    assert mixed_image(agree, "a", weights=[1, 1]).positive.max() == pytest.approx(1.0, abs=1e-6)
    weak = _result({2: d2 / 4, 4: d4 / 4})
    assert saturation_scale([r, weak], weights=[1, 1]) == pytest.approx(peak)  # the strongest result sets it


def test_one_scale_for_all_classes_and_results():
    r1 = _result({2: [[[0.1, 0], [0, 0]], [[0, -0.3], [0, 0]]]})
    r2 = _result({2: [[[0.6, 0], [0, 0]], [[0, 0], [0, 0]]]})
    assert saturation_scale(r1) == pytest.approx(0.3)
    assert saturation_scale([r1, r2]) == pytest.approx(0.6)
    ma, mb = mixed_images(r1, [0, 1])
    assert ma.scale == mb.scale == pytest.approx(0.3)
    assert ma.positive.max() == pytest.approx((1 / 3) ** 0.5) and mb.negative.max() == pytest.approx(1.0)


def test_grid_image_signs_and_resampling_keeps_crisp_cells():
    d = np.array([[[0.2, -0.1], [0.0, 0.05]], [[0, 0], [0, 0]]])
    r = _result({2: d}, shape=(4, 6))
    g = grid_image(r, 2, 0, scale=0.2, gamma=1.0)
    assert g.shape == (4, 6)
    assert np.all(g[:2, :3] == 1.0) and np.all(g[:2, 3:] == -0.5) and np.all(g[2:, 3:] == 0.25)
    big = grid_image(r, 2, 0, scale=0.2, shape=(40, 90), gamma=1.0)
    assert set(np.unique(big)) == {1.0, -0.5, 0.0, 0.25}
    assert np.all(big[:20, :45] == 1.0) and np.all(big[20:, 45:] == 0.25)
    rgb = signed_to_rgb(g)
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[0, 5]) == (0, 0, 128)


def test_overlay_tints_where_evidence_and_leaves_the_rest_grey():
    d = np.zeros((2, 2, 2))
    d[0, 0, 0], d[0, 1, 1] = 0.5, -0.5
    r = _result({2: d})
    m = mixed_image(r, 0)
    grey = np.full((8, 8), 100, np.uint8)
    out = overlay(grey, m, opacity=0.5)
    assert tuple(out[7, 0]) == (100, 100, 100)
    assert out[0, 0, 0] > out[0, 0, 2] and out[7, 7, 2] > out[7, 7, 0]
    with pytest.raises(ValueError, match="shape"):
        overlay(np.zeros((3, 3)), m)


def test_bad_class_and_weights():
    r = _result({2: np.zeros((2, 2, 2)), 3: np.zeros((2, 3, 3))})
    with pytest.raises(ValueError, match="not one of"):
        mixed_image(r, "c")
    with pytest.raises(ValueError, match="one weight per grid size"):
        mixed_image(r, 0, weights=[1.0])
    with pytest.raises(ValueError, match="outside"):
        mixed_image(r, 5)
