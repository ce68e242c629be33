"""Figures of the contrast, feature-scale and en-face maps: the colours land where the numbers say."""

from __future__ import annotations

import numpy as np
import pytest

from DiDALib import DiDAResult
from DiDALib.maps.enface import EnFaceMap
from DiDALib.maps.scale import feature_scale
from DiDALib.maps.scale_colours import scale_palette
from DiDALib.pipeline import VolumeExplanation
from DiDALib.reports.figures import contrast_view_figure, dida_view_figure
from DiDALib.reports.map_figures import enface_figure, enface_rgb, scale_figure

DEPTH, WIDTH = 40, 60


def _explanation() -> VolumeExplanation:
    """One B-scan of three classes; on grid 2, the top-left cell speaks for 'a' and against 'b', the bottom-right
    cell for 'b'. So 'a rather than b' is red at top left and blue at bottom right."""
    d = np.zeros((3, 2, 2), np.float32)
    d[0, 0, 0], d[1, 0, 0] = 0.3, -0.1
    d[1, 1, 1] = 0.2
    r = DiDAResult(np.array([0.6, 0.3, 0.1], np.float32), {2: d}, (DEPTH, WIDTH), (0, 0, DEPTH, WIDTH),
                   class_names=("a", "b", "c"), index=0)
    return VolumeExplanation(("a", "b", "c"), {0: r}, (DEPTH, WIDTH))


def _panel(fig, p: int, panel_width: int) -> np.ndarray:
    ph = int(round(DEPTH * panel_width / WIDTH))
    x0 = p * (panel_width + 6)
    return np.asarray(fig)[:ph, x0 : x0 + panel_width]


def test_contrast_view_is_red_where_a_leads_and_blue_where_b_does():
    ex = _explanation()
    bscan = np.full((DEPTH, WIDTH), 0.5, np.float32)
    fig = contrast_view_figure(bscan, ex, 0, pairs=[(0, 1)], point=(20, 30), panel_width=120)
    assert fig.size == (2 * 120 + 6, 80 + 28)
    panel = _panel(fig, 1, 120).astype(int)
    top_left, bottom_right = panel[20, 20], panel[45, 70]  # clear of the caption in the bottom-right corner
    assert top_left[0] > top_left[2] + 60 and bottom_right[2] > bottom_right[0] + 60
    # Default pairs: the top class against each of the next two, one panel each.
    assert contrast_view_figure(bscan, ex, 0, point=(20, 30), panel_width=120).size == (3 * 120 + 2 * 6, 108)
    # The class view of the same B-scan is unchanged by the refactoring into panels: 'a' red at top left.
    view = _panel(dida_view_figure(bscan, ex, 0, classes=[0], point=(20, 30), panel_width=120), 1, 120).astype(int)
    assert view[20, 20, 0] > view[20, 20, 2] + 60
    with pytest.raises(ValueError, match="not explained"):
        contrast_view_figure(bscan, ex, 3)


def test_scale_figure_colours_each_region_by_its_grid_size():
    d2 = np.zeros((1, 2, 2), np.float32)
    d2[0, 0, 0] = 0.4  # a large finding: the whole top-left quarter, seen best by grid 2
    d8 = np.zeros((1, 8, 8), np.float32)
    d8[0, 7, 7] = 0.1  # a small one in the bottom-right corner, seen only by grid 8
    r = DiDAResult(np.array([0.9], np.float32), {2: np.concatenate([d2]), 8: d8}, (DEPTH, WIDTH),
                   (0, 0, DEPTH, WIDTH), class_names=("a",))
    s = feature_scale(r, 0)
    assert s.grid[5, 5] == 2 and s.grid[39, 59] == 8
    fig = scale_figure(np.zeros((DEPTH, WIDTH), np.float32), [(s, "a")], spacing=(0.01, 0.004), panel_width=120)
    panel = _panel(fig, 1, 120).astype(int)
    palette = {n: np.array(rgb) * 255 for n, rgb in scale_palette((2, 8)).items()}
    # Over a black B-scan a fully opaque pixel shows its grid's colour; grid 2 is the coarse (yellow) end.
    assert np.abs(panel[10, 10] - palette[2] * 0.85).max() < 3
    assert panel[79, 119].sum() > 0 and np.argmax(palette[8]) == 2  # the fine grid's colour is blue-ish
    assert panel[60, 10].sum() == 0  # no evidence, no colour


def test_enface_figure_keeps_true_proportions_and_marks_unexplained_bscans():
    pos = np.zeros((4, 50), np.float32)
    pos[1, 10:20] = 0.2
    neg = np.zeros_like(pos)
    neg[2, 30:40] = 0.1
    pos[3] = neg[3] = np.nan  # B-scan 3 was not explained
    m = EnFaceMap(pos, neg, 0)
    rgb = enface_rgb(m, 0.2)
    assert rgb[1, 15, 0] == 255 and rgb[1, 15, 2] == 0
    assert rgb[2, 35, 2] > 150 and rgb[2, 35, 0] == 0
    assert tuple(rgb[3, 0]) == (70, 70, 70)
    fig = enface_figure([(m, "a")], spacing=(0.012, 0.12), scale=0.2, panel_width=100)
    # 4 B-scans 0.12 mm apart over 50 A-scans 0.012 mm apart: 0.48 mm tall, 0.6 mm wide.
    assert fig.size == (100, 22 + 80 + 26)
    img = np.asarray(fig)
    assert tuple(img[22 + 5, 50]) == (70, 70, 70)  # the last B-scan (unexplained) at the top


def test_enface_on_the_fundus_is_red_where_the_evidence_was_found():
    from DiDALib.reports.map_figures import enface_fundus_figure

    pos = np.zeros((5, 10), np.float32)
    pos[2, 5] = 0.3  # A-scan 5 of B-scan 2, at (1.55, 1.35) mm on a fundus of 0.1 mm pixels
    m = EnFaceMap(pos, np.zeros_like(pos), 0)
    positions = np.array([[0.5, 1.8 - 0.2 * b, 2.5, 1.8 - 0.2 * b] for b in range(5)])
    fig = enface_fundus_figure([(m, "a")], np.full((40, 40), 0.5, np.float32), positions, (0.1, 0.1), 0.3,
                               panel_width=40)
    img = np.asarray(fig)[22:].astype(int)
    assert img[13, 15, 0] > img[13, 15, 2] + 80  # red over the grey fundus
    assert abs(img[30, 30, 0] - img[30, 30, 2]) < 3  # outside the scan: the fundus unchanged
