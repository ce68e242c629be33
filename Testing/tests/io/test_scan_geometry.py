"""Circle and radial scans: read as stacks of B-scans with their true A-scan spacing along the circle or line,
marked non-Cartesian everywhere (the volume, its description, a saved NRRD), and explained like any B-scan."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
from oct_samples import write_vol

from DiDALib.io.registry import load_oct
from DiDALib.io.volume import GEOMETRY_KEY, OCTVolume, bscan_stack

SIZE = (24, 40)  # depth, A-scans


def _raw(n: int) -> np.ndarray:
    raw = np.full((n, *SIZE), 1e-3, np.float32)
    raw[:, SIZE[0] // 2] = 0.2  # a bright band
    return raw


def _circles(radii, centre=(4.0, 4.5)):
    """Circle B-scans as Heyex writes them: start on the circle, end at its centre (mm)."""
    cx, cy = centre
    return [(cx + r, cy, cx, cy) for r in radii]


def test_circle_vol_is_a_stack_with_the_spacing_along_the_circle(tmp_path):
    path = tmp_path / "rnfl.vol"
    write_vol(path, _raw(1), scale=(0.0114, 0.0039, 0.0), laterality="OD", pattern=2, positions=_circles([1.75]))
    vol = load_oct(path)
    assert vol.geometry == "circle" and not vol.cartesian and vol.bscans.shape == (1, *SIZE)
    along = 2 * math.pi * 1.75 / SIZE[1]  # a 3.5 mm ring sampled by 40 A-scans
    assert vol.bscan_spacing == pytest.approx((along,)) and vol.spacing[:2] == pytest.approx((along, 0.0039))
    assert vol.spacing_placeholder and vol.spacing_unit == "mm" and vol.laterality == "OD"
    assert "circle: 2 pi" in vol.metadata["spacing_source"] and vol.metadata["vol_scale_x_mm"] == pytest.approx(0.0114)
    assert "not a 3-D volume" in vol.describe() and "along the circle" in vol.describe()
    assert vol.fundus is not None and vol.fundus.image.ndim == 2  # the SLO comes with circle scans too
    # the same display transform as eyepy's for volume scans: the bright band is bright, the rest dark
    assert vol.bscans[0, SIZE[0] // 2].mean() > 0.8 and vol.bscans[0, 0].mean() < 0.3


def test_three_circle_scan_keeps_each_rings_spacing(tmp_path):
    path = tmp_path / "rings.vol"
    radii = [1.75, 2.05, 2.35]
    write_vol(path, _raw(3), scale=(0.0114, 0.0039, 0.0), pattern=2, positions=_circles(radii))
    vol = load_oct(path)
    assert vol.bscan_spacing == pytest.approx(tuple(2 * math.pi * r / SIZE[1] for r in radii))
    assert vol.spacing[0] == pytest.approx(np.mean(vol.bscan_spacing)) and "lateral_note" in vol.metadata


def test_radial_vol_spacing_along_each_line(tmp_path):
    path = tmp_path / "star.vol"
    half = 3.0
    lines = [(4 - half * math.cos(a), 4 - half * math.sin(a), 4 + half * math.cos(a), 4 + half * math.sin(a))
             for a in np.linspace(0, math.pi, 6, endpoint=False)]
    write_vol(path, _raw(6), scale=(2 * half / (SIZE[1] - 1), 0.0039, 0.0), pattern=5, positions=lines)
    vol = load_oct(path)
    assert vol.geometry == "radial" and vol.bscan_spacing == pytest.approx((2 * half / (SIZE[1] - 1),) * 6)
    assert "radial line" in vol.metadata["spacing_source"] and "along the line" in vol.describe()


def test_circle_without_a_radius_falls_back_to_pixels(tmp_path):
    path = tmp_path / "flat.vol"
    write_vol(path, _raw(1), pattern=2, positions=[(4.0, 4.0, 4.0, 4.0)])
    vol = load_oct(path)
    assert vol.geometry == "circle" and vol.spacing_unit == "pixel" and vol.bscan_spacing is None


def test_saved_stack_says_what_it_is_and_reads_back(tmp_path):
    stack = bscan_stack("x.vol", "heyex-vol", np.zeros((2, 8, 10), np.float32), "circle", [0.02, 0.02], 0.004,
                        metadata={})
    image = stack.to_sitk()
    assert image.GetMetaData(GEOMETRY_KEY) == "circle" and "not a 3-D volume" in image.GetMetaData("DiDA_note")
    sitk.WriteImage(image, str(tmp_path / "s.nrrd"))
    assert f"{GEOMETRY_KEY}:=circle" in (tmp_path / "s.nrrd").read_bytes()[:2000].decode("latin-1")
    back = load_oct(tmp_path / "s.nrrd")
    assert back.geometry == "circle" and back.spacing_placeholder
    assert load_oct(tmp_path / "s.nrrd").spacing[:2] == pytest.approx((0.02, 0.004))


def test_volume_checks_its_geometry():
    arr = np.zeros((2, 4, 5), np.float32)
    with pytest.raises(ValueError, match="geometry 'spiral'"):
        OCTVolume(arr, (1, 1, 1), geometry="spiral")
    with pytest.raises(ValueError, match="one positive A-scan spacing per B-scan"):
        OCTVolume(arr, (1, 1, 1), geometry="circle", bscan_spacing=(0.01,))
    assert OCTVolume(arr, (1, 1, 1), geometry="radial").spacing_placeholder  # no distance between radial lines
    with pytest.raises(ValueError, match="circle and radial"):
        bscan_stack("x", "f", arr, "cartesian", None, 1.0, metadata={})


def test_e2e_circle_series_becomes_a_stack(tmp_path, monkeypatch):
    # What eyepy's E2E reader returns for a circle series (positions in degrees), converted by our reader.
    import DiDALib.io.heyex_e2e as heyex_e2e

    data = np.full((1, *SIZE), 30, np.uint8)
    bmeta = [dict(start_x=-6.0, start_y=0.0, end_x=0.0, end_y=0.0, imgSizeWidth=SIZE[1], scale_y=0.0039,
                  scan_pattern=2, center_x=-3.0, center_y=0.0)]
    series = SimpleNamespace(data=data, meta={"bscan_meta": bmeta, "laterality": "OS"})
    monkeypatch.setattr(heyex_e2e, "_e2e_eyevolume", lambda p: (series, 1, 0, []))
    path = tmp_path / "ring.e2e"
    path.write_bytes(b"CMDb" + b"\x00" * 60)
    vol = load_oct(path)
    assert vol.geometry == "circle" and vol.format == "heyex-e2e" and vol.laterality == "OS"
    assert vol.bscan_spacing == pytest.approx((2 * math.pi * 6.0 * 0.2896 / SIZE[1],))
    assert vol.spacing[1] == pytest.approx(0.0039) and vol.metadata["spacing_approximate"]


def test_circle_scan_is_explained_end_to_end(tmp_path, capsys):
    timm = pytest.importorskip("timm")
    from DiDALib import cli
    from DiDALib.models.package import save_model_package
    from DiDALib.models.spec import ModelSpec

    spec = ModelSpec(architecture="timm:test_efficientnet", classes=("normal", "glaucoma"), input_size=(32, 32))
    package = save_model_package(tmp_path / "pkg", spec, timm.create_model("test_efficientnet", num_classes=2,
                                                                            in_chans=1))
    path = tmp_path / "rnfl.vol"
    write_vol(path, _raw(2), scale=(0.0114, 0.0039, 0.0), pattern=2, positions=_circles([1.75, 2.05]))
    code = cli.main([str(a) for a in ("explain", path, "--model", package, "--grids", "2,3", "--device", "cpu",
                                      "--quiet", "--no-figures", "--out", tmp_path / "r")])
    assert code == 0, capsys.readouterr().err
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert "circle B-scan(s)" in run["scan_geometry"] and run["bscans"] == [0, 1]
    written = sitk.ReadImage(str(tmp_path / "r" / "volume.nrrd"))
    assert written.GetMetaData(GEOMETRY_KEY) == "circle"


def _codes(n: int) -> np.ndarray:
    """E2E float16 codes: a dim speckle-free background (2^-4) and a bright band (2^-1) in the middle row."""
    codes = np.full((n, *SIZE), 59 << 10, np.uint16)
    codes[:, SIZE[0] // 2] = 62 << 10
    return codes


def test_e2e_circle_file_written_with_eyepy_structures(tmp_path):
    from e2e_samples import write_e2e

    path = write_e2e(tmp_path / "ring.e2e", _codes(1), [(-6.0, 1.0, 0.0, 1.0)], pattern=2, laterality="OS")
    vol = load_oct(path)
    assert vol.geometry == "circle" and vol.format == "heyex-e2e" and vol.laterality == "OS"
    assert vol.bscan_spacing == pytest.approx((2 * math.pi * 6.0 * 0.2896 / SIZE[1],))
    assert vol.bscans[0, SIZE[0] // 2].min() > vol.bscans[0, 0].max()  # eyepy's display transform, band bright


def test_e2e_volume_file_keeps_its_laterality(tmp_path):
    from e2e_samples import write_e2e

    positions = [(-10.0, 1.0 - 0.5 * k, 10.0, 1.0 - 0.5 * k) for k in range(3)]
    vol = load_oct(write_e2e(tmp_path / "cube.e2e", _codes(3), positions, pattern=3, laterality="OD"))
    assert vol.cartesian and vol.bscans.shape == (3, *SIZE) and vol.laterality == "OD"  # eyepy says '82'
    assert vol.spacing == pytest.approx((20 * 0.2896 / SIZE[1], 0.0039, 0.5 * 0.2896))
