"""Other vendors' files through OCT-Converter (``pip install oct-converter``, MIT): Topcon ``.fda``/``.fds``,
Zeiss Cirrus ``.img``, Bioptigen ``.oct`` and Optovue ``.oct`` (with its ``.txt`` beside it).

OCT-Converter reads the pixels; the spacing comes from what each file says, and is reported in ``metadata``:

- Topcon: ``PARAM_SCAN_04`` (or ``_02``): lateral = x_dimension_mm / A-scans, B-scan distance =
  y_dimension_mm / B-scans, axial = z_resolution_um / 1000. Radial and cross scans are stacks of B-scans
  (``OCTVolume.geometry``).
- Zeiss ``.img`` holds raw bytes only: the A-scans x B-scans come from the name Cirrus gives the export
  (``... Macular Cube 512x128 ...``), 1024 rows per A-scan; a cube protocol's 6 x 6 x 2 mm gives the spacing
  (approximate), other protocols are read in pixels.
- Bioptigen: the file header's scan length and depth (mm); repeated B-scans at one position keep the first.
- Optovue: the filespec gives no B-scan spacing that OCT-Converter reads: pixels.

Patient names, IDs and birth dates that OCT-Converter also reads are never copied into the volume. Its console
prints are kept off the console (``reader_notes``), and every failure is an ``OCTReadError``.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import warnings
from pathlib import Path

import numpy as np

from .common import build_volume, head_bytes, parse_laterality, read_errors
from .volume import OCTReadError, OCTVolume, bscan_stack, to_unit_range

INSTALL = "pip install oct-converter (or the 'vendors' extra: pip install 'dida-slicer[vendors]')"
TOPCON_GEOMETRY = {3: "radial", 4: "radial"}  # scan_mode: 2 3-D volume, 3 radial, 4 cross (two lines)
CIRRUS_ROWS = 1024
CIRRUS_CUBE_MM = (6.0, 6.0, 2.0)  # Macular and Optic Disc Cubes: 6 x 6 mm, 2 mm deep
BIOPTIGEN_SCAN_TYPES = {0: "linear", 1: "rect", 3: "radial"}


@contextlib.contextmanager
def _quiet(notes: list[str]):
    """OCT-Converter prints and warns for ordinary files: collect it instead of alarming the user."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    notes.extend(line.strip() for line in out.getvalue().splitlines() if line.strip())
    notes.extend(str(w.message) for w in caught)


def _readers():
    try:
        from oct_converter import readers
    except ImportError:
        raise OCTReadError(f"reading this vendor's files needs OCT-Converter: {INSTALL}") from None
    return readers


class _NumpyFromBuffer:
    """numpy, with ``fromstring``'s binary mode (removed in numpy 2.3, still called by OCT-Converter 0.7's FDA and
    FDS readers) answered by ``frombuffer``, which returns the same values."""

    def __getattr__(self, name: str):
        return getattr(np, name)

    @staticmethod
    def fromstring(data, dtype=float, count=-1, sep=""):
        if sep:
            return np.fromstring(data, dtype=dtype, count=count, sep=sep)
        return np.frombuffer(data, dtype=dtype, count=count).copy()


@contextlib.contextmanager
def _binary_fromstring(module):
    """For the duration of one read, the reader module sees numpy with ``fromstring``'s binary mode restored."""
    saved = module.np
    module.np = _NumpyFromBuffer()
    try:
        yield
    finally:
        module.np = saved


def _stack(frames, where: Path) -> np.ndarray:
    shapes = {np.shape(f) for f in frames}
    if not frames or len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise OCTReadError(f"{where}: OCT-Converter found no B-scans of one size here (shapes {sorted(shapes)[:3]}): "
                           "the file may be damaged or hold no OCT scan")
    return np.stack([np.asarray(f) for f in frames])


def _positive(*values) -> bool:
    return all(v is not None and math.isfinite(v) and v > 0 for v in values)


# -- Topcon -----------------------------------------------------------------------------------------------------------

