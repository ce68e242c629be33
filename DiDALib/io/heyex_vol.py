"""Heidelberg Heyex ``.vol`` exports through eyepy: the header's ``scale_x``, ``scale_y`` and ``distance`` (mm)."""

from __future__ import annotations

import math
from pathlib import Path

from .common import build_volume, check_magic, parse_laterality, plain, read_errors
from .heyex import HEIDELBERG_BSCAN_ORDER, NON_CARTESIAN, VOL_SCAN_PATTERNS, bscan_positions, eyepy_data, quiet_eyepy
from .volume import OCTReadError, OCTVolume


def read_heyex_vol(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    check_magic(p, 0, (b"HSF-OCT", b"ep-v"), "a Heidelberg .vol export (header 'HSF-OCT-1xx')")
    from eyepy.io import HeVolReader

    with quiet_eyepy() as notes:
        # construct raises StreamError etc. for cut or damaged files
        with read_errors(p, "cannot be parsed as a Heidelberg .vol file",
                         ": it is probably truncated or damaged; copy or export it again"):
            reader = HeVolReader(p)
        hdr = reader.parsed_file
        pattern = int(hdr.scan_pattern)
        if pattern in NON_CARTESIAN:
            raise OCTReadError(
                f"{p}: is a {NON_CARTESIAN[pattern]} scan (VOL scan pattern {pattern}): its B-scans are not a "
                "Cartesian volume; DiDA reads line and volume scans (patterns 0, 1, 3, 4)"
            )
        with read_errors(p, "the .vol header was read but its B-scans could not be"):
            ev = reader.volume
            bscans, intensity = eyepy_data(ev, str(p))
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
        "exam_time": plain(hdr.exam_time),
        "field_size_deg": plain(hdr.field_size_slo),
        "scan_focus_dpt": plain(hdr.scan_focus),
        "bscan_positions_mm": bscan_positions(ev.meta["bscan_meta"]),
        "bscan_quality": [plain(m["quality"]) for m in ev.meta["bscan_meta"]],
    }
    if unit == "pixel":
        metadata["spacing_source"] = f"VOL header scales are not positive ({lateral}, {axial}): pixel units used"
    if notes:
        metadata["reader_warnings"] = notes
    why = f"the VOL header's B-scan distance is {distance:g}" if distance <= 0 else None
    return build_volume(
        source, "heyex-vol", bscans, lateral, axial, distance if unit == "mm" else None,
        unit=unit, bscan_distance=bscan_distance, metadata=metadata,
        laterality=parse_laterality(hdr.scan_position), missing=why,
    )
