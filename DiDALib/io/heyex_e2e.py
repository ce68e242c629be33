"""Heidelberg Heyex ``.e2e`` files through eyepy, first readable series. E2E stores no lateral scale: it is derived
as eyepy and Heyex do, from the scan angle and a medium eye length; approximate, and said so in ``metadata``.

A circle or radial series (which eyepy's ``EyeVolume`` refuses) is read from the series' B-scans with the same
display transform, as a stack of B-scans (``OCTVolume.geometry``) with each B-scan's A-scan spacing along its
circle or line from its start and end positions (degrees, times the same mm-per-degree factor; the circle's
centre is its end, the convention of Heyex's VOL export, which no real E2E circle file here has confirmed).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

from .common import build_volume, check_magic, parse_laterality, plain, read_errors, short_error
from .heyex import GEOMETRY, HEIDELBERG_BSCAN_ORDER, MM_PER_DEGREE, eyepy_data, path_spacing, quiet_eyepy
from .volume import OCTReadError, OCTVolume, bscan_stack


def _stack_series(s) -> SimpleNamespace:
    """A circle or radial series in the shape of an EyeVolume: display data and meta."""
    from eyepy.core.utils import from_e2e_intensity

    meta = s.get_meta()
    return SimpleNamespace(data=from_e2e_intensity(s.get_bscans()), meta=meta)


def _e2e_eyevolume(p: Path) -> tuple[object, int, int, list[str]]:
    """The first readable series of an E2E file: (EyeVolume, or the data and meta of a circle or radial series;
    series count, index used, skipped notes)."""
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
            try:
                return (_stack_series(s) if pattern in GEOMETRY else s.get_volume()), len(series), index, skipped
            except Exception as e:
                skipped.append(f"series {index}: {e.__class__.__name__}: {short_error(e, 120)}")
    raise OCTReadError(
        f"{p}: none of its {len(series)} series is a readable OCT scan"
        + (f" ({'; '.join(skipped)})" if skipped else "")
        + ": the file may be damaged or hold only fundus images; export the scan again"
    )


def _e2e_laterality(meta) -> str | None:
    """eyepy gives an E2E series' laterality as its byte's value: '82' ('R') or '76' ('L')."""
    value = meta.get("laterality") if hasattr(meta, "get") else None
    return {"82": "OD", "76": "OS"}.get(str(value)) or parse_laterality(value)


def _e2e_stack(source: str, ev, bscans, metadata: dict, bscan_distance: float | None) -> OCTVolume:
    bscan_meta = ev.meta["bscan_meta"]
    pattern = int(bscan_meta[0]["scan_pattern"])
    positions = [[float(m[k]) for k in ("start_x", "start_y", "end_x", "end_y")] for m in bscan_meta]
    ascans = [int(m["imgSizeWidth"]) if int(m.get("imgSizeWidth", 0)) > 0 else bscans.shape[2] for m in bscan_meta]
    spacing, how = path_spacing(pattern, positions, ascans[0], scale=MM_PER_DEGREE)
    axial = _e2e_spacing(bscan_meta, bscans.shape[2])[1]
    usable = axial is not None and spacing and all(math.isfinite(v) and v > 0 for v in spacing)
    metadata.update({
        "spacing_source": (f"derived (approximate): A-scan spacing along each B-scan's path from its start/end "
                           f"positions (deg) x {MM_PER_DEGREE} mm/deg: {how}; axial: the B-scan header's scale_y"
                           if usable else "E2E stores no usable scale here: pixel units"),
        "spacing_approximate": bool(usable),
        "bscan_positions_deg": positions,
    })
    return bscan_stack(source, "heyex-e2e", bscans, GEOMETRY[pattern], spacing if usable else None,
                       axial if usable else 1.0, metadata=metadata, unit="mm" if usable else "pixel",
                       laterality=_e2e_laterality(ev.meta), bscan_distance=bscan_distance)


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


def read_heyex_e2e(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    check_magic(p, 0, (b"CMDb",), "a Heidelberg .e2e export")
    with quiet_eyepy() as notes:
        with read_errors(p, "cannot be parsed as a Heidelberg .e2e file", ": it may be truncated or damaged"):
            ev, n_series, used, skipped = _e2e_eyevolume(p)
            bscans, intensity = eyepy_data(ev, str(p))
    bscan_meta = ev.meta["bscan_meta"]
    metadata = {
        "intensity": "eyepy 'e2e' display transform (log, as for VOL) to uint8, then / 255",
        "bscan_order": HEIDELBERG_BSCAN_ORDER,
        "e2e_series_count": n_series,
        "e2e_series_used": used,
    }
    if skipped:
        metadata["e2e_series_skipped"] = skipped
    if notes:
        metadata["reader_warnings"] = notes
    if int(bscan_meta[0]["scan_pattern"]) in GEOMETRY:
        return _e2e_stack(source, ev, bscans, metadata, bscan_distance)
    lateral, axial, distance, how = _e2e_spacing(bscan_meta, bscans.shape[2])
    unit = "mm" if lateral is not None and axial is not None else "pixel"
    metadata["spacing_source"] = how if unit == "mm" else "E2E stores no usable scale here: pixel units"
    metadata["spacing_approximate"] = unit == "mm"
    if unit == "mm":
        metadata["scan_angle_deg"] = plain(abs(float(bscan_meta[0]["end_x"]) - float(bscan_meta[0]["start_x"])))
    return build_volume(
        source, "heyex-e2e", bscans, lateral, axial, distance if unit == "mm" else None,
        unit=unit, bscan_distance=bscan_distance, metadata=metadata,
        laterality=_e2e_laterality(ev.meta), missing="the B-scan centres do not differ",
    )