def read_topcon(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    """A Topcon ``.fda`` or ``.fds`` file (FOCT header) through OCT-Converter's FDA/FDS readers."""
    if not head_bytes(p, 4) == b"FOCT":
        raise OCTReadError(f"{p}: is not a Topcon OCT file: it does not start with 'FOCT'")
    kind = "fda" if p.suffix.lower() == ".fda" else "fds"
    readers, notes = _readers(), []
    from oct_converter.readers import fda, fds

    with _quiet(notes), _binary_fromstring(fda if kind == "fda" else fds), read_errors(
            p, f"cannot be read as a Topcon .{kind} file", ": it may be truncated or damaged"):
        reader = (readers.FDA if kind == "fda" else readers.FDS)(p)
        oct_volume = reader.read_oct_volume()
        frames = oct_volume.volume
    if frames is None:
        raise OCTReadError(f"{p}: holds no OCT B-scans (no IMG_JPEG, IMG_MOT_COMP_03 or IMG_SCAN_03 chunk)")
    bscans, intensity = to_unit_range(_stack(frames, p), str(p))
    scan_mode = int((oct_volume.oct_header or {}).get("scan_mode", 0))
    spacing = oct_volume.pixel_spacing  # [lateral, B-scan distance, axial] in mm (OCT-Converter's order)
    metadata = {"intensity": intensity, "topcon_scan_mode": scan_mode, "reader": "OCT-Converter " + kind.upper()}
    if notes:
        metadata["reader_notes"] = notes
    laterality = parse_laterality(oct_volume.laterality or None)
    usable = spacing is not None and _positive(spacing[0], spacing[2])
    fmt = f"topcon-{kind}"
    if scan_mode in TOPCON_GEOMETRY:
        metadata["spacing_source"] = ("PARAM_SCAN: x_dimension_mm / A-scans along each line, z_resolution_um / 1000"
                                      if usable else "no PARAM_SCAN chunk: pixel units")
        return bscan_stack(source, fmt, bscans, TOPCON_GEOMETRY[scan_mode],
                           [spacing[0]] * len(bscans) if usable else None, spacing[2] if usable else 1.0,
                           metadata=metadata, unit="mm" if usable else "pixel", laterality=laterality,
                           bscan_distance=bscan_distance)
    metadata["spacing_source"] = ("PARAM_SCAN: lateral x_dimension_mm / A-scans, B-scan distance y_dimension_mm / "
                                  "B-scans, axial z_resolution_um / 1000" if usable else
                                  "no PARAM_SCAN chunk: pixel units")
    return build_volume(source, fmt, bscans, spacing[0] if usable else None, spacing[2] if usable else None,
                        spacing[1] if usable else None, unit="mm" if usable else "pixel",
                        bscan_distance=bscan_distance, metadata=metadata, laterality=laterality)


# -- Zeiss Cirrus -----------------------------------------------------------------------------------------------------

def cirrus_protocol(name: str) -> tuple[int, int, bool] | None:
    """(A-scans, B-scans, is a 6 x 6 x 2 mm cube) from the name Cirrus gives an export, or None."""
    m = re.search(r"(cube\s+)?(\d+)x(\d+)", name, re.IGNORECASE)  # "Macular Cube 512x128", "5 Line Raster 1024x5"
    if not m:
        return None
    return int(m.group(2)), int(m.group(3)), m.group(1) is not None


def read_zeiss_img(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    """A Zeiss Cirrus raw ``.img`` through OCT-Converter's IMG reader, its size from the export's name."""
    protocol = cirrus_protocol(p.name)
    if protocol is None:
        raise OCTReadError(f"{p}: a Zeiss .img holds raw bytes only and its name does not give the scan size "
                           "(e.g. 'Macular Cube 512x128'): keep the name Cirrus gave the export")
    ascans, n, cube = protocol
    expected = CIRRUS_ROWS * ascans * n
    size = p.stat().st_size
    if size != expected:
        raise OCTReadError(f"{p}: holds {size} bytes but its name says {ascans} A-scans x {n} B-scans x "
                           f"{CIRRUS_ROWS} rows ({expected} bytes): the file is cut or not a Cirrus .img export")
    readers, notes = _readers(), []
    with _quiet(notes), read_errors(p, "cannot be read as a Zeiss .img file"):
        oct_volume = readers.IMG(p).read_oct_volume(rows=CIRRUS_ROWS, cols=ascans)
    bscans, intensity = to_unit_range(_stack(oct_volume.volume, p), str(p))
    width, length, depth = CIRRUS_CUBE_MM  # across the B-scan, across B-scans, deep
    metadata = {
        "intensity": intensity,
        "reader": "OCT-Converter IMG (its pixel order; Cirrus stores no header to check it against)",
        "spacing_source": (f"the {width:g} x {length:g} x {depth:g} mm cube of the protocol named in the file name "
                           "(approximate)" if cube else "the file name names no cube protocol: pixel units"),
        "spacing_approximate": cube,
    }
    if notes:
        metadata["reader_notes"] = notes
    return build_volume(source, "zeiss-img", bscans, width / ascans if cube else None,
                        depth / CIRRUS_ROWS if cube else None, length / n if cube else None,
                        unit="mm" if cube else "pixel", bscan_distance=bscan_distance, metadata=metadata,
                        laterality=parse_laterality(oct_volume.laterality or None))


# -- Bioptigen and Optovue (.oct) -------------------------------------------------------------------------------------

def is_optovue(p: Path) -> bool:
    """Optovue ``.oct`` exports come with a ``.txt`` filespec of the same name; Bioptigen's stand alone."""
    return p.with_suffix(".txt").is_file()


def read_vendor_oct(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    """A ``.oct`` file: Optovue when its ``.txt`` filespec is beside it, else Bioptigen."""
    return (read_optovue if is_optovue(p) else read_bioptigen)(p, bscan_distance, source=source)


def _bioptigen_header(p: Path):
    from oct_converter.readers.binary_structs import boct_binary

    return boct_binary.bioptigen_oct_header_struct.parse_file(str(p))


def read_bioptigen(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    """A Bioptigen ``.oct`` through OCT-Converter's BOCT reader; spacing from its header (mm)."""
    readers, notes = _readers(), []
    with _quiet(notes), read_errors(p, "cannot be read as a Bioptigen .oct file (and no Optovue .txt filespec is "
                                    "beside it)", ": it may be truncated or damaged"):
        header = _bioptigen_header(p)
        volumes = readers.BOCT(p).read_oct_volume()
        frames = [np.asarray(v.volume)[0].T for v in volumes]  # (A-scans, depth) -> (depth, A-scans)
    bscans, intensity = to_unit_range(_stack(frames, p), str(p))
    repeats = int(np.asarray(volumes[0].volume).shape[0])
    scan_type = BIOPTIGEN_SCAN_TYPES.get(int(header.scantype.value), "unknown")
    depth_mm, length_mm = float(header.scandepth.value), float(header.scanlength.value)
    across_mm = float(header.elscanlength.value)
    n, depth, ascans = bscans.shape
    usable = _positive(depth_mm, length_mm)
    metadata = {"intensity": intensity, "reader": "OCT-Converter BOCT", "bioptigen_scan_type": scan_type,
                "spacing_source": ("Bioptigen header: scanlength / A-scans (lateral), scandepth / rows (axial), "
                                   "elscanlength / B-scans (between B-scans)" if usable else
                                   "the Bioptigen header gives no scan length and depth: pixel units")}
    if repeats > 1:
        metadata["repeats_note"] = f"{repeats} B-scans at each position: the first of each is used"
    if notes:
        metadata["reader_notes"] = notes
    if scan_type == "radial":
        return bscan_stack(source, "bioptigen-oct", bscans, "radial",
                           [length_mm / max(1, ascans - 1)] * n if usable else None,
                           depth_mm / depth if usable else 1.0, metadata=metadata, unit="mm" if usable else "pixel",
                           bscan_distance=bscan_distance)
    return build_volume(source, "bioptigen-oct", bscans, length_mm / ascans if usable else None,
                        depth_mm / depth if usable else None,
                        across_mm / n if usable and _positive(across_mm) and n > 1 else None,
                        unit="mm" if usable else "pixel", bscan_distance=bscan_distance, metadata=metadata,
                        laterality=parse_laterality(_laterality_in_name(p.name)))


def _laterality_in_name(name: str) -> str | None:
    m = re.search(r"(?<![A-Za-z])(OD|OS)(?![A-Za-z])", name)
    return m.group(1) if m else None


def read_optovue(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    """An Optovue ``.oct`` (float32 frames) with its ``.txt`` filespec, through OCT-Converter's POCT reader."""
    readers, notes = _readers(), []
    with _quiet(notes), read_errors(p, f"cannot be read as an Optovue .oct file with its filespec "
                                    f"{p.with_suffix('.txt').name}"):
        volumes = readers.POCT(p).read_oct_volume()
    if not volumes:
        raise OCTReadError(f"{p}: its filespec {p.with_suffix('.txt').name} lists no scan (no 'Scan Length' and "
                           "'Scan Usage' lines)")
    bscans, intensity = to_unit_range(_stack(volumes[0].volume, p), str(p))
    metadata = {"intensity": intensity, "reader": "OCT-Converter POCT",
                "spacing_source": "the Optovue filespec gives no B-scan spacing that OCT-Converter reads: pixel units"}
    if len(volumes) > 1:
        metadata["scans_note"] = f"the file holds {len(volumes)} scans: the first is used"
    if notes:
        metadata["reader_notes"] = notes
    return build_volume(source, "optovue-oct", bscans, None, None, None, unit="pixel", bscan_distance=bscan_distance,
                        metadata=metadata, laterality=parse_laterality(volumes[0].laterality or None))
