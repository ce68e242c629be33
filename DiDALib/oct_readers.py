"""OCT readers: ``load_oct(path)`` reads any supported file or folder into an :class:`~DiDALib.oct_volume.OCTVolume`.

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

Every failure raises :class:`OCTReadError` naming the file, what was found and what was expected. The input
files are only ever opened for reading.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .oct_volume import (
    OCTReadError,
    OCTVolume,
    check_bscan_distance,
    grey_rule,
    placeholder_distance,
    to_grey,
    to_unit_range,
)

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


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
DICOM_EXTENSIONS = (".dcm", ".dicom")

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
_SITK_IO = {
    "nrrd": ("NrrdImageIO", "NRRD"),
    "nifti": ("NiftiImageIO", "NIfTI"),
    "metaimage": ("MetaImageIO", "MetaImage"),
}

HEIDELBERG_BSCAN_ORDER = (
    "as in the file: B-scan 0 is the most inferior (bottom of the SLO/localizer), the index increases superiorly"
)
# Heyex's "medium eye length" conversion from scan angle to retina distance (eyepy MEDIUM_EYE_LENGTH_UM_PER_DEG).
MM_PER_DEGREE = 0.2896
VOL_SCAN_PATTERNS = {0: "unknown", 1: "line", 2: "circle", 3: "volume (ART)", 4: "fast volume", 5: "radial"}
_NON_CARTESIAN = {2: "circle", 5: "radial (star)"}
DICOM_OPT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.5.4"


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


def load_oct(path: str | os.PathLike, *, bscan_distance: float | None = None) -> OCTVolume:
    """Read an OCT file or folder (any of ``SUPPORTED_FORMATS``) as display intensities in [0, 1].

    B-scan distance placeholder: where the file gives no usable distance (a single B-scan, a distance of 0, an
    image stack), the third spacing is ``bscan_distance`` if the caller gives one (in the volume's spacing
    unit: mm, or pixels for plain images), else the lateral spacing, and ``spacing_placeholder`` is True. A
    distance the file does give always wins over ``bscan_distance``.

    Raises :class:`OCTReadError` for anything that cannot be read, naming the file, what was found and what
    was expected, and ValueError for a ``bscan_distance`` that is not a positive number.
    """
    if bscan_distance is not None:
        bscan_distance = check_bscan_distance(bscan_distance)
    p = Path(os.fspath(path))
    try:
        fmt, target = _locate(p)
        return _READERS[fmt](target, bscan_distance, source=str(p))
    except OSError as e:  # permissions, disk errors, files vanishing mid-read
        raise OCTReadError(f"{p}: cannot be read ({e.__class__.__name__}: {e})") from e


def _locate(p: Path) -> tuple[str, Path]:
    """The reader's format name for an existing file or folder, and the path that reader opens."""
    if not p.exists():
        raise OCTReadError(f"{p}: no such file or folder: give the path of an OCT file or a folder of B-scans")
    if p.is_dir():
        return _folder_format(p)
    return _file_format(p), p


def detect_format(path: str | os.PathLike) -> str:
    """The format name ``load_oct`` would use for ``path`` (reads at most a header), or OCTReadError."""
    p = Path(os.fspath(path))
    fmt, _ = _locate(p)
    if fmt == "image" and _suffix(p) in (".tif", ".tiff"):
        with _open_pil(p) as im:
            return "multipage-tiff" if getattr(im, "n_frames", 1) > 1 else "image"
    return fmt


# --------------------------------------------------------------------------------------------- dispatch


def _suffix(p: Path) -> str:
    name = p.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else p.suffix.lower()


