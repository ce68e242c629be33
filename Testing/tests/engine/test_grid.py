"""The partition rule of METHOD.md: floor edges, every pixel in exactly one cell, sizes within one pixel; grids
shifted by part of a cell are exact partitions too."""

from fractions import Fraction

import numpy as np
import pytest

from DiDALib import (EVIDENCE_GRIDS, OffsetGrid, cell_boxes, cell_index_map, check_weights, default_weights, grid,
                     grid_edges, passes_per_image, validate_grids)
from DiDALib.engine.grid import grid_shape


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


# -- grids shifted by part of a cell (the evidence schedule's overlapping cells) ---------------------------------

@pytest.mark.parametrize("h,w,n,dy,dx", [(160, 160, 7, "1/2", "1/2"), (21, 26, 3, "1/2", 0), (50, 37, 5, "1/3", "2/3"),
                                         (40, 40, 4, 0, "1/4")])
def test_shifted_grids_are_exact_partitions_with_part_cells_at_the_ends(h, w, n, dy, dx):
    g = grid(n, dy, dx)
    cells = cell_index_map(h, w, g)
    rows, cols = grid_shape(g)
    assert (rows, cols) == (n + (Fraction(dy) > 0), n + (Fraction(dx) > 0))
    counts = np.bincount(cells.ravel(), minlength=rows * cols)
    assert counts.size == rows * cols and counts.sum() == h * w and np.all(counts > 0)
    for axis, length, o, k in ((0, h, Fraction(dy), rows), (1, w, Fraction(dx), cols)):
        edges = grid_edges(length, n, o)
        assert edges[0] == 0 and edges[-1] == length and len(edges) == k + 1
        for i in range(1, k):  # interior edges floor((i - o) L / n), exact in fractions
            assert edges[i] == ((i - o) * length) // n
    for c, (r0, r1, c0, c1) in enumerate(cell_boxes(h, w, g)):
        assert np.array_equal(np.argwhere(cells == c).min(0), [r0, c0])
        assert np.array_equal(np.argwhere(cells == c).max(0) + 1, [r1, c1])


def test_grid_keys_sort_coarse_to_fine_with_ints_and_refuse_bad_offsets():
    keys = validate_grids((grid(7, "1/2", "1/2"), 9, 7, grid(7, 0, "1/2")), 50, 50)
    assert keys == (7, OffsetGrid(7, 0, "1/2"), OffsetGrid(7, "1/2", "1/2"), 9)
    assert grid(9, 0, 0) == 9 and isinstance(grid(9, 0, 0), int)
    assert str(OffsetGrid(9, "1/2", 0)) == "9@1/2_0" and eval(repr(OffsetGrid(9, "1/2", 0))) == OffsetGrid(9, "1/2", 0)
    with pytest.raises(ValueError, match="non-zero offset"):
        OffsetGrid(7, 0, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        grid(7, 1, 0)
    with pytest.raises(ValueError, match="repeat"):
        validate_grids((grid(7, "1/2", 0), OffsetGrid(7, 0.5, 0)), 50, 50)
    with pytest.raises(ValueError, match="part cell without a pixel"):
        validate_grids((grid(7, "1/2", 0),), 10, 50)  # 10 rows: the first part cell would be floor(5/7) = 0 rows
    with pytest.raises(TypeError, match="is a name"):
        validate_grids("evidence", 50, 50)


def test_passes_count_every_cell_of_every_grid_and_the_evidence_schedule_fits_the_papers_budget():
    assert passes_per_image((7, grid(7, "1/2", "1/2"))) == 1 + 49 + 64
    assert passes_per_image(EVIDENCE_GRIDS) <= passes_per_image((7, 9, 11, 13, 15, 17, 19, 21)) == 1737


def test_weights_of_shifted_grids_are_shared_by_their_size():
    keys = (7, grid(7, 0, "1/2"), 9, grid(9, "1/2", 0))
    w = default_weights(keys)
    np.testing.assert_allclose(w, np.array([1, 1, 1.5, 1.5]) / 5)
    np.testing.assert_allclose(check_weights([1, 3], keys), [0.125, 0.125, 0.375, 0.375])  # one per size
    np.testing.assert_allclose(check_weights([1, 1, 1, 5], keys), [0.125, 0.125, 0.125, 0.625])  # one per grid
    with pytest.raises(ValueError, match="one weight per grid size"):
        check_weights([1, 2, 3], keys)
