"""OCT loaders: every supported kind written small in tmp_path and read back, and the shipped vendor files (what
the readers refuse is in test_oct_io_errors.py).

Orientation is checked with a bright marker at B-scan 0, row 0 (vitreous side), column 0: it must stay at
bscans[0, 0, 0] and at SimpleITK index (0, 0, 0), and nowhere on the flipped corners.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from oct_samples import (
    DATA,
    REAL_VOL,
    SYNTH_VOL,
    levels,
    write_dicom_series,
    write_opt,
    write_sample,
    write_vol,
)
from PIL import Image

from DiDALib.io.heyex_e2e import _e2e_spacing
from DiDALib.io.registry import (
    OCTReadError,
    detect_format,
    load_oct,
)
from DiDALib.io.volume import OCTVolume

XML_DIR = DATA / "heyex_xml"


# ----------------------------------------------------------------------------------------------- helpers


def _check_orientation(vol: OCTVolume, marker: float = 1.0, tol: float = 1e-6) -> None:
    b = vol.bscans
    assert b.dtype == np.float32 and b.flags.c_contiguous
    assert 0.0 <= b.min() and b.max() <= 1.0
    assert abs(float(b[0, 0, 0]) - marker) <= tol
    # the marker must not have moved to a flipped corner
    assert b[0, 0, -1] < marker - 0.2
    assert b[0, -1, 0] < marker - 0.2
    if vol.n_bscans > 1:
        assert b[-1, 0, 0] < marker - 0.2
    img = vol.to_sitk()
    assert img.GetSize() == (vol.width, vol.depth, vol.n_bscans)
    assert img.GetPixel(0, 0, 0) == pytest.approx(float(b[0, 0, 0]))
    assert img.GetPixel(vol.width - 1, 0, 0) == pytest.approx(float(b[0, 0, -1]))
    assert img.GetSpacing() == pytest.approx(vol.spacing)
    assert img.GetOrigin() == (0.0, 0.0, 0.0)
    assert img.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    json.dumps(vol.metadata)  # metadata must stay plain data (CLI reports, Slicer node attributes)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------- plain images


def test_png_folder_natural_sort(tmp_path):
    arr = levels(3, 12, 16)
    folder = tmp_path / "bscans"
    folder.mkdir()
    for k, name in enumerate(["B1.png", "B2.png", "B10.png"]):  # lexical order would put B10 second
        Image.fromarray(arr[k]).save(folder / name)
    (folder / ".DS_Store").write_bytes(b"\x00junk")  # hidden files are ignored
    vol = load_oct(folder)
    assert vol.format == "image-folder" and detect_format(folder) == "image-folder"
    assert vol.bscans.shape == (3, 12, 16)
    assert vol.metadata["files"] == ["B1.png", "B2.png", "B10.png"]
    np.testing.assert_allclose(vol.bscans[:, 5, 5] * 255, [10, 30, 50], atol=1e-3)
    assert vol.spacing == (1.0, 1.0, 1.0) and vol.spacing_unit == "pixel"
    assert vol.spacing_placeholder  # a stack of images gives no B-scan distance
    assert vol.metadata["intensity"] == "uint8 / 255"
    _check_orientation(vol)


def test_jpeg_folder(tmp_path):
    arr = levels(2, 32, 48)
    arr[0, :8, :8] = 255  # a whole 8x8 JPEG block, so compression keeps the marker bright
    folder = tmp_path / "jpegs"
    folder.mkdir()
    for k in range(2):
        Image.fromarray(arr[k]).save(folder / f"scan_{k}.jpg", quality=95)
    vol = load_oct(folder)
    assert vol.bscans.shape == (2, 32, 48) and vol.format == "image-folder"
    assert vol.bscans[0, 0, 0] > 0.9
    assert vol.bscans[1, 20, 20] == pytest.approx(30 / 255, abs=3 / 255)
    _check_orientation(vol, marker=float(vol.bscans[0, 0, 0]), tol=0)


def test_tiff16_folder_scaled_by_dtype_max(tmp_path):
    arr = levels(2, 10, 14, dtype=np.uint16, top=65535, step=1000)
    folder = tmp_path / "tiff16"
    folder.mkdir()
    for k in range(2):
        Image.fromarray(arr[k]).save(folder / f"b{k + 1}.tif")
    vol = load_oct(folder)
    assert vol.bscans.shape == (2, 10, 14)
    # divided by 65535 (the dtype maximum), not stretched to the data range
    assert vol.bscans[1, 3, 3] == pytest.approx(1010 / 65535, rel=1e-6)
    assert vol.metadata["intensity"] == "uint16 / 65535"
    _check_orientation(vol)


def test_multipage_tiff(tmp_path):
    path = write_sample("multipage-tiff", tmp_path / "stack.tiff", levels(3, 9, 11))
    assert detect_format(path) == "multipage-tiff"
    vol = load_oct(path)
    assert vol.format == "multipage-tiff" and vol.bscans.shape == (3, 9, 11)
    np.testing.assert_allclose(vol.bscans[:, 4, 4] * 255, [10, 30, 50], atol=1e-3)
    _check_orientation(vol)


def test_single_rgb_png_becomes_grey_with_placeholder(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[...] = (20, 20, 20)
    rgb[0, 0] = (255, 255, 255)
    rgb[5, 6] = (0, 255, 0)
    path = tmp_path / "one.png"
    Image.fromarray(rgb).save(path)
    vol = load_oct(path)
    assert vol.format == "image" and vol.bscans.shape == (1, 10, 12)
    expected_green = np.asarray(Image.fromarray(rgb).convert("L"))[5, 6]  # Pillow's luminance
    assert vol.bscans[0, 5, 6] * 255 == pytest.approx(expected_green, abs=0.51)
    assert "grey" in vol.metadata["colour"]
    assert vol.spacing == (1.0, 1.0, 1.0) and vol.spacing_unit == "pixel" and vol.spacing_placeholder
    _check_orientation(vol)
    assert load_oct(path, bscan_distance=0.5).spacing[2] == 0.5


def test_grey_alpha_png_keeps_grey_channel(tmp_path):
    grey = levels(1, 6, 8)[0]
    la = np.stack([grey, np.full_like(grey, 128)], axis=-1)
    path = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(path)
    vol = load_oct(path)
    np.testing.assert_array_equal(vol.bscans[0], grey.astype(np.float32) / 255)
    assert "alpha dropped" in vol.metadata["colour"]
    _check_orientation(vol)


def test_float_tiff_outside_unit_range_is_min_max_scaled(tmp_path):
    arr = np.full((8, 10), -2.0, np.float32)
    arr[4:, 4:] = 1.5
    arr[0, 0] = 6.0
    path = tmp_path / "float.tif"
    Image.fromarray(arr).save(path)
    vol = load_oct(path)
    assert vol.bscans.min() == 0.0 and vol.bscans.max() == 1.0
    assert vol.bscans[0, 5, 5] == pytest.approx(3.5 / 8)
    assert "min-max" in vol.metadata["intensity"]
    _check_orientation(vol)


# ----------------------------------------------------------------------------------------------- SimpleITK volumes


@pytest.mark.parametrize("name", ["v.nrrd", "v.nhdr", "v.nii", "v.nii.gz", "v.mha", "v.mhd"])
def test_sitk_volume_roundtrip(tmp_path, name):
    arr = levels(4, 12, 16).astype(np.float32) / 255
    src = OCTVolume(arr, (0.0118, 0.0039, 0.12), format="test")
    path = tmp_path / name
    sitk.WriteImage(src.to_sitk(), str(path))
    vol = load_oct(path)
    expected = {".nrrd": "nrrd", ".nhdr": "nrrd", ".nii": "nifti", ".gz": "nifti", ".mha": "metaimage"}
    expected[".mhd"] = "metaimage"
    assert vol.format == expected[path.suffix] == detect_format(path)
    np.testing.assert_array_equal(vol.bscans, arr)
    assert vol.spacing == pytest.approx((0.0118, 0.0039, 0.12), rel=1e-6)
    assert vol.spacing_unit == "mm" and not vol.spacing_placeholder
    assert vol.metadata["intensity"].startswith("float32 kept")  # within [0, 1]: not stretched
    _check_orientation(vol)


def test_uint16_nrrd_and_rgb_nrrd(tmp_path):
    arr = levels(2, 6, 8, dtype=np.uint16, top=65535, step=300)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.01, 0.004, 0.2))
    sitk.WriteImage(img, str(tmp_path / "u16.nrrd"))
    vol = load_oct(tmp_path / "u16.nrrd")
    assert vol.bscans[1, 2, 2] == pytest.approx(310 / 65535, rel=1e-6)
    _check_orientation(vol)

    rgb = np.zeros((2, 6, 8, 3), np.uint8)
    rgb[..., :] = (0, 100, 0)
    rgb[0, 0, 0] = (255, 255, 255)
    img = sitk.GetImageFromArray(rgb, isVector=True)
    sitk.WriteImage(img, str(tmp_path / "rgb.nrrd"))
    vol = load_oct(tmp_path / "rgb.nrrd")
    assert vol.bscans.shape == (2, 6, 8)
    assert vol.bscans[1, 3, 3] * 255 == pytest.approx(round(0.587 * 100), abs=0.51)
    _check_orientation(vol)


def test_2d_nrrd_is_one_bscan(tmp_path):
    arr = levels(1, 6, 9)[0]
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.02, 0.005))
    sitk.WriteImage(img, str(tmp_path / "b.nrrd"))
    vol = load_oct(tmp_path / "b.nrrd")
    assert vol.bscans.shape == (1, 6, 9)
    assert vol.spacing == pytest.approx((0.02, 0.005, 0.02)) and vol.spacing_placeholder
    assert load_oct(tmp_path / "b.nrrd", bscan_distance=0.25).spacing[2] == 0.25
    _check_orientation(vol)
    # a 3-D file holding one B-scan: its z spacing is no distance between B-scans
    img = sitk.GetImageFromArray(arr[None])
    img.SetSpacing((0.02, 0.005, 0.3))
    sitk.WriteImage(img, str(tmp_path / "one.nrrd"))
    vol = load_oct(tmp_path / "one.nrrd")
    assert vol.spacing == pytest.approx((0.02, 0.005, 0.02)) and vol.spacing_placeholder
    assert vol.metadata["file_bscan_distance"] == pytest.approx(0.3)


def test_to_sitk_from_sitk_inverse():
    arr = levels(3, 5, 7).astype(np.float32) / 255
    vol = OCTVolume(arr, (0.01, 0.004, 0.06), laterality="OD")
    back = OCTVolume.from_sitk(vol.to_sitk(), source="mem", format="nrrd")
    np.testing.assert_array_equal(back.bscans, arr)
    assert back.spacing == pytest.approx(vol.spacing) and back.source == "mem" and back.format == "nrrd"
    assert (vol.n_bscans, vol.depth, vol.width) == (3, 5, 7)


# ----------------------------------------------------------------------------------------------- DICOM


@pytest.mark.parametrize(
    "thickness, step, expected, source",
    [(0.12, None, 0.12, "SliceThickness"), (None, 0.25, 0.25, "frame positions")],
)
def test_dicom_opt_multiframe(tmp_path, thickness, step, expected, source):
    arr = levels(3, 16, 20, dtype=np.uint16, top=4095, step=200)
    path = tmp_path / "opt.dcm"
    write_opt(path, arr, axial=0.0039, lateral=0.0118, thickness=thickness, positions_step=step, bits=12)
    vol = load_oct(path)
    assert vol.format == "dicom" and vol.bscans.shape == (3, 16, 20)
    assert vol.spacing == pytest.approx((0.0118, 0.0039, expected))  # PixelSpacing is [axial, lateral]
    assert vol.spacing_unit == "mm" and not vol.spacing_placeholder
    assert source in vol.metadata["spacing_source"]
    assert vol.laterality == "OS"
    assert vol.metadata["sop_class"] == "1.2.840.10008.5.1.4.1.1.77.1.5.4"
    assert vol.bscans[1, 5, 5] == pytest.approx(210 / 4095, rel=1e-6)  # 12 bits stored: / 4095
    text = json.dumps(vol.metadata)
    assert "Secret" not in text and "12345" not in text  # no patient name or id
    _check_orientation(vol)


def test_dicom_single_frame_gets_placeholder(tmp_path):
    arr = levels(1, 8, 10, dtype=np.uint16, top=65535, step=0)
    path = tmp_path / "one.dcm"
    write_opt(path, arr, axial=0.004, lateral=0.012, thickness=0.12)
    vol = load_oct(path)
    assert vol.bscans.shape == (1, 8, 10)
    assert vol.spacing == pytest.approx((0.012, 0.004, 0.012)) and vol.spacing_placeholder
    assert vol.metadata["file_bscan_distance"] == pytest.approx(0.12)
    assert load_oct(path, bscan_distance=0.07).spacing[2] == 0.07
    _check_orientation(vol)


def test_dicom_monochrome1_is_inverted(tmp_path):
    arr = 65535 - levels(2, 6, 8, dtype=np.uint16, top=65535, step=1000)  # MONOCHROME1: 0 is white
    path = tmp_path / "m1.dcm"
    write_opt(path, arr, axial=0.004, lateral=0.012, thickness=0.1, photometric="MONOCHROME1")
    vol = load_oct(path)
    assert "inverted" in vol.metadata["intensity"]
    _check_orientation(vol)


def test_dicom_series_folder_sorted_by_position(tmp_path):
    arr = levels(3, 10, 12, dtype=np.uint16, top=65535, step=1000)
    folder = tmp_path / "series"
    write_dicom_series(folder, arr, row_spacing=0.004, col_spacing=0.011, step=0.2)
    assert detect_format(folder) == "dicom"
    vol = load_oct(folder)
    assert vol.format == "dicom" and vol.metadata["dicom_layout"] == "series folder"
    assert vol.bscans.shape == (3, 10, 12)
    np.testing.assert_allclose(vol.bscans[:, 4, 4] * 65535, [10, 1010, 2010], atol=0.01)
    assert vol.spacing == pytest.approx((0.011, 0.004, 0.2))
    _check_orientation(vol)


# ----------------------------------------------------------------------------------------------- Heidelberg


def test_small_vol_written_with_eyepy_structure(tmp_path):
    raw = np.full((3, 20, 30), 1e-3, np.float32)
    raw[0, 0, 0] = 1.0
    path = tmp_path / "small.vol"
    write_vol(path, raw, scale=(0.0115, 0.0039, 0.06), laterality="OS")
    vol = load_oct(path)
    assert vol.format == "heyex-vol" and vol.bscans.shape == (3, 20, 30)
    assert vol.spacing == (0.0115, 0.0039, 0.06) and not vol.spacing_placeholder
    assert vol.laterality == "OS"
    assert "inferior" in vol.metadata["bscan_order"]
    _check_orientation(vol)


def test_shared_real_linescan_vol():
    import eyepy

    before = _sha256(REAL_VOL)
    vol = load_oct(REAL_VOL)
    ev = eyepy.import_heyex_vol(REAL_VOL)
    assert vol.bscans.shape == (1, 496, 768) and vol.format == "heyex-vol"
    assert vol.spacing[0] == ev.scale_x and vol.spacing[1] == ev.scale_y  # exactly the header values
    assert vol.spacing[0] == pytest.approx(0.0118206, abs=1e-7)
    assert vol.spacing[1] == pytest.approx(0.0038717, abs=1e-7)
    assert vol.spacing_placeholder and vol.spacing[2] == vol.spacing[0]  # single B-scan: placeholder = lateral
    assert vol.laterality == "OD" and vol.metadata["scan_pattern"] == 1
    np.testing.assert_array_equal(vol.bscans[0], ev.data[0].astype(np.float32) / np.float32(255))
    assert load_oct(REAL_VOL, bscan_distance=0.1).spacing[2] == 0.1
    assert _sha256(REAL_VOL) == before  # read-only


def test_shared_synthetic_vol_and_xml():
    import eyepy

    ev = eyepy.import_heyex_vol(SYNTH_VOL)
    for path, fmt in [(SYNTH_VOL, "heyex-vol"), (XML_DIR, "heyex-xml"), (XML_DIR / "test_dummy.xml", "heyex-xml")]:
        vol = load_oct(path)
        assert vol.format == fmt == detect_format(path)
        assert vol.bscans.shape == (10, 40, 50)
        assert vol.spacing == pytest.approx((0.011819, 0.003872, 0.031444), abs=1e-6)
        assert vol.spacing == pytest.approx((ev.scale_x, ev.scale_y, ev.scale_z), rel=1e-12)
        assert not vol.spacing_placeholder and vol.spacing_unit == "mm" and vol.laterality == "OD"
        assert 0 <= vol.bscans.min() and vol.bscans.max() <= 1
        text = json.dumps(vol.metadata)
        for secret in ("John", "Doe", "Study-01", "patient", "dob"):  # the XML holds dummy patient fields
            assert secret not in text


def test_eyepy_warnings_kept_off_the_console(caplog):
    caplog.set_level(logging.DEBUG)
    vol = load_oct(SYNTH_VOL)
    assert not [r for r in caplog.records if r.name.startswith("eyepy") and r.levelno >= logging.WARNING]
    assert any("less layers" in w for w in vol.metadata["reader_warnings"])


def test_single_bscan_xml(tmp_path):
    folder = tmp_path / "xml1"
    shutil.copytree(XML_DIR, folder)
    tree = ET.parse(folder / "test_dummy.xml")
    series = tree.getroot().find("./BODY/Patient/Study/Series")
    octs = [im for im in series.findall("Image") if im.find("./ImageType/Type").text == "OCT"]
    for im in octs[1:]:
        series.remove(im)
    tree.write(folder / "test_dummy.xml")
    vol = load_oct(folder)
    assert vol.bscans.shape == (1, 40, 50)
    assert vol.spacing_placeholder and vol.spacing == pytest.approx((0.011819, 0.003872, 0.011819))


def test_xml_missing_bscan_image(tmp_path):
    folder = tmp_path / "xml"
    shutil.copytree(XML_DIR, folder)
    (folder / "B3.tif").unlink()
    with pytest.raises(OCTReadError, match=r"test_dummy\.xml.*B3\.tif"):
        load_oct(folder)


def test_e2e_spacing_derivation():
    # Headers as eyepy's E2E reader gives them: positions in degrees, scale_y in mm.
    metas = [
        {"start_x": -10.0, "end_x": 10.0, "imgSizeWidth": 512, "scale_y": 0.0038716, "center_y": 5.0 - 0.5 * k}
        for k in range(21)
    ]
    lateral, axial, distance, how = _e2e_spacing(metas, 512)
    assert lateral == pytest.approx(20 * 0.2896 / 512)
    assert axial == 0.0038716
    assert distance == pytest.approx(10.0 * 0.2896 / 20)
    assert "approximate" in how
    lateral, axial, distance, _ = _e2e_spacing(metas[:1], 512)
    assert distance is None and lateral is not None
    assert _e2e_spacing([{"scale_y": 0.0039}], 512)[0] is None  # no angles: no lateral scale


def test_e2e_reader_converts_eyepy_volume(tmp_path, monkeypatch):
    # No E2E sample may be shipped; this checks our conversion of what eyepy's E2E reader returns.
    import eyepy

    import DiDALib.io.heyex_e2e as heyex_e2e

    raw = np.full((3, 20, 30), 1e-3, np.float32)
    raw[0, 0, 0] = 1.0
    bmeta = [
        eyepy.EyeBscanMeta(
            start_pos=(-10.0, 1.0 - k), end_pos=(10.0, 1.0 - k), pos_unit="°", start_x=-10.0, end_x=10.0,
            imgSizeWidth=30, scale_y=0.0039, center_y=1.0 - k, scan_pattern=3,
        )
        for k in range(3)
    ]  # fmt: skip
    meta = eyepy.EyeVolumeMeta(
        scale_x=1, scale_y=1, scale_z=1, scale_unit="px", laterality="OS", bscan_meta=bmeta, intensity_transform="e2e"
    )
    ev = eyepy.EyeVolume(data=raw, meta=meta)
    monkeypatch.setattr(heyex_e2e, "_e2e_eyevolume", lambda p: (ev, 2, 0, []))
    path = tmp_path / "x.e2e"
    path.write_bytes(b"CMDb" + b"\x00" * 60)
    vol = load_oct(path)
    assert vol.format == "heyex-e2e" and vol.bscans.shape == (3, 20, 30)
    assert vol.spacing == pytest.approx((20 * 0.2896 / 30, 0.0039, 2 * 0.2896 / 2))
    assert vol.spacing_unit == "mm" and vol.metadata["spacing_approximate"] and vol.laterality == "OS"
    _check_orientation(vol)


# ----------------------------------------------------------------------------------------------- errors
