"""How much memory reading an OCT file (or a result's arrays) will take, found from its header before anything is
decoded, so that a small file that unpacks to gigabytes (a gzip NRRD, a multi-page TIFF, a lying DICOM header, an
npz of zeros) is refused with the figure instead of filling the memory.

Each estimate is the decoded pixels times the bytes a reader holds per pixel at its peak: the decoded array in its
own type, a copy (stacking the frames, SimpleITK's image and its numpy array) and the float32 volume
(``peak_bytes``). Headers are read without decoding pixels: SimpleITK's ``ReadImageInformation`` (NRRD, NIfTI,
MetaImage), Pillow's lazy open and page walk (PNG, JPEG, TIFF pages), pydicom up to the pixels, the VOL file
header, the npz members' ``.npy`` headers. Formats whose pixels are stored uncompressed and not described by a
header DiDA reads (E2E, the vendor formats of OCT-Converter) are bounded by their file size times what their
reader holds per stored byte.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

from ..footprint import Footprint, size_text

#: Bytes a reader holds at its peak per stored byte of an uncompressed file whose header DiDA does not read: raw
#: uint16 samples become float64 in the vendor reader's transform, then uint8 and float32 (E2E, OCT-Converter).
RAW_FACTOR = 8
#: The most files of a folder (images, DICOM slices) whose headers are read.
MAX_FILES = 100_000
FIX = "read a smaller file, or split it into parts"


def peak_bytes(pixels: int, itemsize: int) -> int:
    """A reader's peak for ``pixels`` decoded samples of ``itemsize`` bytes: the decoded array, a copy of it (frames
    stacked, a SimpleITK image and its array) and the float32 volume."""
    return int(pixels) * (2 * int(itemsize) + 4)


class Estimate:
    """The decoded size of a file: its pixels, their bytes at the reader's peak, and the header's words for it."""

    def __init__(self, peak: int, described: str):
        self.peak, self.described = int(peak), described


# -- per format ------------------------------------------------------------------------------------------------------

def _itk(path: Path, fmt: str) -> Estimate:
    import SimpleITK as sitk

    from .itk import SITK_IO, native_stderr_captured

    reader = sitk.ImageFileReader()
    reader.SetImageIO(SITK_IO[fmt][0])
    reader.SetFileName(str(path))
    try:
        with native_stderr_captured():
            reader.ReadImageInformation()
    except RuntimeError:
        raise _Unreadable from None  # the reader itself says what is wrong with the file
    size = [int(v) for v in reader.GetSize()]
    components = int(reader.GetNumberOfComponents())
    itemsize = _sitk_itemsize(reader.GetPixelID())
    pixels = math.prod(size) * components
    return Estimate(peak_bytes(pixels, itemsize), f"{' x '.join(map(str, size))} voxels of {itemsize} byte(s)"
                    + (f" x {components} components" if components > 1 else ""))


def _sitk_itemsize(pixel_id: int) -> int:
    import SimpleITK as sitk

    sizes = {sitk.sitkUInt8: 1, sitk.sitkInt8: 1, sitk.sitkUInt16: 2, sitk.sitkInt16: 2, sitk.sitkUInt32: 4,
             sitk.sitkInt32: 4, sitk.sitkUInt64: 8, sitk.sitkInt64: 8, sitk.sitkFloat32: 4, sitk.sitkFloat64: 8,
             sitk.sitkVectorUInt8: 1, sitk.sitkVectorInt8: 1, sitk.sitkVectorUInt16: 2, sitk.sitkVectorInt16: 2,
             sitk.sitkVectorUInt32: 4, sitk.sitkVectorInt32: 4, sitk.sitkVectorFloat32: 4,
             sitk.sitkVectorFloat64: 8}
    return sizes.get(pixel_id, 16)  # complex and label types: the largest


_PIL_BITS = {"1": 1, "L": 8, "P": 8, "LA": 16, "La": 16, "RGB": 24, "RGBA": 32, "RGBX": 32, "RGBa": 32, "CMYK": 32,
             "YCbCr": 24, "LAB": 24, "HSV": 24, "I": 32, "F": 32, "I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16}


def _image(path: Path) -> Estimate:
    """Every page of an image file (a TIFF's pages walked through their headers, none decoded)."""
    from .images import open_pil

    total, pages, first = 0, 0, None
    with open_pil(path) as im:
        n = int(getattr(im, "n_frames", 1))
        for i in range(n):
            if i:
                im.seek(i)
            width, height = im.size
            bits = _PIL_BITS.get(im.mode, 32)
            # A colour page is reduced to grey through float32 channels: count its decoded bytes and those.
            itemsize = max(1, math.ceil(bits / 8))
            total += peak_bytes(width * height, itemsize) + (width * height * 4 * 3 if bits >= 24 else 0)
            pages += 1
            first = first or f"{width} x {height} pixels ({im.mode})"
    return Estimate(total, f"{pages} page(s) of {first}" if pages > 1 else str(first))


def _image_folder(folder: Path) -> Estimate:
    from .common import natural_key
    from .images import IMAGE_EXTENSIONS

    files = sorted((f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
                    and f.suffix.lower() in IMAGE_EXTENSIONS), key=lambda f: natural_key(f.name))[:MAX_FILES]
    total = sum(_image(f).peak for f in files)
    return Estimate(total, f"{len(files)} image(s)")


def _dicom(path: Path) -> Estimate:
    import pydicom

    if path.is_dir():
        files = [f for f in sorted(path.iterdir()) if f.is_file()][:MAX_FILES]
        total = 0
        for f in files:
            try:
                total += _dicom_file(pydicom, f)[0]
            except _Unreadable:
                continue  # not a DICOM slice: the series reader skips it too
        return Estimate(total, f"{len(files)} DICOM file(s)")
    peak, described = _dicom_file(pydicom, path)
    return Estimate(peak, described)


def _dicom_file(pydicom, path: Path) -> tuple[int, str]:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
    except Exception:  # noqa: BLE001 -- any header pydicom cannot read: the reader says why
        raise _Unreadable from None
    pixels = rows * cols * max(frames, 1) * max(samples, 1)
    return peak_bytes(pixels, max(1, math.ceil(bits / 8))), f"{frames} frame(s) of {cols} x {rows} pixels, {bits} bits"


def _vol(path: Path) -> Estimate:
    """The VOL file header: A-scans, B-scans, samples per A-scan (float32 each) and the SLO's pixels. The samples
    are stored uncompressed, so a header that promises more than the file holds is a damaged file, which the
    reader refuses itself: the estimate is bounded by what the file can hold."""
    with open(path, "rb") as f:
        head = f.read(56)
    if len(head) < 56 or not head.startswith((b"HSF-OCT", b"ep-v")):
        raise _Unreadable  # not a VOL file: the reader says so
    size_x, n_bscans, size_y = struct.unpack_from("<3I", head, 12)
    slo_x, slo_y = struct.unpack_from("<2I", head, 48)
    stored = os.stat(path).st_size
    pixels = min(size_x * n_bscans * size_y, stored // 4)
    # eyepy holds the raw float32 samples and their float64 transform, then uint8 and DiDA's float32.
    return Estimate(pixels * 17 + min(slo_x * slo_y, stored) * 6,
                    f"{n_bscans} B-scans of {size_x} x {size_y} samples, a {slo_x} x {slo_y} SLO")


def _raw(path: Path) -> Estimate:
    size = os.stat(path).st_size
    return Estimate(size * RAW_FACTOR, f"{size_text(size)} of stored samples")


def _heyex_xml(path: Path) -> Estimate:
    from .images import IMAGE_EXTENSIONS

    images = [f for f in path.parent.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS][:MAX_FILES]
    return Estimate(sum(_image(f).peak for f in images), f"{len(images)} image(s) beside the XML")


class _Unreadable(Exception):
    """A header this module cannot read: the format's reader then says what is wrong."""


ESTIMATORS: dict[str, Callable[[Path], Estimate]] = {
    "nrrd": lambda p: _itk(p, "nrrd"),
    "nifti": lambda p: _itk(p, "nifti"),
    "metaimage": lambda p: _itk(p, "metaimage"),
    "image": _image,
    "multipage-tiff": _image,
    "image-folder": _image_folder,
    "dicom": _dicom,
    "heyex-vol": _vol,
    "heyex-e2e": _raw,
    "heyex-xml": _heyex_xml,
    "topcon-fda": _raw,
    "topcon-fds": _raw,
    "zeiss-img": _raw,
    "bioptigen-oct": _raw,
    "optovue-oct": _raw,
}


def estimate(fmt: str, path: Path) -> Estimate | None:
    """The memory reading ``path`` as ``fmt`` takes at its peak, from its header; None when the header cannot be
    read (the reader then refuses the file with its reason)."""
    try:
        return ESTIMATORS[fmt](path)
    except (_Unreadable, OSError, ValueError, KeyError, struct.error, EOFError):
        return None
    except Exception as exc:  # noqa: BLE001 -- Pillow and pydicom raise their own kinds for damaged headers
        from .volume import OCTReadError

        if isinstance(exc, OCTReadError):
            raise
        return None


def check_decoded(fmt: str, path: Path, limit: int | None) -> None:
    """Refuse (``NotEnoughMemory``, naming the figure, the header's sizes and the fix) to read ``path`` when its
    decoded size would exceed ``limit`` bytes (None: the memory available now), before anything is decoded."""
    found = estimate(fmt, path)
    if found is None:
        return
    part = f"the decoded pixels: {found.described}"
    Footprint({part: found.peak}, {part: FIX}, found.peak).check(limit, f"reading {path}")


# -- npz arrays ------------------------------------------------------------------------------------------------------

def npz_headers(path: Path, max_members: int = 10_000) -> dict[str, tuple[tuple[int, ...], object]]:
    """The shape and dtype of every array of an ``.npz`` file, read from each member's ``.npy`` header alone (a
    few bytes are decompressed per member); ``ValueError`` for what is no npz of plain arrays."""
    import numpy as np
    from numpy.lib import format as npy

    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
            if len(members) > max_members:
                raise ValueError(f"it holds {len(members)} members")
            for info in members:
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as f:
                    version = npy.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = npy.read_array_header_1_0(f, max_header_size=10_000)
                    elif version in ((2, 0), (3, 0)):
                        shape, _, dtype = npy.read_array_header_2_0(f, max_header_size=10_000)
                    else:
                        raise ValueError(f"{info.filename} has .npy version {version}")
                if dtype.hasobject:
                    raise ValueError(f"{info.filename} holds Python objects, not plain numbers")
                out[info.filename.removesuffix(".npy")] = (tuple(int(v) for v in shape), np.dtype(dtype))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not a zip archive ({exc})") from None
    return out


def npz_bytes(headers: dict[str, tuple[tuple[int, ...], object]]) -> int:
    """The decoded bytes of the arrays ``npz_headers`` describes."""
    return sum(math.prod(shape) * dtype.itemsize for shape, dtype in headers.values())
