"""What the OCT readers refuse, and how they say it: missing and unknown files, renamed and truncated files,
odd image folders, bad volumes and geometry; the format tables."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from oct_samples import REAL_VOL, SYNTH_VOL, levels
from PIL import Image

from DiDALib.io.registry import (
    SUPPORTED_EXTENSIONS,
    SUPPORTED_FORMATS,
    OCTReadError,
    describe_formats,
    file_dialog_filter,
    load_oct,
)
from DiDALib.io.volume import OCTVolume, to_unit_range

CONTRACT_FORMATS = {
    "heyex-vol", "heyex-xml", "heyex-e2e", "image-folder", "multipage-tiff",
    "image", "nrrd", "nifti", "metaimage", "dicom",
    "topcon-fda", "topcon-fds", "zeiss-img", "bioptigen-oct", "optovue-oct",
}  # fmt: skip


# ----------------------------------------------------------------------------------------------- helpers


# ----------------------------------------------------------------------------------------------- plain images


def test_nonexistent_path(tmp_path):
    with pytest.raises(OCTReadError, match=r"nope\.vol: no such file"):
        load_oct(tmp_path / "nope.vol")


def test_unknown_extension_lists_supported(tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_text("hello")
    with pytest.raises(OCTReadError, match=r"scan\.xyz: unknown file type.*\.nrrd.*\.vol"):
        load_oct(path)


@pytest.mark.parametrize(
    "name, words",
    [
        ("fake.vol", "not a Heidelberg .vol"),
        ("fake.e2e", "not a Heidelberg .e2e"),
        ("fake.png", "not a readable image"),
        ("fake.tif", "not a readable image"),
        ("fake.jpg", "not a readable image"),
        ("fake.nrrd", "not a readable NRRD"),
        ("fake.nii.gz", "not a readable NIfTI"),
        ("fake.mha", "not a readable MetaImage"),
        ("fake.dcm", "not a DICOM file"),
        ("fake.xml", "not a Heyex XML export"),
    ],
)
def test_text_renamed(tmp_path, name, words):
    path = tmp_path / name
    path.write_text("this is just text, not an image\n" * 20)
    with pytest.raises(OCTReadError) as err:
        load_oct(path)
    assert name in str(err.value) and words in str(err.value)


def test_png_renamed_nrrd_is_refused(tmp_path):
    path = tmp_path / "really_png.nrrd"
    Image.fromarray(levels(1, 4, 4)[0]).save(path, format="PNG")
    with pytest.raises(OCTReadError, match="not a readable NRRD"):
        load_oct(path)


def test_truncated_vol(tmp_path):
    path = tmp_path / "cut.vol"
    blob = SYNTH_VOL.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(OCTReadError, match=r"cut\.vol: cannot be parsed.*truncated"):
        load_oct(path)


def test_empty_folder_and_folder_without_images(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OCTReadError, match=r"empty: the folder holds no files"):
        load_oct(empty)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    (other / "sub").mkdir()
    with pytest.raises(OCTReadError, match=r"other: no B-scan images.*notes\.txt"):
        load_oct(other)


def test_images_of_different_sizes_name_the_odd_file(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(folder / "b1.png")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(folder / "b2.png")
    Image.fromarray(np.zeros((11, 12), np.uint8)).save(folder / "b3.png")
    with pytest.raises(OCTReadError, match=r"b3\.png: is 12 x 11 px but b1\.png .* 12 x 10 px"):
        load_oct(folder)


def test_images_of_different_bit_depths(tmp_path):
    folder = tmp_path / "depths"
    folder.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "b1.png")
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(folder / "b2.png")
    with pytest.raises(OCTReadError, match=r"b2\.png: has uint16 pixels but b1\.png"):
        load_oct(folder)


def test_4d_and_vector_volumes_refused(tmp_path):
    img4 = sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.float32), isVector=False)
    assert img4.GetDimension() == 4
    sitk.WriteImage(img4, str(tmp_path / "t.nrrd"))
    with pytest.raises(OCTReadError, match=r"t\.nrrd: a 4-D image"):
        load_oct(tmp_path / "t.nrrd")
    vec = sitk.GetImageFromArray(np.zeros((3, 4, 5, 5), np.float32), isVector=True)
    assert vec.GetNumberOfComponentsPerPixel() == 5
    sitk.WriteImage(vec, str(tmp_path / "v.nrrd"))
    with pytest.raises(OCTReadError, match=r"v\.nrrd: pixels with 5 components"):
        load_oct(tmp_path / "v.nrrd")


def test_nan_pixels_are_an_error(tmp_path):
    arr = np.zeros((2, 4, 5), np.float32)
    arr[1, 2, 3] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "nan.nrrd"))
    with pytest.raises(OCTReadError, match=r"nan\.nrrd: 1 NaN"):
        load_oct(tmp_path / "nan.nrrd")
    tif = tmp_path / "nan.tif"
    Image.fromarray(arr[1]).save(tif)
    with pytest.raises(OCTReadError, match=r"nan\.tif: 1 NaN"):
        load_oct(tif)


def test_bad_bscan_distance(tmp_path):
    with pytest.raises(ValueError, match="bscan_distance"):
        load_oct(REAL_VOL, bscan_distance=0)
    with pytest.raises(ValueError, match="bscan_distance"):
        load_oct(REAL_VOL, bscan_distance=float("nan"))


# ----------------------------------------------------------------------------------------------- the type itself


def test_octvolume_validation():
    ok = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(ValueError, match="shape"):
        OCTVolume(np.zeros((2, 3), np.float32), (1, 1, 1))
    with pytest.raises(ValueError, match="outside"):
        OCTVolume(ok + 2, (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        OCTVolume(ok, (1, 0, 1))
    with pytest.raises(ValueError, match="spacing_unit"):
        OCTVolume(ok, (1, 1, 1), spacing_unit="inch")
    assert OCTVolume(ok.astype(np.float64), (1, 1, 1)).bscans.dtype == np.float32


def test_to_unit_range_rules():
    out, how = to_unit_range(np.array([[0, 255]], np.uint8), "x")
    assert out.tolist() == [[0.0, 1.0]] and how == "uint8 / 255"
    out, _ = to_unit_range(np.array([[0, 100]], np.uint8), "x")  # the dtype maximum, not the data maximum
    assert out[0, 1] == pytest.approx(100 / 255)
    out, how = to_unit_range(np.array([[0.25, 0.5]], np.float64), "x")
    assert out.tolist() == [[0.25, 0.5]] and "kept" in how
    out, how = to_unit_range(np.array([[-5, 5]], np.int16), "x")
    assert out.tolist() == [[0.0, 1.0]] and "min-max" in how
    out, how = to_unit_range(np.array([[0, 4095]], np.uint16), "x", bits_stored=12)
    assert out.tolist() == [[0.0, 1.0]] and "12 bits" in how


def test_format_tables():
    assert set(SUPPORTED_FORMATS) == CONTRACT_FORMATS
    wanted = {".vol", ".e2e", ".xml", ".png", ".jpg", ".tif", ".nrrd", ".nii.gz", ".mha", ".dcm"}
    assert wanted <= set(SUPPORTED_EXTENSIONS)
    qt = file_dialog_filter()
    assert "*.vol" in qt and "*.nii.gz" in qt and qt.endswith("All files (*)")
    assert "heyex-e2e" in describe_formats()
