"""Tiny vendor files written with OCT-Converter's own binary structures (Topcon FDA/FDS, Bioptigen) or in the raw
layout its reader expects (Zeiss .img, Optovue .oct with its filespec), so that what it reads back is known.

No real file of these vendors may be shipped here; the tests check the whole path from those bytes through
OCT-Converter to our volume (pixels, orientation, spacing, laterality, errors).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def _chunk(name: bytes, data: bytes) -> bytes:
    """A Topcon chunk: name length (u8), name, size (u32), data."""
    return bytes([len(name)]) + name + struct.pack("<I", len(data)) + data


def _topcon(kind: str, scan: bytes, *, x_mm: float, y_mm: float, z_um: float, eye: int, scan_mode: int) -> bytes:
    from oct_converter.readers.binary_structs import fds_binary as b

    header = b.header.build(dict(file_code="FOCT", file_type=kind, major_ver=1, minor_ver=0))
    param = b.param_scan_04_header.build(dict(fixation=0, mirror_pos=0, polar=0, x_dimension_mm=x_mm,
                                              y_dimension_mm=y_mm, z_resolution_um=z_um, comp_eff_2=0.0,
                                              comp_eff_3=0.0, base_pos=0, used_calib_data=0))
    capture = b.capture_info_02_header.build(dict(eye=eye, scan_mode=scan_mode, session_id=1, label="test",
                                                  cap_date=[2020, 1, 2, 3, 4, 5]))
    return header + scan + _chunk(b"@PARAM_SCAN_04", param) + _chunk(b"@CAPTURE_INFO_02", capture) + b"\x00"


def write_fds(path: Path, bscans: np.ndarray, *, x_mm=6.0, y_mm=6.0, z_um=2.6, eye=0, scan_mode=2) -> Path:
    """A Topcon .fds: uint16 B-scans (n, depth, width) in an IMG_SCAN_03 chunk (eye 0 = right, 1 = left)."""
    from oct_converter.readers.binary_structs import fds_binary as b

    n, h, w = bscans.shape
    header = b.oct_header.build(dict(scan_mode=scan_mode, width=w, height=h, bits_per_pixel=16, number_slices=n,
                                     format=0, size=n * h * w * 2))
    # The reader reshapes (width, height, n) in Fortran order: the A-scan index runs fastest, as in C (n, h, w).
    scan = _chunk(b"@IMG_SCAN_03", header + np.ascontiguousarray(bscans, dtype="<u2").tobytes())
    path.write_bytes(_topcon("FDS", scan, x_mm=x_mm, y_mm=y_mm, z_um=z_um, eye=eye, scan_mode=scan_mode))
    return path


def write_fda(path: Path, bscans: np.ndarray, *, x_mm=6.0, y_mm=6.0, z_um=3.5, eye=1, scan_mode=2) -> Path:
    """A Topcon .fda: uint8 B-scans as lossless JPEG 2000 images in an IMG_JPEG chunk, as the devices write."""
    from oct_converter.readers.binary_structs import fda_binary as b

    n, h, w = bscans.shape
    body = b.oct_header.build(dict(scan_mode=scan_mode, unknown1=0, unknown2=0, width=w, height=h, number_slices=n,
                                   unknown3=0))
    for k in range(n):
        buf = io.BytesIO()
        Image.fromarray(np.asarray(bscans[k], np.uint8)).save(buf, "JPEG2000", irreversible=False)
        body += struct.pack("<i", len(buf.getvalue())) + buf.getvalue()
    path.write_bytes(_topcon("FDA", _chunk(b"@IMG_JPEG", body), x_mm=x_mm, y_mm=y_mm, z_um=z_um, eye=eye,
                             scan_mode=scan_mode))
    return path


def write_cirrus_img(folder: Path, bscans: np.ndarray, protocol: str = "Macular Cube", eye: str = "OD") -> Path:
    """A Zeiss Cirrus raw .img named as Cirrus names exports; uint8 B-scans (n, 1024, A-scans) laid out as
    OCT-Converter's IMG reader reads them ((rows, cols, n) in Fortran order)."""
    n, _, cols = bscans.shape
    path = folder / f"P1234_{protocol} {cols}x{n}_1-2-2020_3-4-5_{eye}_sn1234_{'cube' if 'Cube' in protocol else 'lines'}_raw.img"
    path.write_bytes(np.moveaxis(np.asarray(bscans, np.uint8), 0, -1).tobytes(order="F"))
    return path


