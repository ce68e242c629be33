"""OCT readers: ``load_oct(path)`` reads any supported file or folder into an :class:`~DiDALib.io.volume.OCTVolume`.

Formats (``SUPPORTED_FORMATS``) and where their spacing comes from:

- ``heyex-vol`` (``.vol``, eyepy): the VOL header's ``scale_x``, ``scale_y`` and ``distance`` (mm).
- ``heyex-xml`` (``.xml`` or its folder, eyepy): ``ScaleX``/``ScaleY``; the B-scan distance from the B-scan
  start/end positions (the XML has no distance field).
- ``heyex-e2e`` (``.e2e``, eyepy, first readable series): E2E stores no lateral scale; it is derived as eyepy and
  Heyex do, from the scan angle and a medium eye length (0.2896 mm per degree); axial from the B-scan header;
  the distance from the span of the B-scan centres. Approximate, and said so in ``metadata``.
- ``dicom``: a single (multi-frame) file, e.g. Ophthalmic Tomography: ``PixelSpacing`` = [axial, lateral], the
  distance from ``SpacingBetweenSlices``, the frame positions, or ``SliceThickness``; a folder of slices through
  SimpleITK's series reader (its spacing).
- ``nrrd``, ``nifti``, ``metaimage``: the header spacing, read by SimpleITK (x = A-scans, y = depth, z = B-scans).
- ``image``, ``multipage-tiff``, ``image-folder`` (PNG, JPEG, TIFF): no physical spacing; (1, 1, 1) pixels.
- ``topcon-fda``, ``topcon-fds``, ``zeiss-img``, ``bioptigen-oct``, ``optovue-oct``: through OCT-Converter
  (``octconverter.py`` says where each one's spacing comes from).

Circle and radial scans (Heidelberg, Topcon, Bioptigen) are read as stacks of B-scans (``OCTVolume.geometry``).

Every failure raises :class:`OCTReadError` naming the file, what was found and what was expected. The input
files are only ever opened for reading.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

from .common import natural_key
from .dicom import DICOM_EXTENSIONS, is_dicom, read_dicom
from .heyex import looks_like_heyex_xml
from .heyex_e2e import read_heyex_e2e
from .heyex_vol import read_heyex_vol
from .heyex_xml import read_heyex_xml
from .images import IMAGE_EXTENSIONS, open_pil, read_image, read_image_folder
from .itk import itk_reader
from .limits import check_decoded
from .octconverter import is_optovue, read_topcon, read_vendor_oct, read_zeiss_img
from .volume import OCTReadError, OCTVolume, check_bscan_distance

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "FormatInfo",
    "OCTReadError",
    "OCTVolume",
    "describe_formats",
    "detect_format",
    "file_dialog_filter",
    "load_oct",
]


class FormatInfo(NamedTuple):
    """One readable format: a description, its file extensions, and whether a folder can hold it."""

    description: str
    extensions: tuple[str, ...]
    folder: bool = False


SUPPORTED_FORMATS: dict[str, FormatInfo] = {
    "heyex-vol": FormatInfo("Heidelberg Heyex VOL", (".vol",)),
    "heyex-xml": FormatInfo("Heidelberg Heyex XML export: the .xml file or its folder", (".xml",), True),
    "heyex-e2e": FormatInfo("Heidelberg Heyex E2E: the first readable series", (".e2e",)),
    "image-folder": FormatInfo("Folder of B-scan images, one per file, in natural sort order", IMAGE_EXTENSIONS, True),
    "multipage-tiff": FormatInfo("Multi-page TIFF, one page per B-scan", (".tif", ".tiff")),
    "image": FormatInfo("Single B-scan image: PNG, JPEG, TIFF", IMAGE_EXTENSIONS),
    "nrrd": FormatInfo("NRRD volume: x = A-scans, y = depth, z = B-scans", (".nrrd", ".nhdr")),
    "nifti": FormatInfo("NIfTI volume: x = A-scans, y = depth, z = B-scans", (".nii", ".nii.gz")),
    "metaimage": FormatInfo("MetaImage volume: x = A-scans, y = depth, z = B-scans", (".mha", ".mhd")),
    "dicom": FormatInfo(
        "DICOM: a multi-frame file such as Ophthalmic Tomography, or a folder of slices", DICOM_EXTENSIONS, True
    ),
    "topcon-fda": FormatInfo("Topcon FDA (3D OCT-1000/2000, Maestro), through OCT-Converter", (".fda",)),
    "topcon-fds": FormatInfo("Topcon FDS (DRI OCT Triton), through OCT-Converter", (".fds",)),
    "zeiss-img": FormatInfo("Zeiss Cirrus raw .img export (named as Cirrus names it), through OCT-Converter",
                            (".img",)),
    "bioptigen-oct": FormatInfo("Bioptigen .oct, through OCT-Converter", (".oct",)),
    "optovue-oct": FormatInfo("Optovue .oct with its .txt filespec beside it, through OCT-Converter", (".oct",)),
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(
    sorted({ext for info in SUPPORTED_FORMATS.values() for ext in info.extensions})
)

# Extension -> reader; ".tif"/".tiff" name "image" here and become "multipage-tiff" by their page count.
_EXTENSION_FORMAT = {
    ext: name
    for name, info in SUPPORTED_FORMATS.items()
    if name not in ("image-folder", "multipage-tiff")
    for ext in info.extensions
}


def describe_formats() -> str:
    """The supported formats, one per line, for CLI help."""
    return "\n".join(
        f"  {name:15s} {' '.join(info.extensions):28s} {info.description}" for name, info in SUPPORTED_FORMATS.items()
    )


def file_dialog_filter() -> str:
    """A Qt file dialog filter: all OCT files first, then one entry per file format, then all files.

    The image folder is left out (a file dialog picks files); folders are opened with a directory dialog.
    """
    patterns = " ".join(f"*{ext}" for ext in SUPPORTED_EXTENSIONS)
    entries = [f"OCT B-scans ({patterns})"]
    for name, info in SUPPORTED_FORMATS.items():
        if name != "image-folder":
            entries.append(f"{info.description} ({' '.join('*' + e for e in info.extensions)})")
    entries.append("All files (*)")
    return ";;".join(entries)


def load_oct(path: str | os.PathLike, *, bscan_distance: float | None = None,
             max_bytes: int | None = None) -> OCTVolume:
    """Read an OCT file or folder (any of ``SUPPORTED_FORMATS``) as display intensities in [0, 1].

    B-scan distance placeholder: where the file gives no usable distance (a single B-scan, a distance of 0, an
    image stack), the third spacing is ``bscan_distance`` if the caller gives one (in the volume's spacing
    unit: mm, or pixels for plain images), else the lateral spacing, and ``spacing_placeholder`` is True. A
    distance the file does give always wins over ``bscan_distance``.

    Reading needs the memory the file's header promises (``limits``): a file that would take more than
    ``max_bytes`` (default: the memory available now) is refused with ``NotEnoughMemory`` before any pixel is
    decoded.

    Raises :class:`OCTReadError` for anything that cannot be read, naming the file, what was found and what
    was expected, and ValueError for a ``bscan_distance`` that is not a positive number.

    Returns an ``OCTVolume``: ``bscans`` (n_bscans, depth, width) float32 in [0, 1], its spacing in mm, and what
    the file says of its geometry. The formats: docs/formats.md, or ``dida explain --help``.

    Example
    -------
    >>> volume = load_oct("Testing/Data/oct/spectralis_linescan_real.vol")
    >>> volume.bscans.shape        # (n_bscans, depth, width)
    """
    if bscan_distance is not None:
        bscan_distance = check_bscan_distance(bscan_distance)
    p = Path(os.fspath(path))
    try:
        fmt, target = _locate(p)
        check_decoded(fmt, target, max_bytes)
        return READERS[fmt](target, bscan_distance, source=str(p))
    except OSError as e:  # permissions, disk errors, files vanishing mid-read
        raise OCTReadError(f"{p}: cannot be read ({e.__class__.__name__}: {e})") from e


def _locate(p: Path) -> tuple[str, Path]:
    """The reader's format name for an existing file or folder, and the path that reader opens."""
    if not p.exists():
        raise OCTReadError(f"{p}: no such file or folder: give the path of an OCT file or a folder of B-scans")
    if p.is_dir():
        return _folder_format(p)
    kind = _special_kind(p)
    if kind:  # opening a named pipe blocks until something writes to it; devices and sockets are no OCT files
        raise OCTReadError(f"{p}: is {kind}, not a file: save the OCT data to a file and give its path")
    return _file_format(p), p


