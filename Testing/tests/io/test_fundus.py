"""The fundus (SLO/NIR localizer) of Heyex files comes with the volume, in the coordinates of the B-scan positions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from DiDALib.io.registry import load_oct
from DiDALib.io.volume import Fundus

DATA = Path(__file__).resolve().parents[2] / "Data" / "oct"


def test_real_spectralis_vol_brings_its_slo():
    v = load_oct(DATA / "spectralis_linescan_real.vol")
    assert v.fundus is not None and v.fundus.image.shape == (768, 768) and v.fundus.image.dtype == np.float32
    assert v.fundus.spacing == pytest.approx((0.0118206, 0.0118206), rel=1e-4)
    assert 0 <= v.fundus.image.min() and v.fundus.image.max() <= 1 and v.fundus.image.std() > 0.05
    # The line scan crosses the SLO: its start and end lie on the image (9.08 mm wide).
    x0, y0, x1, y1 = v.metadata["bscan_positions_mm"][0]
    assert 0 <= x0 < x1 <= 768 * 0.0118206 + 1e-6 and 0 <= y0 <= 768 * 0.0118206


@pytest.mark.parametrize("source", ["heyex_synthetic_10x40x50.vol", "heyex_xml"])
def test_synthetic_heyex_files_bring_theirs(source):
    v = load_oct(DATA / source)
    assert v.fundus is not None and v.fundus.image.shape == (50, 50)
    assert len(v.metadata["bscan_positions_mm"]) == v.n_bscans == 10


def test_other_formats_have_none_and_bad_fundus_values_are_refused(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "b.png")
    assert load_oct(tmp_path / "b.png").fundus is None
    with pytest.raises(ValueError, match="2-D"):
        Fundus(np.zeros((2, 3, 4)), (0.01, 0.01))
    with pytest.raises(ValueError, match="spacing"):
        Fundus(np.zeros((2, 3)), (0.0, 0.01))
