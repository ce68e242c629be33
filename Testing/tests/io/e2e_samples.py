"""Tiny Heidelberg ``.e2e`` files written with eyepy's own E2E structures (``eyepy.io.he.e2e_format``): the
version and main headers, one chunk of folder headers, and the data containers eyepy's reader needs for a series
(laterality, enface modality, a localizer) and for each B-scan (its header, its image and one layer)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

BSCAN_IMAGE, LOCALIZER_IMAGE = 35652097, 33620481  # Type1073741824 image kinds


def ufloat16(codes: np.ndarray) -> np.ndarray:
    """E2E's unsigned 16-bit float (6-bit exponent, bias 63; 10-bit mantissa) as eyepy decodes it."""
    codes = np.asarray(codes, np.uint32)
    return ((1 + (codes & 0x3FF) / 1024) * np.power(2.0, (codes >> 10).astype(np.float64) - 63)).astype(np.float32)


def _image(kind: int, pixels: bytes, height: int, width: int, n_values: int) -> bytes:
    return struct.pack("<5I", len(pixels), kind, n_values, height, width) + pixels


def write_e2e(path: Path, codes: np.ndarray, positions_deg, *, pattern: int, scale_y: float = 0.0039,
              laterality: str = "OD") -> Path:
    """An E2E file of one series: B-scans given as E2E float16 codes (n, depth, width), each at its
    (start_x, start_y, end_x, end_y) in degrees; ``pattern`` is the scan pattern (2 circle, 3 volume, 5 radial)."""
    from eyepy.io.he import e2e_format as f

    n, h, w = codes.shape
    side = f.LateralityEnum.OD if laterality == "OD" else f.LateralityEnum.OS
    lat = f.type11_format.parse(bytes(27))
    lat.laterality = side
    items = [  # (slice id, ind, type, data); slice -1 is the series itself
        (-1, 0, 11, f.type11_format.build(lat)),
        (-1, 0, 9007, f.type9007_format.build(f.Type9007(n_strings=2, string_size=256, text=["Infra-Red", "IR"]))),
        (-1, 0, 1073741824, _image(LOCALIZER_IMAGE, bytes(16 * 16), 16, 16, 16 * 16)),
    ]
    for k in range(n):
        meta = f.type10004_format.parse(bytes(428))
        sx, sy, ex, ey = positions_deg[k]
        meta.size_y, meta.size_x, meta.start_x, meta.start_y, meta.end_x, meta.end_y = h, w, sx, sy, ex, ey
        meta.scale_y, meta.imgSizeWidth, meta.n_bscans, meta.aktImage, meta.scan_pattern = scale_y, w, n, k, pattern
        meta.center_x, meta.center_y = (sx + ex) / 2, (sy + ey) / 2
        items.append((2 * k, 1, 10004, f.type10004_format.build(meta)))
        pixels = np.ascontiguousarray(codes[k], "<u2").tobytes()
        items.append((2 * k, 1, 1073741824, _image(BSCAN_IMAGE, pixels, h, w, h * w)))
        layer = struct.pack("<5I", 0, 0, 0, w, 0) + np.full(w, h / 4, "<f4").tobytes()  # one layer (ILM), no padding
        items.append((2 * k, 1, 10019, layer))

    def header(entries: int, current: int) -> bytes:
        return f.header_format.build(f.Header(magic2="MDbMDir", version=100, unknown0=[0] * 10, num_entries=entries,
                                              current=current, prev=0, unknown1=0))

    chunk = f.version_format.sizeof() + f.header_format.sizeof()
    folders_at = chunk + f.header_format.sizeof()
    pos = folders_at + f.folderheader_format.sizeof() * len(items)
    folders, containers = b"", b""
    for i, (slice_id, ind, kind, data) in enumerate(items):
        ids = dict(patient_id=1, study_id=1, series_id=1, slice_id=slice_id, ind=ind, type=f.TypesEnum(kind))
        here = folders_at + f.folderheader_format.sizeof() * i
        folders += f.folderheader_format.build(f.FolderHeader(pos=here, start=pos, size=len(data), unknown0=0,
                                                              unknown1=0, unknown3=0, **ids))
        containers += f.containerheader_format.build(f.ContainerHeader(
            magic3="MDbData", unknown0=0, header_pos=here, pos=pos + f.containerheader_format.sizeof(),
            size=len(data), unknown1=0, unknown2=0, unknown3=0, **ids)) + data
        pos += f.containerheader_format.sizeof() + len(data)
    version = f.version_format.build(f.Version(name="CMDb", version=100, unknown0=[0] * 10))
    path.write_bytes(version + header(len(items), 0) + header(len(items), chunk) + folders + containers)
    return path