def _field(key: str, data: bytes) -> bytes:
    k = key.encode()
    return struct.pack("<I", len(k)) + k + struct.pack("<I", len(data)) + data


def write_bioptigen(path: Path, bscans: np.ndarray, *, scan_type=1, length_mm=3.0, depth_mm=1.5, across_mm=2.0,
                    repeats=1) -> Path:
    """A Bioptigen .oct (the layout of OCT-Converter's ``boct_binary``): uint16 B-scans (n, depth, A-scans), each
    stored A-scan by A-scan; ``repeats`` copies of each (the second and later ones offset by 7)."""
    n, depth, ascans = bscans.shape
    i32, f64 = (lambda v: struct.pack("<I", v)), (lambda v: struct.pack("<d", v))
    header = struct.pack("<IH", 0x7F4C5F46, 0x0101) + _field("FRAMEHEADER", b"")  # a key with no data
    header += b"".join([
        _field("FRAMECOUNT", i32(n * repeats)), _field("LINECOUNT", i32(ascans)), _field("LINELENGTH", i32(depth)),
        _field("SAMPLEFORMAT", i32(2)), _field("DESCRIPTION", b"test"), _field("XMIN", f64(0.0)),
        _field("XMAX", f64(length_mm)), _field("XCAPTION", b"mm"), _field("YMIN", f64(0.0)),
        _field("YMAX", f64(depth_mm)), _field("YCAPTION", b"mm"), _field("SCANTYPE", i32(scan_type)),
        _field("SCANDEPTH", f64(depth_mm)), _field("SCANLENGTH", f64(length_mm)), _field("AZSCANLENGTH", f64(length_mm)),
        _field("ELSCANLENGTH", f64(across_mm)), _field("OBJECTDISTANCE", f64(0.0)), _field("SCANANGLE", f64(0.0)),
        _field("SCANS", i32(repeats)), _field("FRAMES", i32(n)), _field("DOPPLERFLAG", i32(0)),
        _field("CONFIG", b"\x00" * 8), i32(0),
    ])  # fmt: skip
    frames = b""
    for k in range(n):
        for r in range(repeats):
            pixels = np.ascontiguousarray(bscans[k].T, dtype="<u2") + 7 * r  # A-scan by A-scan
            frames += (_field("FRAMEDATA", b"")
                       + _field("FRAMEDATETIME", struct.pack("<8H", 2020, 1, 4, 2, 3, 4, 5, 0))
                       + _field("FRAMETIMESTAMP", f64(0.0)) + _field("FRAMELINES", i32(ascans))
                       + _field("FRAMESAMPLES", b"")[:-4] + struct.pack("<I", pixels.nbytes)
                       + pixels.tobytes() + i32(0))
    path.write_bytes(header + frames)
    return path


def write_optovue(path: Path, bscans: np.ndarray, eye: str = "OS") -> Path:
    """An Optovue .oct (float32 frames) and its .txt filespec, in the layout of OCT-Converter's POCT reader."""
    n, depth, width = bscans.shape
    raw = np.concatenate([np.rot90(np.asarray(b, np.float32), k=-1).ravel() for b in bscans])
    path.write_bytes(raw.astype("<f4").tobytes())
    path.with_suffix(".txt").write_text(
        f"Eye Scanned = {eye}\nWindow Height = {depth}\nScan Length = {width}\nScan Usage = {n}\n", encoding="latin-1"
    )
    return path
