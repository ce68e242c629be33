"""Every request line the worker reads, validated before it acts on it, and what the worker may later remove.

A line must be one JSON object (UTF-8, at most ``MAX_LINE`` bytes) with a known ``op`` and fields of the right
types (``protocol``'s ``JobRequest`` says which); a job's ``dir`` must be a folder the session made for it: a
direct child of the worker's ``--home`` named ``job-*``, a real folder (not a symbolic link), this user's own, with
no events file yet (the worker creates it, never through a link). Anything else is a ``BadRequest`` whose message
the worker reports (as an ``error`` event where the job's folder is valid, else on stderr) before it goes on.

The ``Manifest`` is what the worker may remove when its session vanished: the files it wrote or was handed (each
job's events and B-scans file, its own log), recognised by their device and inode, and the job folders and home
folder that hold them, removed only once empty. Nothing else is ever deleted, and nothing is followed.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .protocol import BSCANS_FILE, EVENTS_FILE, PROTOCOL

#: The longest request line read (a job names a few hundred thousand B-scans at most).
MAX_LINE = 16 << 20
JOB_PREFIX = "job-"
OPS = ("job", "cancel", "shutdown")


class BadRequest(ValueError):
    """A request line the worker will not act on; ``folder`` is its job folder when that one is valid."""

    def __init__(self, message: str, folder: Path | None = None):
        super().__init__(message)
        self.folder = folder


@dataclass(frozen=True)
class Request:
    """A validated request: ``op``, the job's ``id`` (job, cancel), its folder and the whole message (job)."""

    op: str
    id: str = ""
    folder: Path | None = None
    message: dict = field(default_factory=dict)


def _text(value, what: str, limit: int = 200) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or len(str(value)) > limit:
        raise BadRequest(f"{what} must be a text of at most {limit} characters, not {str(value)[:40]!r}")
    return str(value)


def parse_line(line: bytes | str, home: Path | None) -> Request | None:
    """The request of one line (None for a blank line), or ``BadRequest`` saying what is wrong with it."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("a request that is not UTF-8 text") from None
    if not line.strip():
        return None
    try:
        msg = json.loads(line)
    except (ValueError, RecursionError):
        raise BadRequest(f"a request that is not JSON: {line[:120]!r}") from None
    if not isinstance(msg, dict):
        raise BadRequest(f"a request that is a JSON {type(msg).__name__}, not an object: {line[:120]!r}")
    op = msg.get("op")
    if op not in OPS:
        raise BadRequest(f"an unknown request {str(op)[:40]!r} (known: {', '.join(OPS)})")
    if op == "shutdown":
        return Request("shutdown")
    job_id = _text(msg.get("id"), "the request's 'id'")
    if op == "cancel":
        return Request("cancel", job_id)
    folder = job_folder(msg.get("dir"), home)
    try:
        _check_job_fields(msg)
    except BadRequest as exc:
        raise BadRequest(str(exc), folder) from None
    return Request("job", job_id, folder, msg)


def _check_job_fields(msg: dict) -> None:
    """The types of a job's fields (the values are checked where they are used: the package, the settings)."""
    model = msg.get("model")
    if not (isinstance(model, dict) and isinstance(model.get("path"), str) and model["path"]
            and isinstance(model.get("trust_code", False), bool)):
        raise BadRequest("the job's 'model' must be {\"path\": \"<package folder>\", \"trust_code\": false}")
    if not isinstance(msg.get("settings", {}), dict):
        raise BadRequest("the job's 'settings' must be an object")
    indices = msg.get("indices", [])
    if not (isinstance(indices, list) and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2 ** 31
                                              for i in indices)):
        raise BadRequest("the job's 'indices' must be a list of B-scan indices (whole numbers >= 0)")
    if not isinstance(msg.get("preview", False), bool):
        raise BadRequest("the job's 'preview' must be true or false")
    if msg.get("protocol") != PROTOCOL:
        raise BadRequest(f"the DiDA module speaks protocol {str(msg.get('protocol'))[:20]} and this worker "
                         f"{PROTOCOL}: restart Slicer after updating DiDA")


def job_folder(value, home: Path | None) -> Path:
    """A job's ``dir`` when it is a folder the session made for this worker (see the module docstring)."""
    if home is None:
        raise BadRequest("this worker was started without --home, so it accepts no job folder")
    if not isinstance(value, str) or not value or "\0" in value or len(value) > 4096:
        raise BadRequest(f"the job's 'dir' must name its folder, not {str(value)[:60]!r}")
    folder = Path(os.path.abspath(value))
    if os.path.realpath(folder.parent) != os.path.realpath(home) or not folder.name.startswith(JOB_PREFIX):
        raise BadRequest(f"the job folder {value[:200]!r} is not a job-* folder directly inside this worker's "
                         f"--home {home}: it is never written or removed")
    try:
        st = os.lstat(folder)
    except OSError:
        raise BadRequest(f"the job folder {folder} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise BadRequest(f"the job folder {folder} is {'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'no folder'}"
                         ": it is never written or removed")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise BadRequest(f"the job folder {folder} belongs to another user: it is never written or removed")
    if os.path.lexists(folder / EVENTS_FILE):
        raise BadRequest(f"the job folder {folder} has an events file already: a job folder is used once")
    return folder


@dataclass
class Manifest:
    """What the worker may remove when its session is gone: files by (device, inode) as it saw them, and the
    folders that hold them (removed only when empty)."""

    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)

    def add_file(self, path: Path, st: os.stat_result) -> None:
        self.files[str(path)] = (st.st_dev, st.st_ino)

    def add_job(self, folder: Path, events_fd: int) -> None:
        """A job the worker accepted: its folder, the events file it created (its open descriptor) and the
        B-scans file the session put there (as it is now, if it is a regular file)."""
        self.add_file(folder / EVENTS_FILE, os.fstat(events_fd))
        try:
            st = os.lstat(folder / BSCANS_FILE)
            if stat.S_ISREG(st.st_mode):
                self.add_file(folder / BSCANS_FILE, st)
        except OSError:
            pass
        if folder not in self.folders:
            self.folders.append(folder)

    def remove(self, home: Path | None, log) -> None:
        """Remove what the manifest lists (a file only if it is still the one it saw, never through a link), the
        job folders once empty, and the home folder once empty; say on ``log`` what was left and why."""
        for path, (dev, ino) in self.files.items():
            try:
                st = os.lstat(path)
                if (st.st_dev, st.st_ino) == (dev, ino) and stat.S_ISREG(st.st_mode):
                    os.unlink(path)
            except OSError:
                continue
        for folder in [*self.folders, *([home] if home is not None else [])]:
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                continue
            except OSError:
                print(f"DiDA worker: left {folder}: it holds files the worker did not write", file=log, flush=True)


    def add_log(self, home: Path | None, log) -> None:
        """The worker's own log (its stderr, a file the session opened in ``home``), found by its identity."""
        try:
            own = os.fstat(log.fileno())
            if home is None or not stat.S_ISREG(own.st_mode):
                return
            for entry in os.scandir(home):
                st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
                    self.add_file(Path(entry.path), st)
        except (OSError, AttributeError, ValueError):
            return
