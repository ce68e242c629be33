"""Proof, not names, that DiDA wrote something it is about to delete or replace (``output_dir``'s rules use these).

- **A run's id.** Each run that writes a folder draws a random id, records it in the destination's lock file
  before it stages anything, names its staging folder (or file) with it, and writes it into a marker file inside
  its staging folder. A later run that holds the lock reads the record the killed run left, and removes only the
  staging entries named with that id, a folder only when its marker says that id too: a user's folder named
  ``.mydata.dida-staging-1`` is never touched.
- **A result's fingerprint.** ``run.json`` records, at sealing, the size and SHA-256 of every file of the result;
  ``--force`` replaces a result only while every file still matches (a file someone edited, or one listed in
  ``run.json`` by hand, stops it).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

#: The marker file inside a staging folder: its content is the run's id. Removed before the folder becomes the
#: result, so a result never carries it.
MARKER = ".dida-run"
#: The ``run.json`` field of the files' fingerprints: {relative path: [size, sha256 hex]}.
HASHES_FIELD = "file_hashes"
_CHUNK = 1 << 20


def new_run_id() -> str:
    """A run's random id (16 hex digits: no two runs share one)."""
    return secrets.token_hex(8)


def write_marker(stage: Path, run_id: str) -> None:
    """Mark a staging folder as this run's (written first, before anything else goes in)."""
    with open(stage / MARKER, "x", encoding="ascii") as f:
        f.write(run_id)


def carries_marker(folder: Path, run_id: str) -> bool:
    """Whether ``folder`` is a real folder (not a link) whose marker names ``run_id``."""
    marker = folder / MARKER
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
        return False
    try:
        with open(marker, encoding="ascii") as f:
            return f.read(64) == run_id
    except (OSError, UnicodeDecodeError):
        return False


def read_record(fd: int) -> dict:
    """The record a lock file holds (what the last run that held it wrote), or {} when there is none."""
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, min(size, 65536), 0) if hasattr(os, "pread") else b""
        record = json.loads(data.decode("utf-8")) if data else {}
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def run_id_of(record: dict) -> str | None:
    """The run id a lock record names, when it is one DiDA writes (16 hex digits)."""
    value = record.get("run")
    return value if isinstance(value, str) and len(value) == 16 and all(c in "0123456789abcdef" for c in value) \
        else None


def fingerprint(path: Path) -> list:
    """[size, sha256 hex] of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return [size, digest.hexdigest()]


def fingerprints(folder: Path, names: Iterable[str]) -> dict[str, list]:
    """The fingerprints of files of ``folder`` (relative '/' paths), for ``run.json``."""
    return {name: fingerprint(folder / name) for name in names}


def unproven(folder: Path, run: dict, names: Iterable[str]) -> list[str]:
    """The files among ``names`` (relative paths in ``folder``) whose size or SHA-256 differ from what ``run``
    (``run.json``) recorded at sealing, or that it recorded nothing for."""
    recorded = run.get(HASHES_FIELD)
    if not isinstance(recorded, dict):
        return sorted(names)
    changed = []
    for name in names:
        want = recorded.get(name)
        path = folder / name
        try:
            if not (isinstance(want, list) and len(want) == 2) or path.stat().st_size != want[0] \
                    or fingerprint(path) != want:
                changed.append(name)
        except OSError:
            changed.append(name)
    return sorted(changed)
