"""What the Heidelberg readers (VOL, XML, E2E through eyepy) share: eyepy kept quiet, its B-scans in [0, 1],
the B-scan positions, the scan patterns, the A-scan spacing of circle and radial scans and Heyex's
angle-to-distance factor."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .common import head_bytes
from .volume import LUMA_WEIGHTS, Fundus, OCTReadError, to_unit_range

HEIDELBERG_BSCAN_ORDER = (
    "as in the file: B-scan 0 is the most inferior (bottom of the SLO/localizer), the index increases superiorly"
)
# Heyex's "medium eye length" conversion from scan angle to retina distance (eyepy MEDIUM_EYE_LENGTH_UM_PER_DEG).
MM_PER_DEGREE = 0.2896
VOL_SCAN_PATTERNS = {0: "unknown", 1: "line", 2: "circle", 3: "volume (ART)", 4: "fast volume", 5: "radial"}
NON_CARTESIAN = {2: "circle", 5: "radial (star)"}
GEOMETRY = {2: "circle", 5: "radial"}  # scan pattern -> OCTVolume.geometry


def looks_like_heyex_xml(p: Path) -> bool:
    return b"<HEDX" in head_bytes(p, 2048)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def quiet_eyepy() -> Iterator[list[str]]:
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


def eyepy_data(ev, where: str) -> tuple[np.ndarray, str]:
    data = np.asarray(ev.data)
    if data.ndim != 3 or min(data.shape) < 1:
        raise OCTReadError(f"{where}: eyepy returned B-scans of shape {data.shape}: expected (n_bscans, depth, width)")
    return to_unit_range(data, where)  # eyepy's display transforms give uint8: "uint8 / 255"


def localizer(ev, notes: list[str]) -> Fundus | None:
    """The fundus image of an eyepy volume or reader (its SLO/NIR localizer, with its mm per pixel), or None with a
    note in ``notes`` when the file has none or it cannot be read: the B-scans never depend on it."""
    try:
        loc = ev.localizer
        image, _ = to_unit_range(np.asarray(loc.data), "the localizer")
        if image.ndim == 3:  # a colour localizer: its luminance, as for B-scans
            image = image[..., :3] @ np.array(LUMA_WEIGHTS, np.float32)
        return Fundus(image, (float(loc.scale_x), float(loc.scale_y)))
    except Exception as e:  # eyepy raises various errors for files without a usable localizer
        notes.append(f"no fundus image ({e.__class__.__name__}: {e})")
        return None


def bscan_positions(bscan_meta) -> list[list[float]]:
    out = []
    for m in bscan_meta:
        try:
            (sx, sy), (ex, ey) = m["start_pos"], m["end_pos"]
            out.append([float(sx), float(sy), float(ex), float(ey)])
        except (KeyError, TypeError, ValueError):
            return []
    return out


def path_spacing(pattern: int, positions: list[list[float]], ascans: int, scale: float = 1.0) -> tuple[list, str]:
    """The A-scan spacing of each circle or radial B-scan from its start and end positions (x scale = mm), and how.

    A circle B-scan's start is a point on the circle and its end the centre (Heyex's convention, as OCTSEG reads
    it): its A-scans go once around, 2 pi r / A-scans apart. A radial B-scan is a line from start to end through
    the centre: |end - start| / (A-scans - 1).
    """
    out = []
    for sx, sy, ex, ey in positions:
        length = math.hypot(ex - sx, ey - sy) * scale
        out.append(2 * math.pi * length / ascans if pattern == 2 else length / max(1, ascans - 1))
    how = ("circle: 2 pi |start - end| / A-scans (start on the circle, end its centre)" if pattern == 2 else
           "radial line: |end - start| / (A-scans - 1)")
    return out, how