def _special_kind(p: Path) -> str | None:
    mode = p.stat().st_mode
    for test, kind in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return None


def detect_format(path: str | os.PathLike) -> str:
    """The format name ``load_oct`` would use for ``path`` (reads at most a header), or OCTReadError."""
    p = Path(os.fspath(path))
    fmt, _ = _locate(p)
    if fmt == "image" and _suffix(p) in (".tif", ".tiff"):
        with open_pil(p) as im:
            return "multipage-tiff" if getattr(im, "n_frames", 1) > 1 else "image"
    if fmt in ("bioptigen-oct", "optovue-oct"):
        return "optovue-oct" if is_optovue(p) else "bioptigen-oct"
    return fmt


def _suffix(p: Path) -> str:
    name = p.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else p.suffix.lower()


def _file_format(p: Path) -> str:
    ext = _suffix(p)
    if ext in _EXTENSION_FORMAT:
        return _EXTENSION_FORMAT[ext]
    if is_dicom(p):  # DICOM files often have no extension at all
        return "dicom"
    shown = f"'{ext}'" if ext else "no extension"
    raise OCTReadError(
        f"{p}: unknown file type ({shown}): expected one of {', '.join(SUPPORTED_EXTENSIONS)}, "
        "a DICOM file, or a folder of B-scan images / DICOM slices / a Heyex XML export"
    )


