"""Topcon, Zeiss, Bioptigen and Optovue files through OCT-Converter: pixels upright and in order, the spacing each
file gives, laterality, radial scans as stacks, and one clear error for each way a file can be wrong."""

from __future__ import annotations

import numpy as np
import pytest
from vendor_samples import (
    write_bioptigen,
    write_cirrus_img,
    write_fda,
    write_fds,
    write_optovue,
)

from DiDALib.io.registry import detect_format, load_oct
from DiDALib.io.volume import OCTReadError

pytest.importorskip("oct_converter")


def _bscans(n=3, depth=20, width=30, top=65535) -> np.ndarray:
    """B-scans whose every pixel says where it is: value grows with the B-scan, the row and the A-scan."""
    k, z, x = np.meshgrid(np.arange(n), np.arange(depth), np.arange(width), indexing="ij")
    return (1 + k * depth * width + z * width + x) * (top // (n * depth * width + 1))


def _same(vol, expected: np.ndarray, top: int) -> None:
    np.testing.assert_allclose(vol.bscans, expected / top, atol=0.5 / top)


def test_topcon_fds_volume(tmp_path):
    b = _bscans()
    vol = load_oct(write_fds(tmp_path / "scan.fds", b, x_mm=6.0, y_mm=6.0, z_um=2.6, eye=0))
    assert vol.format == "topcon-fds" and detect_format(tmp_path / "scan.fds") == "topcon-fds"
    _same(vol, b, 65535)
    assert vol.spacing == pytest.approx((6.0 / 30, 0.0026, 6.0 / 3)) and vol.laterality == "OD" and vol.cartesian
    assert "x_dimension_mm" in vol.metadata["spacing_source"]
    assert not any("test" in str(v) for v in vol.metadata.values())  # the capture label is never copied


def test_topcon_fda_jpeg2000_volume_left_eye(tmp_path):
    b = _bscans(top=255).astype(np.uint8)
    vol = load_oct(write_fda(tmp_path / "scan.fda", b, x_mm=7.0, y_mm=3.0, z_um=3.5, eye=1))
    assert vol.format == "topcon-fda" and vol.laterality == "OS"
    _same(vol, b, 255)
    assert vol.spacing == pytest.approx((7.0 / 30, 0.0035, 1.0))


def test_topcon_radial_scan_is_a_stack(tmp_path):
    vol = load_oct(write_fds(tmp_path / "radial.fds", _bscans(n=6), x_mm=6.0, scan_mode=3))
    assert vol.geometry == "radial" and vol.bscan_spacing == pytest.approx((6.0 / 30,) * 6)
    assert vol.spacing_placeholder and "not a 3-D volume" in vol.describe()


def test_zeiss_cirrus_cube_from_its_name(tmp_path):
    b = (np.arange(2 * 1024 * 16).reshape(2, 1024, 16) % 251).astype(np.uint8)
    path = write_cirrus_img(tmp_path, b)
    vol = load_oct(path)
    assert vol.format == "zeiss-img" and vol.bscans.shape == (2, 1024, 16) and vol.laterality == "OD"
    _same(vol, b, 255)
    assert vol.spacing == pytest.approx((6.0 / 16, 2.0 / 1024, 6.0 / 2)) and vol.metadata["spacing_approximate"]
    line = load_oct(write_cirrus_img(tmp_path, b, protocol="HD 5 Line Raster"))
    assert line.spacing_unit == "pixel"  # no cube: no protocol geometry to claim


def test_zeiss_img_errors(tmp_path):
    nameless = tmp_path / "export.img"
    nameless.write_bytes(b"\x00" * 1024)
    with pytest.raises(OCTReadError, match="export.img: a Zeiss .img holds raw bytes only.*keep the name"):
        load_oct(nameless)
    path = write_cirrus_img(tmp_path, np.zeros((2, 1024, 16), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(OCTReadError, match="holds 32758 bytes but its name says 16 A-scans x 2 B-scans"):
        load_oct(path)


def test_bioptigen_volume_with_repeats(tmp_path):
    b = _bscans(n=3, depth=16, width=12)
    path = write_bioptigen(tmp_path / "eye_OS.oct", b, length_mm=3.0, depth_mm=1.6, across_mm=2.0, repeats=2)
    assert detect_format(path) == "bioptigen-oct"
    vol = load_oct(path)
    assert vol.format == "bioptigen-oct" and vol.laterality == "OS"
    _same(vol, b, 65535)  # the first of each position's repeats
    assert vol.spacing == pytest.approx((3.0 / 12, 1.6 / 16, 2.0 / 3)) and "2 B-scans" in vol.metadata["repeats_note"]


def test_bioptigen_radial_scan_is_a_stack(tmp_path):
    vol = load_oct(write_bioptigen(tmp_path / "r.oct", _bscans(n=4, depth=16, width=12), scan_type=3))
    assert vol.geometry == "radial" and vol.bscan_spacing == pytest.approx((3.0 / 11,) * 4)


def test_optovue_with_its_filespec(tmp_path):
    b = _bscans(n=2, depth=10, width=14).astype(np.float32) / 65535
    path = write_optovue(tmp_path / "scan.oct", b, eye="OS")
    assert detect_format(path) == "optovue-oct"
    vol = load_oct(path)
    assert vol.format == "optovue-oct" and vol.spacing_unit == "pixel" and vol.laterality == "OS"
    np.testing.assert_allclose(vol.bscans, b, atol=1e-6)


def test_vendor_errors_name_the_file_and_the_fix(tmp_path, capsys):
    fds = write_fds(tmp_path / "cut.fds", _bscans())
    fds.write_bytes(fds.read_bytes()[:200])
    with pytest.raises(OCTReadError, match=r"cut\.fds: cannot be read as a Topcon \.fds file"):
        load_oct(fds)
    fake = tmp_path / "notes.fda"
    fake.write_text("hello")
    with pytest.raises(OCTReadError, match=r"notes\.fda: is not a Topcon OCT file"):
        load_oct(fake)
    garbage = tmp_path / "x.oct"
    garbage.write_bytes(b"\x01\x02\x03" * 20)
    with pytest.raises(OCTReadError, match=r"x\.oct: cannot be read as a Bioptigen \.oct file \(and no Optovue"):
        load_oct(garbage)
    assert capsys.readouterr().out == ""  # OCT-Converter's prints stay off the console


def test_dida_explain_reads_a_vendor_file(tmp_path, capsys):
    timm = pytest.importorskip("timm")
    from DiDALib import cli
    from DiDALib.models.package import save_model_package
    from DiDALib.models.spec import ModelSpec

    spec = ModelSpec(architecture="timm:test_efficientnet", classes=("a", "b"), input_size=(32, 32))
    package = save_model_package(tmp_path / "pkg", spec, timm.create_model("test_efficientnet", num_classes=2,
                                                                            in_chans=1))
    path = write_fds(tmp_path / "scan.fds", _bscans(n=2))
    code = cli.main([str(a) for a in ("explain", path, "--model", package, "--grids", "2", "--device", "cpu",
                                      "--quiet", "--no-figures", "--out", tmp_path / "r")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "r" / "volume.nrrd").is_file()
