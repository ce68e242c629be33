"""The ONNX export cache: a model package's exported graph, kept in the user's cache folder so that it is made once.

An entry is ``<key>.onnx`` and ``<key>.json`` in ``<cache>/onnx/``; the key is a hash of everything the export
depends on (the package's content, the input shape, torch's version, the exporter), and the JSON records the
SHA-256 of the ONNX file as it was written. An entry is used only when its record names this key and the file's
hash matches: a truncated, corrupt or foreign file is never opened, and is rebuilt. Both files are written to a
temporary name and renamed (atomic on one file system), the ONNX file first, so a killed run leaves no entry half
written (its temporary file goes with the next export, once an hour old). Nothing in the folder is code: an ONNX graph holds standard operators only, and the probe (``probe.py``)
checks every graph against torch on every run before it is used.

The folder is ``DIDA_CACHE_DIR`` when set (the tests point it at a temporary folder), else
``$XDG_CACHE_HOME/dida`` or ``~/.cache/dida``. It may be deleted at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path

from ..io.files import open_regular, read_regular

CACHE_ENV = "DIDA_CACHE_DIR"
#: Bumped whenever what an entry holds changes meaning.
ENTRY_FORMAT = "dida-onnx-cache/1"
#: The most bytes an entry's record can hold (it holds a few lines).
MAX_RECORD = 1 << 20
#: An entry is read only as the plain file DiDA wrote: never through a link, never a pipe or device.
_ENTRY_FIX = "DiDA writes its cache entries as plain files; delete the cache folder and the export is made again"


def cache_folder() -> Path:
    """Where DiDA keeps what it can make again (the ONNX exports), by the platform's convention."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dida"


def _sha256(path: Path, follow: bool = True) -> str:
    """The file's SHA-256; a regular file only (a pipe or device is refused, never read), not through a symbolic
    link unless ``follow``."""
    h = hashlib.sha256()
    with open_regular(path, "the file", _ENTRY_FIX, follow=follow) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_digest(folder: str | Path) -> str:
    """A hash of a model package's content: every file's path and bytes (model.json, the weights, the code of a
    ``python:`` package, its examples), so that any change makes a new cache key."""
    root = Path(folder)
    root = root if root.is_dir() else root.parent
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(_sha256(path).encode() + b"\0")
    return h.hexdigest()


def entry_key(**parts) -> str:
    """The cache key of an export: a hash of what it depends on (plain JSON values)."""
    text = json.dumps({"format": ENTRY_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class OnnxCache:
    """Entries in one cache folder (``cache_folder() / "onnx"`` by default)."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else cache_folder() / "onnx"

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.folder / f"{key}.onnx", self.folder / f"{key}.json"

    def get(self, key: str) -> Path | None:
        """The ONNX file of ``key`` if its entry is whole and its hash is the one recorded; None otherwise (missing,
        unreadable, corrupt or stale entries are not trusted: the caller makes the export again). Either file
        that is not the plain file DiDA wrote (a link, a named pipe, a device) is no entry and is never read."""
        onnx_path, record_path = self._paths(key)
        try:
            record = json.loads(read_regular(record_path, "the cache record", _ENTRY_FIX, MAX_RECORD, follow=False))
            if record.get("format") != ENTRY_FORMAT or record.get("key") != key:
                return None
            return onnx_path if _sha256(onnx_path, follow=False) == record.get("sha256") else None
        except (OSError, ValueError, AttributeError):
            return None

    def put(self, key: str, data: bytes, about: dict | None = None) -> Path:
        """Write the ONNX bytes of ``key`` and their record, each atomically; returns the ONNX file. Raises OSError
        when the folder cannot be written (the caller then runs the export from memory)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._sweep()
        onnx_path, record_path = self._paths(key)
        _write_atomic(onnx_path, data)
        record = {"format": ENTRY_FORMAT, "key": key, "sha256": hashlib.sha256(data).hexdigest(),
                  "bytes": len(data), **(about or {})}
        _write_atomic(record_path, (json.dumps(record, indent=1) + "\n").encode())
        return onnx_path


    def _sweep(self, age: float = 3600.0) -> None:
        """Remove this cache's temporary files that a killed run left (an hour old: no run still writes them), by
        ``_write_atomic``'s whole name pattern and as plain files only: other hidden files are not DiDA's."""
        now = time.time()
        for tmp in [*self.folder.glob(".*.onnx.*.tmp"), *self.folder.glob(".*.json.*.tmp")]:
            try:
                st = tmp.lstat()
                if stat.S_ISREG(st.st_mode) and now - st.st_mtime > age:
                    tmp.unlink()
            except OSError:
                pass


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
