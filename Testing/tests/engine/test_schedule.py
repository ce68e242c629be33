"""Named grid schedules and their text form (``--grids``, the Slicer parameter node, results files)."""

import pytest

from DiDALib import (
    EVIDENCE_GRIDS,
    PAPER_GRIDS,
    SCHEDULES,
    OffsetGrid,
    format_grids,
    offset_grids,
    parse_grids,
)
from DiDALib.engine.grid import grid_size


def test_named_schedules():
    assert parse_grids("paper") == PAPER_GRIDS == (7, 9, 11, 13, 15, 17, 19, 21)
    assert parse_grids(" Evidence ") == EVIDENCE_GRIDS
    assert set(SCHEDULES) >= {"paper", "evidence"}
    sizes = sorted({grid_size(g) for g in EVIDENCE_GRIDS})
    assert 1 < len(sizes) < len(PAPER_GRIDS), "the evidence schedule is multi-scale, with fewer sizes than the paper's"
    assert EVIDENCE_GRIDS == offset_grids(sizes, 2), "every size at the 2 x 2 half-cell offsets"


def test_text_form_round_trips():
    for grids in (PAPER_GRIDS, EVIDENCE_GRIDS, (3, 5), offset_grids((4, 6), 3), (7, OffsetGrid(7, "1/2", 0), 9)):
        assert parse_grids(format_grids(grids)) == tuple(sorted(grids))
    assert format_grids(offset_grids((5, 9), 3)) == "5:3,9:3"
    assert format_grids((7, OffsetGrid(7, "1/2", 0))) == "7,7@1/2_0"
    assert parse_grids("9,7:2") == tuple(sorted((9, *offset_grids((7,), 2))))
    assert len(offset_grids((7,), 3)) == 9 and offset_grids((7,), 1) == (7,)


@pytest.mark.parametrize("text,match", [("", "empty"), ("7,x", "whole numbers"), ("7:0", "offsets per axis"),
                                        ("7@1/2", "not a grid"), ("7@a_0", "fraction"), ("7@1_0", r"\[0, 1\)"),
                                        ("7,7:2", "repeat"), ("7.5", "whole numbers"), ("papers", "whole numbers")])
def test_bad_text_is_refused_with_the_reason(text, match):
    with pytest.raises(ValueError, match=match):
        parse_grids(text)
