"""The partition rule of METHOD.md: floor edges, every pixel in exactly one cell, sizes within one pixel."""

import numpy as np
import pytest

from DiDALib import cell_boxes, cell_index_map, check_weights, default_weights, grid_edges, validate_grids


@pytest.mark.parametrize("h,w,n", [(224, 224, 7), (224, 224, 9), (20, 23, 3), (5, 7, 3), (100, 37, 21), (31, 31, 31)])
def test_every_pixel_in_exactly_one_cell_and_sizes_differ_by_at_most_one(h, w, n):
    cells = cell_index_map(h, w, n)
    assert cells.shape == (h, w)
    counts = np.bincount(cells.ravel(), minlength=n * n)
    assert counts.sum() == h * w and np.all(counts > 0) and counts.size == n * n
    i, j = np.divmod(cells, n)
    rows = np.array([np.unique(np.nonzero(i == r)[0]).size for r in range(n)])
    cols = np.array([np.unique(np.nonzero(j == c)[1]).size for c in range(n)])
    assert rows.max() - rows.min() <= 1 and cols.max() - cols.min() <= 1


def test_floor_edges_match_the_formula():
    h, w, n = 17, 29, 5
    cells = cell_index_map(h, w, n)
    for y in range(h):
        for x in range(w):
            i = max(k for k in range(n) if (k * h) // n <= y)
            j = max(k for k in range(n) if (k * w) // n <= x)
            assert cells[y, x] == i * n + j
    assert grid_edges(10, 3).tolist() == [0, 3, 6, 10]


def test_cell_boxes_cover_the_cells():
    h, w, n = 23, 19, 4
    cells = cell_index_map(h, w, n)
    for c, (r0, r1, c0, c1) in enumerate(cell_boxes(h, w, n)):
        expect = np.zeros((h, w), bool)
        expect[r0:r1, c0:c1] = True
        assert np.array_equal(cells == c, expect)


@pytest.mark.parametrize("bad", [0, -3, 25])
def test_grid_outside_the_image_is_refused(bad):
    with pytest.raises(ValueError, match=f"grid size {bad}"):
        validate_grids((7, bad), 24, 30)


def test_grid_type_and_repeats():
    with pytest.raises(TypeError, match="not an integer"):
        validate_grids((7, 9.5), 50, 50)
    with pytest.raises(ValueError, match="repeat"):
        validate_grids((7, 7), 50, 50)
    with pytest.raises(ValueError, match="empty"):
        validate_grids((), 50, 50)
    assert validate_grids((21, 7, 9), 50, 50) == (7, 9, 21)


def test_default_weights_favour_finer_grids_slightly():
    w = default_weights((7, 9, 11, 13, 15, 17, 19, 21))
    assert np.isclose(w.sum(), 1.0)
    assert np.all(np.diff(w) > 0)
    assert np.isclose(w[-1] / w[0], 1.5)


def test_weights_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="one weight per grid size"):
        check_weights([1, 2], (7, 9, 11))
    with pytest.raises(ValueError, match="non-negative"):
        check_weights([1, -2, 1], (7, 9, 11))


def test_given_weights_keep_their_ratios_and_sum_to_one():
    np.testing.assert_allclose(check_weights([1, 3], (7, 9)), [0.25, 0.75])
