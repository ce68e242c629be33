"""What every OCT reader shares: building the volume (with the B-scan distance placeholder), turning a
third-party reader's exception into an ``OCTReadError``, header bytes, laterality and JSON-friendly metadata."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .volume import OCTReadError, OCTVolume, placeholder_distance


def head_bytes(p: Path, size: int) -> bytes:
    """The first ``size`` bytes of a file (fewer if it is shorter; none if it cannot be read)."""
    try:
        with open(p, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def natural_key(name: str) -> list:
    # "B2" before "B10": digit runs compare as numbers; split() alternates text and digits, so types line up.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def build_volume(
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


def parse_laterality(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    if text in ("OD", "R", "RIGHT") or text.endswith(".OD"):
        return "OD"
    if text in ("OS", "L", "LEFT") or text.endswith(".OS"):
        return "OS"
    return None


def plain(value):
    """A JSON-friendly copy of header values (numpy scalars and tuples become Python numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def short_error(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split()) or e.__class__.__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def read_errors(p: Path, what: str, hint: str = "") -> Iterator[None]:
    """Turn a third-party reader's exception into ``OCTReadError("{p}: {what} (Type: message){hint}")``; our own
    OCTReadErrors pass through unchanged."""
    try:
        yield
    except OCTReadError:
        raise
    except Exception as e:
        raise OCTReadError(f"{p}: {what} ({e.__class__.__name__}: {short_error(e)}){hint}") from e


def check_magic(p: Path, offset: int, magics: tuple[bytes, ...], expected: str) -> None:
    with open(p, "rb") as f:
        f.seek(offset)
        head = f.read(max(len(m) for m in magics))
    if not any(head.startswith(m) for m in magics):
        shown = head[:12]
        raise OCTReadError(f"{p}: is not {expected}: it starts with {shown!r}, expected {magics[0]!r}")


def last_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return short_error(Exception(lines[-1] if lines else e.__class__.__name__), 200)