def _folder_format(folder: Path) -> tuple[str, Path]:
    entries = sorted((e for e in folder.iterdir() if not e.name.startswith(".")), key=lambda e: natural_key(e.name))
    files = [e for e in entries if e.is_file()]
    if not files:
        raise OCTReadError(
            f"{folder}: the folder holds no files: expected B-scan images ({', '.join(IMAGE_EXTENSIONS)}), "
            "DICOM slices or a Heyex XML export"
        )
    xmls = [f for f in files if f.suffix.lower() == ".xml" and looks_like_heyex_xml(f)]
    if len(xmls) > 1:
        raise OCTReadError(
            f"{folder}: holds {len(xmls)} Heyex XML exports ({', '.join(f.name for f in xmls)}): "
            "pass the .xml file you mean"
        )
    if xmls:
        return "heyex-xml", xmls[0]
    images = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
    volumes = [f for f in files if _EXTENSION_FORMAT.get(_suffix(f)) not in (None, "image", "dicom", "heyex-xml")]
    if volumes and images:
        raise OCTReadError(
            f"{folder}: holds an OCT file ({volumes[0].name}) and B-scan images ({images[0].name}, ...): pass "
            f"the file you mean ({folder / volumes[0].name}), or a folder that holds only the B-scan images"
        )
    dicoms = [
        f
        for f in files
        if f.name.upper() != "DICOMDIR"
        and f.suffix.lower() not in IMAGE_EXTENSIONS
        and (f.suffix.lower() in DICOM_EXTENSIONS or is_dicom(f))
    ]
    if images and dicoms:
        raise OCTReadError(
            f"{folder}: holds both images ({images[0].name}, ...) and DICOM files ({dicoms[0].name}, ...): "
            "put the B-scans of one volume in a folder of their own"
        )
    if dicoms:
        return ("dicom", dicoms[0]) if len(dicoms) == 1 else ("dicom", folder)
    if images:
        return "image-folder", folder
    found = ", ".join(f.name for f in files[:5]) + (", ..." if len(files) > 5 else "")
    raise OCTReadError(
        f"{folder}: no B-scan images ({', '.join(IMAGE_EXTENSIONS)}), DICOM files or Heyex XML in the folder "
        f"(found: {found}): pass a .vol / .e2e / volume file itself, or a folder of B-scans"
    )


READERS = {
    "heyex-vol": read_heyex_vol,
    "heyex-xml": read_heyex_xml,
    "heyex-e2e": read_heyex_e2e,
    "image": read_image,
    "multipage-tiff": read_image,
    "image-folder": read_image_folder,
    "nrrd": itk_reader("nrrd", SUPPORTED_FORMATS["nrrd"].extensions),
    "nifti": itk_reader("nifti", SUPPORTED_FORMATS["nifti"].extensions),
    "metaimage": itk_reader("metaimage", SUPPORTED_FORMATS["metaimage"].extensions),
    "dicom": read_dicom,
    "topcon-fda": read_topcon,
    "topcon-fds": read_topcon,
    "zeiss-img": read_zeiss_img,
    "bioptigen-oct": read_vendor_oct,  # .oct is Bioptigen's and Optovue's: the reader tells them apart
    "optovue-oct": read_vendor_oct,
}