def _head(p: Path, size: int) -> bytes:
    """The first ``size`` bytes of a file (fewer if it is shorter; none if it cannot be read)."""
    try:
        with open(p, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def _is_dicom(p: Path) -> bool:
    return _head(p, 132)[128:132] == b"DICM"


def _file_format(p: Path) -> str:
    ext = _suffix(p)
    if ext in _EXTENSION_FORMAT:
        return _EXTENSION_FORMAT[ext]
    if _is_dicom(p):  # DICOM files often have no extension at all
        return "dicom"
    shown = f"'{ext}'" if ext else "no extension"
    raise OCTReadError(
        f"{p}: unknown file type ({shown}): expected one of {', '.join(SUPPORTED_EXTENSIONS)}, "
        "a DICOM file, or a folder of B-scan images / DICOM slices / a Heyex XML export"
    )


def _natural_key(name: str) -> list:
    # "B2" before "B10": digit runs compare as numbers; split() alternates text and digits, so types line up.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _folder_format(folder: Path) -> tuple[str, Path]:
    entries = sorted((e for e in folder.iterdir() if not e.name.startswith(".")), key=lambda e: _natural_key(e.name))
    files = [e for e in entries if e.is_file()]
    if not files:
        raise OCTReadError(
            f"{folder}: the folder holds no files: expected B-scan images ({', '.join(IMAGE_EXTENSIONS)}), "
            "DICOM slices or a Heyex XML export"
        )
    xmls = [f for f in files if f.suffix.lower() == ".xml" and _looks_like_heyex_xml(f)]
    if len(xmls) > 1:
        raise OCTReadError(
            f"{folder}: holds {len(xmls)} Heyex XML exports ({', '.join(f.name for f in xmls)}): "
            "pass the .xml file you mean"
        )
    if xmls:
        return "heyex-xml", xmls[0]
    images = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
    dicoms = [
        f
        for f in files
        if f.name.upper() != "DICOMDIR"
        and f.suffix.lower() not in IMAGE_EXTENSIONS
        and (f.suffix.lower() in DICOM_EXTENSIONS or _is_dicom(f))
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


def _looks_like_heyex_xml(p: Path) -> bool:
    return b"<HEDX" in _head(p, 2048)


# --------------------------------------------------------------------------------------------- shared helpers


def _finish(
    source: str,
    fmt: str,
    bscans: np.ndarray,
    lateral: float | None,
    axial: float | None,
    distance: float | None,
    *,
    unit: str,
    bscan_distance: float | None,
    metadata: dict,
    laterality: str | None = None,
    missing: str | None = None,
) -> OCTVolume:
    """Build the volume, putting a placeholder in for a missing, zero or single-B-scan distance."""
    n = int(bscans.shape[0])
    if unit == "pixel":
        lateral = axial = 1.0
    placeholder = False
    usable = distance is not None and math.isfinite(distance) and distance > 0
    if n == 1 or not usable:
        why = "a single B-scan" if n == 1 else (missing or "the file gives no B-scan distance")
        file_distance = distance if usable else None  # kept for reference: one B-scan has no neighbour
        distance = placeholder_distance(metadata, lateral, bscan_distance, why, file_distance)
        placeholder = True
    return OCTVolume(
        bscans=bscans,
        spacing=(float(lateral), float(axial), float(distance)),
        laterality=laterality,
        source=source,
        format=fmt,
        spacing_placeholder=placeholder,
        spacing_unit=unit,
        metadata=metadata,
    )


def _laterality(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    if text in ("OD", "R", "RIGHT") or text.endswith(".OD"):
        return "OD"
    if text in ("OS", "L", "LEFT") or text.endswith(".OS"):
        return "OS"
    return None


def _plain(value):
    """A JSON-friendly copy of header values (numpy scalars and tuples become Python numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _short(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split()) or e.__class__.__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _read_errors(p: Path, what: str, hint: str = "") -> Iterator[None]:
    """Turn a third-party reader's exception into ``OCTReadError("{p}: {what} (Type: message){hint}")``; our own
    OCTReadErrors pass through unchanged."""
    try:
        yield
    except OCTReadError:
        raise
    except Exception as e:
        raise OCTReadError(f"{p}: {what} ({e.__class__.__name__}: {_short(e)}){hint}") from e


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _quiet_eyepy() -> Iterator[list[str]]:
    """Keep eyepy's warnings (log records and Python warnings) off the console; they go to the yielded list.

    eyepy logs e.g. "less layers than expected" for ordinary files, which would only alarm users. Records at
    ERROR or above are passed on to logging as usual after the read, and exceptions are never touched.
    """
    notes: list[str] = []
    logger = logging.getLogger("eyepy")
    handler = _Collect()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield notes
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        for record in handler.records:
            if record.levelno >= logging.ERROR:
                logging.getLogger(record.name).handle(record)
            else:
                notes.append(record.getMessage())
        notes.extend(str(w.message) for w in caught)
        notes[:] = list(dict.fromkeys(notes))  # unique, in order


def _check_magic(p: Path, offset: int, magics: tuple[bytes, ...], expected: str) -> None:
    with open(p, "rb") as f:
        f.seek(offset)
        head = f.read(max(len(m) for m in magics))
    if not any(head.startswith(m) for m in magics):
        shown = head[:12]
        raise OCTReadError(f"{p}: is not {expected}: it starts with {shown!r}, expected {magics[0]!r}")


def _eyepy_data(ev, where: str) -> tuple[np.ndarray, str]:
    data = np.asarray(ev.data)
    if data.ndim != 3 or min(data.shape) < 1:
        raise OCTReadError(f"{where}: eyepy returned B-scans of shape {data.shape}: expected (n_bscans, depth, width)")
    return to_unit_range(data, where)  # eyepy's display transforms give uint8: "uint8 / 255"


def _bscan_positions(bscan_meta) -> list[list[float]]:
    out = []
    for m in bscan_meta:
        try:
            (sx, sy), (ex, ey) = m["start_pos"], m["end_pos"]
            out.append([float(sx), float(sy), float(ex), float(ey)])
        except (KeyError, TypeError, ValueError):
            return []
    return out


# --------------------------------------------------------------------------------------------- Heidelberg


def _read_heyex_vol(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    _check_magic(p, 0, (b"HSF-OCT", b"ep-v"), "a Heidelberg .vol export (header 'HSF-OCT-1xx')")
    from eyepy.io import HeVolReader

    with _quiet_eyepy() as notes:
        # construct raises StreamError etc. for cut or damaged files
        with _read_errors(p, "cannot be parsed as a Heidelberg .vol file",
                          ": it is probably truncated or damaged; copy or export it again"):
            reader = HeVolReader(p)
        hdr = reader.parsed_file
        pattern = int(hdr.scan_pattern)
        if pattern in _NON_CARTESIAN:
            raise OCTReadError(
                f"{p}: is a {_NON_CARTESIAN[pattern]} scan (VOL scan pattern {pattern}): its B-scans are not a "
                "Cartesian volume; DiDA reads line and volume scans (patterns 0, 1, 3, 4)"
            )
        with _read_errors(p, "the .vol header was read but its B-scans could not be"):
            ev = reader.volume
            bscans, intensity = _eyepy_data(ev, str(p))
    expected = (int(hdr.n_bscans), int(hdr.size_y), int(hdr.size_x))
    if bscans.shape != expected:
        raise OCTReadError(f"{p}: B-scans of shape {bscans.shape} but the header says {expected}: the file is damaged")
    lateral, axial, distance = float(hdr.scale_x), float(hdr.scale_y), float(hdr.distance)
    unit = "mm" if all(math.isfinite(v) and v > 0 for v in (lateral, axial)) else "pixel"
    metadata = {
        "spacing_source": "VOL header: scale_x (lateral), scale_y (axial), distance (between B-scans), mm",
        "intensity": "eyepy 'vol' display transform of the raw reflectivity: "
        "uint8 = clip((log(x + 2.44e-4) + 8.3) / 8.285, 0, 1) * 255 (invalid pixels 0), then / 255",
        "bscan_order": HEIDELBERG_BSCAN_ORDER,
        "scan_pattern": pattern,
        "scan_pattern_name": VOL_SCAN_PATTERNS.get(pattern, "unknown"),
        "vol_version": str(hdr.version).strip("\x00 "),
        "exam_time": _plain(hdr.exam_time),
        "field_size_deg": _plain(hdr.field_size_slo),
        "scan_focus_dpt": _plain(hdr.scan_focus),
        "bscan_positions_mm": _bscan_positions(ev.meta["bscan_meta"]),
        "bscan_quality": [_plain(m["quality"]) for m in ev.meta["bscan_meta"]],
    }
    if unit == "pixel":
        metadata["spacing_source"] = f"VOL header scales are not positive ({lateral}, {axial}): pixel units used"
    if notes:
        metadata["reader_warnings"] = notes
    why = f"the VOL header's B-scan distance is {distance:g}" if distance <= 0 else None
    return _finish(
        source, "heyex-vol", bscans, lateral, axial, distance if unit == "mm" else None,
        unit=unit, bscan_distance=bscan_distance, metadata=metadata,
        laterality=_laterality(hdr.scan_position), missing=why,
    )


def _xml_reader_class():
    from eyepy import EyeVolumeMeta
    from eyepy.io import HeXmlReader

    class _HeXmlReader(HeXmlReader):
        """eyepy's XML reader, with a meta that works for one B-scan and leaves patient fields out."""

        @property
        def meta(self):
            bscan_meta = self.bscan_meta
            distance = 0.0
            if len(bscan_meta) >= 2:  # eyepy's get_bscan_spacing indexes [0] of the pairwise distances
                from eyepy.io.utils import get_bscan_spacing

                distance = float(get_bscan_spacing(bscan_meta))
            return EyeVolumeMeta(
                scale_x=self.parsed_values["scale_x"],
                scale_y=self.parsed_values["scale_y"],
                scale_z=distance,
                scale_unit="mm",
                laterality=self.parsed_values["scan_position"],
                visit_date=self.parsed_values["visit_date"],
                exam_time=self.parsed_values["exam_time"],
                bscan_meta=bscan_meta,
                intensity_transform="default",
            )

    return _HeXmlReader


def _read_heyex_xml(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    if not _looks_like_heyex_xml(p):
        raise OCTReadError(
            f"{p}: is not a Heyex XML export: no <HEDX> root element at its start; "
            "expected the .xml file Heyex writes next to the B-scan images"
        )
    reader_class = _xml_reader_class()
    from eyepy.io.he.xml_reader import get_xml_root

    with _quiet_eyepy() as notes:
        try:
            with _read_errors(p, "cannot be read as a Heyex XML export"):
                reader = reader_class(p)
                series_type = ""
                node = reader.xml_root[0].find("./Patient/Study/Series/Type")
                if node is not None and node.text:
                    series_type = node.text.strip()
                if any(word in series_type.lower() for word in ("circle", "radial", "star")):
                    raise OCTReadError(
                        f"{p}: is a {series_type} scan: its B-scans are not a Cartesian volume; "
                        "DiDA reads line and volume scans"
                    )
                names = [m["scan_name"] for m in reader.bscan_meta]
                if not names:
                    raise OCTReadError(f"{p}: the XML lists no OCT B-scans (no <Image> of type OCT)")
                missing = [n for n in names if not (p.parent / n).is_file()]
                if missing:
                    raise OCTReadError(
                        f"{p}: the XML lists B-scan image(s) missing from {p.parent}: {', '.join(missing[:5])}; "
                        "copy the whole export folder"
                    )
                ev = reader.volume
                bscans, intensity = _eyepy_data(ev, str(p))
                parsed = dict(reader.parsed_values)
        finally:
            get_xml_root.cache_clear()  # eyepy caches parsed XML by path: a re-export at the same path must be re-read
    lateral, axial = parsed.get("scale_x"), parsed.get("scale_y")
    unit = "mm" if all(v is not None and math.isfinite(v) and v > 0 for v in (lateral, axial)) else "pixel"
    metadata = {
        "spacing_source": "XML OphthalmicAcquisitionContext ScaleX (lateral), ScaleY (axial), mm; B-scan distance "
        "= mean distance between consecutive B-scan start/end positions (the XML has no distance field)",
        "intensity": "8-bit B-scan images / 255",
        "bscan_order": HEIDELBERG_BSCAN_ORDER,
        "series_type": series_type,
        "software_version": _plain(parsed.get("version")),
        "exam_time": _plain(parsed.get("exam_time")),
        "files": names,
        "bscan_positions_mm": _bscan_positions(ev.meta["bscan_meta"]),
    }
    if notes:
        metadata["reader_warnings"] = notes
    distance = float(ev.meta["scale_z"]) if unit == "mm" else None
    return _finish(
        source, "heyex-xml", bscans, lateral, axial, distance,
        unit=unit, bscan_distance=bscan_distance, metadata=metadata,
        laterality=_laterality(parsed.get("scan_position")),
        missing="the B-scan start/end positions do not differ",
    )


def _e2e_eyevolume(p: Path) -> tuple[object, int, int, list[str]]:
    """The first readable series of an E2E file: (EyeVolume, series count, index used, skipped notes)."""
    from eyepy.io import HeE2eReader

    reader = HeE2eReader(p)
    skipped: list[str] = []
    with reader as r:
        series = list(r.series)
        for index, s in enumerate(series):
            try:
                pattern = int(s.get_meta()["bscan_meta"][0]["scan_pattern"])
            except Exception as e:
                skipped.append(f"series {index}: no B-scan header ({e.__class__.__name__})")
                continue
            if pattern in _NON_CARTESIAN:
                skipped.append(f"series {index}: {_NON_CARTESIAN[pattern]} scan (pattern {pattern})")
                continue
            try:
                return s.get_volume(), len(series), index, skipped
            except Exception as e:
                skipped.append(f"series {index}: {e.__class__.__name__}: {_short(e, 120)}")
    raise OCTReadError(
        f"{p}: none of its {len(series)} series is a readable line or volume scan"
        + (f" ({'; '.join(skipped)})" if skipped else "")
        + ": circle and radial scans are not Cartesian volumes"
    )


def _e2e_spacing(bscan_meta, width: int) -> tuple[float | None, float | None, float | None, str]:
    """(lateral, axial, distance) in mm derived from E2E B-scan headers, as eyepy's Heyex metadata does."""
    try:
        first = bscan_meta[0]
        span_deg = abs(float(first["end_x"]) - float(first["start_x"]))
        ascans = int(first["imgSizeWidth"]) if "imgSizeWidth" in first and int(first["imgSizeWidth"]) > 0 else width
        lateral = span_deg * MM_PER_DEGREE / ascans if span_deg > 0 else None
    except (KeyError, IndexError, TypeError, ValueError):
        lateral = None
    try:
        axial = float(bscan_meta[0]["scale_y"])
        axial = axial if math.isfinite(axial) and 0 < axial < 1 else None
    except (KeyError, IndexError, TypeError, ValueError):
        axial = None
    distance = None
    try:
        centres = [float(m["center_y"]) for m in bscan_meta]
        if len(centres) > 1:
            span = max(centres) - min(centres)
            distance = span * MM_PER_DEGREE / (len(centres) - 1) if span > 0 else None
    except (KeyError, TypeError, ValueError):
        distance = None
    how = (
        f"derived (approximate): lateral = |end_x - start_x| (deg) / A-scans x {MM_PER_DEGREE} mm/deg "
        "(Heyex medium eye length, as eyepy); axial = the B-scan header's scale_y (mm); B-scan distance = "
        f"vertical span of the B-scan centres (deg) x {MM_PER_DEGREE} / (n - 1)"
    )
    return lateral, axial, distance, how


def _read_heyex_e2e(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    _check_magic(p, 0, (b"CMDb",), "a Heidelberg .e2e export")
    with _quiet_eyepy() as notes:
        with _read_errors(p, "cannot be parsed as a Heidelberg .e2e file", ": it may be truncated or damaged"):
            ev, n_series, used, skipped = _e2e_eyevolume(p)
            bscans, intensity = _eyepy_data(ev, str(p))
    bscan_meta = ev.meta["bscan_meta"]
    lateral, axial, distance, how = _e2e_spacing(bscan_meta, bscans.shape[2])
    unit = "mm" if lateral is not None and axial is not None else "pixel"
    metadata = {
        "spacing_source": how if unit == "mm" else "E2E stores no usable scale here: pixel units",
        "spacing_approximate": unit == "mm",
        "intensity": "eyepy 'e2e' display transform (log, as for VOL) to uint8, then / 255",
        "bscan_order": HEIDELBERG_BSCAN_ORDER,
        "e2e_series_count": n_series,
        "e2e_series_used": used,
    }
    if unit == "mm":
        metadata["scan_angle_deg"] = _plain(abs(float(bscan_meta[0]["end_x"]) - float(bscan_meta[0]["start_x"])))
    if skipped:
        metadata["e2e_series_skipped"] = skipped
    if notes:
        metadata["reader_warnings"] = notes
    return _finish(
        source, "heyex-e2e", bscans, lateral, axial, distance if unit == "mm" else None,
        unit=unit, bscan_distance=bscan_distance, metadata=metadata,
        laterality=_laterality(ev.meta.get("laterality") if hasattr(ev.meta, "get") else None),
        missing="the B-scan centres do not differ",
    )


# --------------------------------------------------------------------------------------------- plain images


@contextlib.contextmanager
def _open_pil(p: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(p)
    except UnidentifiedImageError as e:
        raise OCTReadError(
            f"{p}: is not a readable image: Pillow cannot identify its contents; expected a PNG, JPEG or TIFF file"
        ) from e
    try:
        yield im
    finally:
        im.close()


def _pil_grey(im, where: str) -> tuple[np.ndarray, str | None]:
    """One PIL frame as a 2-D grey array in its own dtype, and a note when colour was reduced."""
    mode = im.mode
    try:
        if mode in ("L", "F") or mode.startswith("I;16"):
            arr = np.array(im)
            return arr.astype(arr.dtype.newbyteorder("="), copy=False), None
        if mode == "I":
            arr = np.array(im)
            if arr.size and arr.min() >= 0 and arr.max() <= 65535:  # 16-bit PNGs open as "I" in some Pillow builds
                return arr.astype(np.uint16), None
            return arr, None
        if mode == "1":
            return np.array(im.convert("L")), None
        if mode in ("LA", "La"):
            return np.array(im)[..., 0], f"{mode}: the grey channel (alpha dropped)"
        if mode in ("RGB", "RGBA", "RGBX", "RGBa"):
            arr = np.array(im)
            channels = 3 if mode == "RGB" else 4
            return to_grey(arr[..., :channels], channels, where), f"{mode} reduced to grey ({grey_rule(channels)})"
        rgb = np.array(im.convert("RGB"))
        return to_grey(rgb, 3, where), f"{mode} converted to RGB, then to grey ({grey_rule(3)})"
    except OCTReadError:
        raise
    except (OSError, ValueError) as e:  # truncated or corrupt pixel data
        raise OCTReadError(f"{where}: the image data cannot be decoded ({_short(e)}): the file may be truncated") from e


def _append_frame(frames: list[np.ndarray], arr: np.ndarray, where: str, first: str) -> None:
    """Add one B-scan to a stack, refusing one whose size or bit depth differs from the first."""
    if frames and arr.shape != frames[0].shape:
        raise OCTReadError(
            f"{where}: is {arr.shape[1]} x {arr.shape[0]} px but {first} is "
            f"{frames[0].shape[1]} x {frames[0].shape[0]} px: all B-scans must share one size"
        )
    if frames and arr.dtype != frames[0].dtype:
        raise OCTReadError(
            f"{where}: has {arr.dtype} pixels but {first} has {frames[0].dtype}: "
            "export all B-scans with one bit depth"
        )
    frames.append(arr)


def _read_image(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    frames: list[np.ndarray] = []
    notes: set[str] = set()
    with _open_pil(p) as im:
        container = im.format
        n_frames = int(getattr(im, "n_frames", 1))
        for i in range(n_frames):
            where = f"{p} (page {i + 1} of {n_frames})" if n_frames > 1 else str(p)
            im.seek(i)
            arr, note = _pil_grey(im, where)
            if note:
                notes.add(note)
            _append_frame(frames, arr, where, "page 1")
    fmt = "multipage-tiff" if n_frames > 1 else "image"
    return _image_stack(source, fmt, frames, notes, str(p), {"container": container}, bscan_distance,
                        "an image stack has no B-scan distance")


def _read_image_folder(folder: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    files = sorted(
        (f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")),
        key=lambda f: _natural_key(f.name),
    )
    files = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise OCTReadError(f"{folder}: no B-scan images ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
    frames: list[np.ndarray] = []
    notes: set[str] = set()
    for f in files:
        with _open_pil(f) as im:
            if int(getattr(im, "n_frames", 1)) > 1:
                raise OCTReadError(
                    f"{f}: is a multi-page TIFF ({im.n_frames} pages) inside a folder of B-scan images: "
                    "expected one B-scan per file; load the multi-page TIFF on its own"
                )
            arr, note = _pil_grey(im, str(f))
        if note:
            notes.add(note)
        _append_frame(frames, arr, str(f), f"{files[0].name} (the first B-scan)")
    extra = {"bscan_order": "natural sort of the file names (B2 before B10)", "files": [f.name for f in files]}
    return _image_stack(source, "image-folder", frames, notes, str(folder), extra, bscan_distance,
                        "a folder of images has no B-scan distance")


def _image_stack(source: str, fmt: str, frames: list[np.ndarray], notes: set[str], where: str, extra: dict,
                 bscan_distance: float | None, missing: str) -> OCTVolume:
    """A volume from grey image frames: no physical spacing (pixel units), colour reductions noted."""
    bscans, intensity = to_unit_range(np.stack(frames), where)
    metadata = {"spacing_source": "none: image files carry no physical spacing; pixel units", "intensity": intensity}
    metadata.update(extra)
    if notes:
        metadata["colour"] = "; ".join(sorted(notes))
    return _finish(
        source, fmt, bscans, None, None, None, unit="pixel", bscan_distance=bscan_distance, metadata=metadata,
        missing=missing,
    )


# --------------------------------------------------------------------------------------------- SimpleITK volumes


def _read_sitk(fmt: str):
    def read(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
        import SimpleITK as sitk

        io_name, label = _SITK_IO[fmt]
        reader = sitk.ImageFileReader()
        reader.SetImageIO(io_name)  # the extension's reader only: a PNG renamed .nrrd is an error, not a guess
        reader.SetFileName(str(p))
        try:
            image = reader.Execute()
        except RuntimeError as e:
            raise OCTReadError(
                f"{p}: is not a readable {label} file (SimpleITK {io_name}: {_last_line(e)}): expected a {label} "
                f"image ({' '.join(SUPPORTED_FORMATS[fmt].extensions)})"
            ) from e
        volume = OCTVolume.from_sitk(image, source=str(p), format=fmt, bscan_distance=bscan_distance)
        volume.metadata["spacing_source"] = f"{label} header spacing (x lateral, y axial, z B-scan distance), mm"
        return volume

    return read


def _last_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return _short(Exception(lines[-1] if lines else e.__class__.__name__), 200)


# --------------------------------------------------------------------------------------------- DICOM


def _dicom_seq_item(ds, *path: str):
    node = ds
    for name in path:
        seq = getattr(node, name, None) if node is not None else None
        if not seq:
            return None
        node = seq[0]
    return node


def _dicom_pixel_measures(ds) -> tuple[list[float] | None, float | None, float | None, str]:
    """(PixelSpacing [row, col], SpacingBetweenSlices, SliceThickness, where found) from a DICOM dataset."""
    for path, where in (
        (("SharedFunctionalGroupsSequence", "PixelMeasuresSequence"), "shared functional groups"),
        (("PerFrameFunctionalGroupsSequence", "PixelMeasuresSequence"), "per-frame functional groups (frame 1)"),
        ((), "the top-level attributes"),
    ):
        node = _dicom_seq_item(ds, *path) if path else ds
        if node is None:
            continue
        ps = getattr(node, "PixelSpacing", None)
        between = getattr(node, "SpacingBetweenSlices", None)
        thick = getattr(node, "SliceThickness", None)
        if ps is not None or between is not None or thick is not None:
            if path and ps is None and getattr(ds, "PixelSpacing", None) is not None:
                ps = ds.PixelSpacing
            if thick is None:
                thick = getattr(ds, "SliceThickness", None)
            if between is None:
                between = getattr(ds, "SpacingBetweenSlices", None)
            return (
                [float(v) for v in ps] if ps is not None and len(ps) == 2 else None,
                _positive(between),
                _positive(thick),
                where,
            )
    return None, None, None, "nowhere"


def _positive(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _dicom_frame_distance(ds) -> tuple[float | None, str | None]:
    frames = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if not frames or len(frames) < 2:
        return None, None
    positions = []
    for item in frames:
        pos = _dicom_seq_item(item, "PlanePositionSequence")
        ipp = getattr(pos, "ImagePositionPatient", None) if pos is not None else None
        if ipp is None or len(ipp) != 3:
            return None, None
        positions.append([float(v) for v in ipp])
    steps = np.linalg.norm(np.diff(np.asarray(positions), axis=0), axis=1)
    if not np.all(steps > 0):
        return None, None
    note = None
    if not np.allclose(steps, steps.mean(), rtol=0.04):
        note = f"frame positions are not equally spaced ({steps.min():g} to {steps.max():g} mm): the mean is used"
    return float(steps.mean()), note


def _dicom_laterality(ds) -> str | None:
    for value in (
        getattr(ds, "ImageLaterality", None),
        getattr(ds, "Laterality", None),
        getattr(_dicom_seq_item(ds, "SharedFunctionalGroupsSequence", "FrameAnatomySequence"), "FrameLaterality", None),
    ):
        lat = _laterality(value)
        if lat:
            return lat
    return None


def _dicom_metadata(ds) -> dict:
    """Acquisition facts only: patient, study and institution identifiers are left out on purpose."""
    meta: dict = {}
    sop = getattr(ds, "SOPClassUID", None)
    if sop is not None:
        meta["sop_class"] = str(sop)
        meta["sop_class_name"] = str(getattr(sop, "name", sop))
    for tag, key in (
        ("Modality", "modality"),
        ("Manufacturer", "manufacturer"),
        ("ManufacturerModelName", "model"),
        ("PhotometricInterpretation", "photometric"),
        ("BitsStored", "bits_stored"),
    ):
        value = getattr(ds, tag, None)
        if value is not None and value != "":
            meta[key] = _plain(value if isinstance(value, (int, float)) else str(value))
    return meta


def _dicom_intensity(arr: np.ndarray, ds, where: str) -> tuple[np.ndarray, str]:
    bits = getattr(ds, "BitsStored", None)
    bscans, intensity = to_unit_range(arr, where, bits_stored=int(bits) if bits else None)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":  # 0 = white in MONOCHROME1
        bscans = 1.0 - bscans
        intensity += "; MONOCHROME1 inverted (bright = high)"
    return bscans.astype(np.float32, copy=False), intensity


def _read_dicom(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    if p.is_dir():
        return _read_dicom_series(p, bscan_distance, source=source)
    import pydicom
    from pydicom.errors import InvalidDicomError

    with _read_errors(p, "the DICOM file cannot be parsed"):
        try:
            ds = pydicom.dcmread(p)
        except InvalidDicomError as e:
            raise OCTReadError(
                f"{p}: is not a DICOM file ({_short(e)}): expected a DICOM Part 10 file (128-byte preamble + 'DICM')"
            ) from e
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        kind = getattr(getattr(ds, "SOPClassUID", None), "name", "this object")
        raise OCTReadError(f"{p}: has no pixel data ({kind}): expected an image, e.g. Ophthalmic Tomography")
    with _read_errors(p, "its pixel data cannot be decoded", ": install the decoder pydicom names (e.g. pylibjpeg, "
                      "pylibjpeg-libjpeg) or export uncompressed DICOM"):
        arr = ds.pixel_array
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    colour = None
    if samples > 1:
        arr = to_grey(np.asarray(arr), samples, str(p))
        colour = f"{samples} samples per pixel reduced to grey ({grey_rule(samples)})"
    arr = np.asarray(arr)
    if arr.ndim == 2 and frames == 1:
        arr = arr[None]
    if arr.ndim != 3:
        raise OCTReadError(
            f"{p}: pixel data of shape {arr.shape} ({frames} frame(s)): expected frames of rows x columns"
        )
    bscans, intensity = _dicom_intensity(arr, ds, str(p))
    pixel_spacing, between, thickness, where = _dicom_pixel_measures(ds)
    metadata = _dicom_metadata(ds)
    metadata.update({"dicom_layout": "single file", "intensity": intensity, "bscan_order": "frame order of the file"})
    if colour:
        metadata["colour"] = colour
    if pixel_spacing is not None and all(v > 0 for v in pixel_spacing):
        unit, axial, lateral = "mm", pixel_spacing[0], pixel_spacing[1]
        sources = [f"PixelSpacing [row = axial, column = lateral] from {where}"]
    else:
        unit, axial, lateral = "pixel", None, None
        sources = ["no PixelSpacing: pixel units"]
    distance = None
    if unit == "mm":
        frame_distance, note = _dicom_frame_distance(ds)
        if between is not None:
            distance, how = between, "SpacingBetweenSlices"
        elif frame_distance is not None:
            distance, how = frame_distance, "the frame positions (PlanePositionSequence)"
            if note:
                metadata["note"] = note
        elif thickness is not None:
            distance, how = thickness, "SliceThickness"
        if distance is not None:
            sources.append(f"B-scan distance from {how}")
    metadata["spacing_source"] = "; ".join(sources)
    return _finish(
        source, "dicom", bscans, lateral, axial, distance, unit=unit, bscan_distance=bscan_distance,
        metadata=metadata, laterality=_dicom_laterality(ds),
        missing="no SpacingBetweenSlices, frame positions or SliceThickness",
    )


def _read_dicom_series(folder: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    import pydicom
    import SimpleITK as sitk

    try:
        series_ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    except RuntimeError as e:
        raise OCTReadError(f"{folder}: cannot list its DICOM series ({_last_line(e)})") from e
    if not series_ids:
        raise OCTReadError(f"{folder}: no readable DICOM image series in the folder (GDCM found none)")
    by_size = sorted(
        ((list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid)), sid) for sid in series_ids),
        key=lambda t: -len(t[0]),
    )
    files, series_uid = by_size[0]
    try:
        first = pydicom.dcmread(files[0], stop_before_pixels=True)
    except Exception as e:
        raise OCTReadError(f"{files[0]}: the DICOM header cannot be read ({_short(e)})") from e
    if len(files) > 1:
        for f in files:
            frames = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["NumberOfFrames"]).get("NumberOfFrames")
            if frames is not None and int(frames) > 1:
                raise OCTReadError(
                    f"{f}: is a multi-frame DICOM file ({int(frames)} frames) in a folder of {len(files)} DICOM "
                    "files: load the multi-frame file itself"
                )
    if len(files) == 1:
        return _read_dicom(Path(files[0]), bscan_distance, source=source)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise OCTReadError(f"{folder}: the DICOM series cannot be read ({_last_line(e)})") from e
    arr = sitk.GetArrayFromImage(image)
    components = image.GetNumberOfComponentsPerPixel()
    metadata = _dicom_metadata(first)
    if components > 1:
        arr = to_grey(arr, components, str(folder))
        metadata["colour"] = f"{components} components reduced to grey ({grey_rule(components)})"
    if arr.ndim != 3:
        raise OCTReadError(f"{folder}: the DICOM series gave an array of shape {arr.shape}: expected 3-D")
    bscans, intensity = _dicom_intensity(arr, first, str(folder))
    spacing = [float(s) for s in image.GetSpacing()]
    has_spacing = getattr(first, "PixelSpacing", None) is not None
    unit = "mm" if has_spacing else "pixel"
    distance = spacing[2] if unit == "mm" and getattr(first, "ImagePositionPatient", None) is not None else None
    metadata.update(
        {
            "dicom_layout": "series folder",
            "intensity": intensity,
            "bscan_order": "slice position along the slice normal (GDCM sort)",
            "files": [Path(f).name for f in files],
            "spacing_source": "PixelSpacing and the slice positions, via SimpleITK's series reader"
            if has_spacing
            else "no PixelSpacing: pixel units",
        }
    )
    if len(by_size) > 1:
        metadata["note"] = (
            f"the folder holds {len(by_size)} DICOM series; the largest ({len(files)} files) was read, "
            f"the others ({', '.join(str(len(f)) for f, _ in by_size[1:])} files) were left out"
        )
    return _finish(
        source, "dicom", bscans, spacing[0], spacing[1], distance, unit=unit, bscan_distance=bscan_distance,
        metadata=metadata, laterality=_dicom_laterality(first), missing="the slices have no positions",
    )


_READERS = {
    "heyex-vol": _read_heyex_vol,
    "heyex-xml": _read_heyex_xml,
    "heyex-e2e": _read_heyex_e2e,
    "image": _read_image,
    "multipage-tiff": _read_image,
    "image-folder": _read_image_folder,
    "nrrd": _read_sitk("nrrd"),
    "nifti": _read_sitk("nifti"),
    "metaimage": _read_sitk("metaimage"),
    "dicom": _read_dicom,
}
