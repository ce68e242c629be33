"""Contrast, feature-scale and en-face maps against scorers whose every d is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import LinearScorer

from DiDALib import DiDAEngine, DiDAResult, cell_index_map, mixed_image, saturation_scale
from DiDALib.maps.contrast import contrast_result, default_pairs, parse_pairs
from DiDALib.maps.enface import enface_map, enface_scale, evidence_parts
from DiDALib.maps.scale import feature_scale, normalised_evidence, scale_readout


def _cell_sums(weight: np.ndarray, n: int) -> np.ndarray:
    """sum of a (H, W) weight map over each cell of an n x n grid: (n, n), float64."""
    cells = cell_index_map(*weight.shape, n)
    return np.bincount(cells.ravel(), weights=weight.ravel().astype(np.float64), minlength=n * n).reshape(n, n)


# -- contrast --------------------------------------------------------------------------------------------------------

def test_contrast_of_a_linear_scorer_is_the_difference_of_the_class_weights_per_cell():
    shape = (1, 20, 30)
    model = LinearScorer(shape, classes=4, seed=3)
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    result = DiDAEngine(model, device="cpu", score="logits", fill=0.0).explain(image, grids=(4, 5))
    wt = model.weight.detach().double().numpy()[:, 0]  # (K, H, W)
    for a, b in ((0, 2), (3, 1)):
        c = contrast_result(result, a, b)
        assert c.num_classes == 1 and c.grids == (4, 5)
        assert c.class_names == (f"{a} vs {b}",)  # unnamed classes are numbered
        base = (wt * image[0]).sum(axis=(1, 2)) + model.bias.detach().double().numpy()
        assert c.base_scores[0] == pytest.approx(base[a] - base[b], abs=1e-4)
        for n in (4, 5):
            expected = _cell_sums((wt[a] - wt[b]) * image[0], n)  # d_A - d_B for fill 0
            np.testing.assert_allclose(c.deltas[n][0], expected, atol=1e-4)
    # Swapping the classes swaps the colours: red for A over B is blue for B over A.
    ab = mixed_image(contrast_result(result, 0, 2), 0, scale=1.0)
    ba = mixed_image(contrast_result(result, 2, 0), 0, scale=1.0)
    np.testing.assert_allclose(ab.positive, ba.negative)
    np.testing.assert_allclose(ab.negative, ba.positive)


def test_contrast_pairs_from_names_and_top():
    names = ("normal", "drusen", "wet_amd", "oedema")
    assert default_pairs([0.1, 0.5, 0.3, 0.1]) == [(1, 2), (1, 0)]  # ties keep class order
    assert parse_pairs(["drusen:normal", "top", "drusen:wet_amd"], names, [0.1, 0.5, 0.3, 0.1]) == [
        (1, 0), (1, 2)]
    for bad, match in (("drusen", "A:B"), ("drusen:", "A:B"), ("x:normal", "not among"), ("normal:normal", "itself")):
        with pytest.raises(ValueError, match=match):
            parse_pairs([bad], names, [0.1, 0.5, 0.3, 0.1])
    with pytest.raises(ValueError, match="two different"):
        contrast_result(DiDAResult(np.zeros(2, np.float32), {2: np.zeros((2, 2, 2), np.float32)}, (4, 4),
                                   (0, 0, 4, 4), class_names=("a", "b")), "a", "a")


# -- feature scale ---------------------------------------------------------------------------------------------------

def _planted(side_cells: int, size: int = 60, grids=(3, 4, 5, 6, 10, 12, 15)) -> tuple[DiDAResult, np.ndarray]:
    """A linear scorer whose class 0 sees only a square finding of one grid-``side_cells`` cell, aligned to that grid
    (cell (1, 1)); class 1 sees nothing. Image of ones, fill 0, so d = sum of the weights over each cell."""
    cell = size // side_cells
    feature = np.zeros((size, size), bool)
    feature[cell : 2 * cell, cell : 2 * cell] = True
    model = LinearScorer((1, size, size), classes=2)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, 0][torch.from_numpy(feature)] = 0.01
        model.bias.zero_()
    image = np.ones((1, size, size), np.float32)
    return DiDAEngine(model, device="cpu", score="logits", fill=0.0).explain(image, grids=grids), feature


@pytest.mark.parametrize("side_cells", [5, 10, 4])
def test_the_scale_of_a_planted_finding_peaks_at_the_grid_whose_cells_match_it(side_cells):
    result, feature = _planted(side_cells)
    scale = feature_scale(result, 0)
    assert np.all(scale.grid[feature] == side_cells)
    # Closed form at the finding's centre: normalised evidence = (covered area x 0.01) x n / region side.
    e = normalised_evidence(result, 0)
    centre = np.argwhere(feature).mean(axis=0).astype(int)
    for g, n in enumerate(result.grids):
        cells = cell_index_map(60, 60, n)
        covered = (cells == cells[tuple(centre)]) & feature
        assert e[g][tuple(centre)] == pytest.approx(covered.sum() * 0.01 * n / 60, rel=1e-4)
    assert np.all((scale.sharpness[feature] > 0) & (scale.sharpness[feature] <= 1))
    # A class without evidence has no scale anywhere.
    assert np.all(feature_scale(result, 1).grid == 0)


def test_scale_signs_readout_and_resampling():
    result, feature = _planted(5)
    assert np.all(feature_scale(result, 0, sign="negative").grid == 0)  # the finding only speaks for class 0
    assert np.all(feature_scale(result, 0, sign="positive").grid[feature] == 5)
    scale = feature_scale(result, 0, shape=(120, 90))  # a B-scan twice as deep and 1.5 times as wide
    assert scale.grid.shape == (120, 90) and scale.grid[36, 27] == 5
    text = scale_readout(scale, 36, 27, bscan_shape=(120, 90), spacing=(0.0117, 0.0039))
    assert text.startswith("strongest at 5 x 5, cells of 0.21 x 0.094 mm")
    assert "no clear scale" in scale_readout(scale, 119, 89, (120, 90), (0.0117, 0.0039))
    with pytest.raises(ValueError, match="sign"):
        feature_scale(result, 0, sign="up")


# -- en-face ---------------------------------------------------------------------------------------------------------

def test_enface_lights_the_bscans_and_ascans_of_a_finding():
    n_bscans, depth, width = 6, 24, 40
    blob = np.zeros((depth, width), bool)
    blob[10:16, 12:20] = True  # the finding's A-scans are columns 12..19
    volume = np.zeros((n_bscans, 1, depth, width), np.float32)
    volume[2:5, 0][:, blob] = 1.0  # B-scans 2, 3 and 4 hold it
    model = LinearScorer((1, depth, width), classes=2)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, 0] = torch.from_numpy(blob.astype(np.float32))  # class 0 counts the finding's brightness
        model.weight[1, 0] = -torch.from_numpy(blob.astype(np.float32))  # class 1 is lowered by it
        model.bias.zero_()
    engine = DiDAEngine(model, device="cpu", score="logits", fill=0.0)
    grids = (2, 4, 8)
    results = {i: engine.explain(volume[i], grids=grids) for i in range(n_bscans) if i != 5}  # B-scan 5 unexplained
    for i, r in results.items():
        r.index = i
    m = enface_map(results, 0, n_bscans, (depth, width))
    assert m.positive.shape == (n_bscans, width)
    assert list(m.explained) == [True] * 5 + [False]
    lit = m.positive[:5] > 0
    assert not lit[[0, 1]].any() and lit[2:5].any(axis=1).all()  # only the finding's B-scans light up
    # Closed form: column x's value is the largest, over depth, of the grids' weighted cell sums at (row, x).
    w = 1.0 + 0.5 * (np.array(grids) - 2) / 6  # the default weights: 1.0 coarsest to 1.5 finest, linear in n
    w /= w.sum()
    for x in range(width):
        col = np.zeros(depth)
        for wi, n in zip(w, grids):
            sums = _cell_sums(blob.astype(np.float64), n).ravel()
            col += wi * sums[cell_index_map(depth, width, n)[:, x]]
        assert m.positive[3, x] == pytest.approx(col.max(), rel=1e-4, abs=1e-6)
    assert 12 <= int(np.argmax(m.positive[3])) <= 19
    assert np.all(m.negative[:5] == 0)
    against = enface_map(results, 1, n_bscans, (depth, width))  # class 1: the same places, against
    np.testing.assert_allclose(against.negative[:5], m.positive[:5])
    assert enface_scale([m, against]) == pytest.approx(float(np.nanmax(m.positive)))
    pos, neg = evidence_parts(results[3], 0)
    assert pos.shape == (depth, width) and np.all(neg == 0)
    with pytest.raises(ValueError, match="at least one"):
        enface_map({}, 0, n_bscans, (depth, width))


def test_contrast_mixes_and_scales_like_a_class_map():
    shape = (1, 16, 16)
    model = LinearScorer(shape, classes=3, seed=5)
    image = np.random.default_rng(2).random(shape, dtype=np.float32)
    result = DiDAEngine(model, device="cpu", score="probabilities", fill=0.0).explain(image, grids=(2, 4))
    c = contrast_result(result, 0, 1)
    s = saturation_scale(c)
    m = mixed_image(c, 0)
    assert m.scale == pytest.approx(s) and m.positive.shape == (16, 16)
    assert float(np.max(np.maximum(m.positive, m.negative))) <= 1.0


def test_enface_lies_on_the_fundus_where_its_ascans_were_taken():
    from DiDALib.maps.enface import EnFaceMap, enface_on_fundus

    n, width = 5, 10
    pos = np.arange(n * width, dtype=np.float32).reshape(n, width)  # value = b * 10 + a
    m = EnFaceMap(pos, -pos, 0)
    # B-scans 0.2 mm apart from y = 1.8 (B-scan 0, inferior) up to y = 1.0, each from x = 0.5 to 2.5 mm;
    # the fundus is 40 x 40 pixels of 0.1 mm.
    positions = np.array([[0.5, 1.8 - 0.2 * b, 2.5, 1.8 - 0.2 * b] for b in range(n)])
    p, q = enface_on_fundus(m, positions, (40, 40), (0.1, 0.1))
    # The pixel centred at (x, y) = (0.55, 1.75) mm is A-scan 0 of B-scan 0; (2.45, 0.95) is A-scan 9 of B-scan 4.
    assert p[17, 5] == 0 and p[9, 24] == 49 and q[9, 24] == -49
    assert p[13, 15] == 2 * 10 + 5  # (1.55, 1.35) mm: A-scan 5 of B-scan 2
    assert np.isnan(p[5, 5]) and np.isnan(p[17, 30])  # above the last B-scan; beyond the lines' ends
    assert np.count_nonzero(~np.isnan(p)) == 20 * 10  # 2 mm x 1.0 mm (five bands of 0.2 mm) of 0.1 mm pixels
    with pytest.raises(ValueError, match="raster"):
        enface_on_fundus(m, positions[[0, 1, 2, 4, 3]], (40, 40), (0.1, 0.1))
    with pytest.raises(ValueError, match="single B-scan"):
        enface_on_fundus(EnFaceMap(pos[:1], pos[:1], 0), positions[:1], (40, 40), (0.1, 0.1))


# -- every map on a result of shifted grids (the evidence schedule) --------------------------------------------------

def _shifted(classes: int = 3, sizes=(3, 4)) -> tuple[DiDAResult, np.ndarray, np.ndarray]:
    """A linear scorer explained on ``sizes`` at 2 x 2 half-cell offsets (fill 0): the result, the weights (K, H, W)
    times the image (every d is a cell's sum of them) and the image."""
    from DiDALib import offset_grids

    shape = (1, 18, 26)
    model = LinearScorer(shape, classes=classes, seed=11)
    image = np.random.default_rng(4).random(shape, dtype=np.float32)
    result = DiDAEngine(model, device="cpu", score="logits", fill=0.0).explain(image, grids=offset_grids(sizes, 2))
    return result, model.weight.detach().double().numpy()[:, 0] * image[0], image


def _painted(result: DiDAResult, g, weight: np.ndarray) -> np.ndarray:
    """(H, W): each pixel's cell sum of ``weight`` on grid g, the closed-form d of a linear scorer with fill 0."""
    from DiDALib.maps.mixing import cell_map

    cells = cell_map(result, g)
    return np.bincount(cells.ravel(), weights=weight.ravel(), minlength=cells.max() + 1)[cells]


def test_contrast_of_shifted_grids_is_the_difference_of_the_class_weights_per_cell():
    result, wx, _ = _shifted()
    assert len(result.grids) == 8 and any(not isinstance(g, int) for g in result.grids)
    c = contrast_result(result, 2, 0)
    assert c.grids == result.grids
    for g in result.grids:
        from DiDALib.maps.mixing import cell_values

        np.testing.assert_allclose(cell_values(c, g, c.deltas[g][0]), _painted(result, g, wx[2] - wx[0]), atol=1e-4)
    m = mixed_image(c, 0)  # mixed and scaled as a class map, one weight per size shared by its shifted grids
    assert m.positive.shape == (18, 26) and m.scale == pytest.approx(saturation_scale(c))


def test_feature_scale_of_shifted_grids_averages_each_sizes_grids():
    result, wx, _ = _shifted()
    e = normalised_evidence(result, 1)
    assert e.shape == (2, 18, 26) and feature_scale(result, 1).grids == (3, 4)
    for s, n in enumerate((3, 4)):
        grids = [g for g in result.grids if (g if isinstance(g, int) else g.n) == n]
        assert len(grids) == 4
        expected = np.mean([np.abs(_painted(result, g, wx[1])) for g in grids], axis=0) * n / np.sqrt(18 * 26)
        np.testing.assert_allclose(e[s], expected, rtol=1e-4, atol=1e-6)
    scale = feature_scale(result, 1)
    np.testing.assert_array_equal(scale.grid, np.where(scale.grid > 0, np.array([3, 4])[np.argmax(e, axis=0)], 0))


def test_enface_of_shifted_grids_weighs_each_grid_by_its_sizes_share():
    result, wx, _ = _shifted()
    result.index = 0
    m = enface_map({0: result}, 0, 2, (18, 26))
    w = {3: 1.0 / 4 / 2.5, 4: 1.5 / 4 / 2.5}  # sizes 3 and 4 weigh 1.0 and 1.5, each shared by its 4 grids
    pos = sum(w[g if isinstance(g, int) else g.n] * np.clip(_painted(result, g, wx[0]), 0, None) for g in result.grids)
    neg = sum(w[g if isinstance(g, int) else g.n] * np.clip(-_painted(result, g, wx[0]), 0, None) for g in result.grids)
    np.testing.assert_allclose(m.positive[0], pos.max(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.negative[0], neg.max(axis=0), rtol=1e-4, atol=1e-6)
    assert list(m.explained) == [True, False]
