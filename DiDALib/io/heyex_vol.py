"""Heidelberg Heyex ``.vol`` exports through eyepy: the header's ``scale_x``, ``scale_y`` and ``distance`` (mm).

Circle and radial scans (patterns 2 and 5, which eyepy's ``EyeVolume`` refuses) are read from eyepy's parsed file
with the same display transform, as a stack of B-scans (``OCTVolume.geometry``): each B-scan's A-scan spacing
along its circle or line from its start and end positions, the axial spacing from the header.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .common import build_volume, check_magic, parse_laterality, plain, read_errors
from .heyex import (
    GEOMETRY,
    HEIDELBERG_BSCAN_ORDER,
    VOL_SCAN_PATTERNS,
    bscan_positions,
    eyepy_data,
    localizer,
    path_spacing,
    quiet_eyepy,
)
from .volume import OCTReadError, OCTVolume, bscan_stack, to_unit_range

INTENSITY = ("eyepy 'vol' display transform of the raw reflectivity: "
             "uint8 = clip((log(x + 2.44e-4) + 8.3) / 8.285, 0, 1) * 255 (invalid pixels 0), then / 255")


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
        with read_errors(p, "the .vol header was read but its B-scans could not be"):
            if pattern in GEOMETRY:
                from eyepy.core.utils import from_vol_intensity

                raw = np.stack([np.array(b.data, dtype=np.float32) for b in hdr.bscans])
                bscans, _ = to_unit_range(from_vol_intensity(raw), str(p))
                bscan_meta = [dict(start_pos=(b.start_x, b.start_y), end_pos=(b.end_x, b.end_y), quality=b.quality)
                              for b in hdr.bscans]
            else:
                ev = reader.volume
                bscans, _ = eyepy_data(ev, str(p))
                bscan_meta = ev.meta["bscan_meta"]
        fundus = localizer(reader, notes)  # the SLO, for circle and radial scans too
    expected = (int(hdr.n_bscans), int(hdr.size_y), int(hdr.size_x))
    if bscans.shape != expected:
        raise OCTReadError(f"{p}: B-scans of shape {bscans.shape} but the header says {expected}: the file is damaged")
    lateral, axial, distance = float(hdr.scale_x), float(hdr.scale_y), float(hdr.distance)
    unit = "mm" if all(math.isfinite(v) and v > 0 for v in (lateral, axial)) else "pixel"
    metadata = {
        "spacing_source": "VOL header: scale_x (lateral), scale_y (axial), distance (between B-scans), mm",
        "intensity": INTENSITY,
        "bscan_order": HEIDELBERG_BSCAN_ORDER,
        "scan_pattern": pattern,
        "scan_pattern_name": VOL_SCAN_PATTERNS.get(pattern, "unknown"),
        "vol_version": str(hdr.version).strip("\x00 "),
        "exam_time": plain(hdr.exam_time),
        "field_size_deg": plain(hdr.field_size_slo),
        "scan_focus_dpt": plain(hdr.scan_focus),
        "bscan_positions_mm": bscan_positions(bscan_meta),
        "bscan_quality": [plain(m["quality"]) for m in bscan_meta],
    }
    if unit == "pixel":
        metadata["spacing_source"] = f"VOL header scales are not positive ({lateral}, {axial}): pixel units used"
    if notes:
        metadata["reader_warnings"] = notes
    if pattern in GEOMETRY:
        volume = _stack(source, hdr, pattern, bscans, metadata, unit, bscan_distance)
        volume.fundus = fundus
        return volume
    why = f"the VOL header's B-scan distance is {distance:g}" if distance <= 0 else None
    volume = build_volume(
        source, "heyex-vol", bscans, lateral, axial, distance if unit == "mm" else None,
        unit=unit, bscan_distance=bscan_distance, metadata=metadata,
        laterality=parse_laterality(hdr.scan_position), missing=why,
    )
    volume.fundus = fundus
    return volume


def _stack(source: str, hdr, pattern: int, bscans: np.ndarray, metadata: dict, unit: str,
           bscan_distance: float | None) -> OCTVolume:
    """A circle or radial VOL scan as a stack of B-scans with each one's A-scan spacing along its path."""
    spacing, how = path_spacing(pattern, metadata["bscan_positions_mm"], int(hdr.size_x))
    if not spacing or not all(math.isfinite(v) and v > 0 for v in spacing):
        unit = "pixel"  # positions that coincide give no path length
    metadata["spacing_source"] = (f"A-scan spacing along each B-scan's path from its start/end positions (mm): "
                                  f"{how}; axial: VOL header scale_y (mm)")
    metadata["vol_scale_x_mm"] = float(hdr.scale_x)
    return bscan_stack(source, "heyex-vol", bscans, GEOMETRY[pattern], spacing if unit == "mm" else None,
                       float(hdr.scale_y), metadata=metadata, unit=unit, laterality=parse_laterality(hdr.scan_position),
                       bscan_distance=bscan_distance)
