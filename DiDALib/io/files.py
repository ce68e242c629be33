"""Opening a file DiDA did not write: a regular file only (a named pipe would block for ever, ``/dev/zero`` never
ends, a folder is no file), with a bound on its size where DiDA reads it whole, and, inside a folder someone else
made (a result folder), never through a symbolic link.

Every refusal is a ``FileRefused`` (a ``ValueError``: bad input) naming the path, what it is instead and the fix;
callers pass their own error class where their callers expect one (``ModelPackageError``).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..footprint import size_text

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO to read would wait for a writer
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_BINARY = getattr(os, "O_BINARY", 0)


class FileRefused(ValueError):
    """A file DiDA will not read: not a regular file, too large, or reached through a symbolic link."""


def special_kind(mode: int) -> str | None:
    """What a file of this mode is when it is not a regular file ("a named pipe (FIFO)", "a folder", ...)."""
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def check_regular(path: str | os.PathLike, what: str, fix: str, error: type[Exception] = FileRefused,
                  max_bytes: int | None = None) -> os.stat_result:
    """The status of ``path`` (symbolic links followed: the caller's own file), refused with ``error`` unless it
    is a regular file of at most ``max_bytes``; reads nothing, so a FIFO is never opened."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: {what} does not exist: {fix}") from None
    _check_status(st, path, what, fix, error, max_bytes)
    return st


def _check_status(st: os.stat_result, path, what: str, fix: str, error: type[Exception], max_bytes: int | None) -> None:
    kind = special_kind(st.st_mode)
    if kind:
        raise error(f"{path}: {what} is {kind}, not a file: {fix}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{path}: {what} is {size_text(st.st_size)}, more than the {size_text(max_bytes)} such a file "
                    f"can be: {fix}")


def _open_fd(name, flags: int, dir_fd: int | None, path, what: str, fix: str, error: type[Exception]) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd) if dir_fd is not None else os.open(name, flags)
    except FileNotFoundError:
        raise error(f"{path}: {what} does not exist: {fix}") from None
    except IsADirectoryError:
        raise error(f"{path}: {what} is a folder, not a file: {fix}") from None
    except OSError as exc:
        if _NOFOLLOW and exc.errno in (40, 62):  # ELOOP (Linux; 62 on macOS): the last part is a symbolic link
            raise error(f"{path}: {what} is a symbolic link: DiDA reads a received folder's own files only, never "
                        f"what a link points to; {fix}") from None
        if exc.errno == 20:  # ENOTDIR: a part of the path is a file or a link to one
            raise error(f"{path}: a part of its path is not a folder: {fix}") from None
        raise


@contextlib.contextmanager
def open_regular(path: str | os.PathLike, what: str, fix: str, max_bytes: int | None = None,
                 error: type[Exception] = FileRefused, follow: bool = True) -> Iterator[BinaryIO]:
    """``path`` opened for reading, checked on the open file (no race with a swap): a regular file of at most
    ``max_bytes``; without ``follow``, refused if it is a symbolic link."""
    if not follow and not _NOFOLLOW and os.path.islink(path):  # no O_NOFOLLOW (Windows): the link itself is asked
        raise error(f"{path}: {what} is a symbolic link: DiDA reads a received folder's own files only; {fix}")
    fd = _open_fd(path, os.O_RDONLY | _NONBLOCK | _BINARY | (0 if follow else _NOFOLLOW), None, path, what, fix,
                  error)
    with _fd_file(fd, path, what, fix, error, max_bytes) as f:
        yield f


@contextlib.contextmanager
def _fd_file(fd: int, path, what: str, fix: str, error: type[Exception], max_bytes: int | None) -> Iterator[BinaryIO]:
    try:
        _check_status(os.fstat(fd), path, what, fix, error, max_bytes)
        if _NONBLOCK and hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def read_regular(path: str | os.PathLike, what: str, fix: str, max_bytes: int, error: type[Exception] = FileRefused,
                 follow: bool = True) -> bytes:
    """The whole of a regular file of at most ``max_bytes`` (``open_regular``), read to at most that many bytes
    even if it grows meanwhile."""
    with open_regular(path, what, fix, max_bytes, error, follow) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise error(f"{path}: {what} grew past {size_text(max_bytes)} while it was read: {fix}")
    return data


@contextlib.contextmanager
def open_inside(folder: str | os.PathLike, relative: str, what: str, fix: str, max_bytes: int | None = None,
                error: type[Exception] = FileRefused) -> Iterator[BinaryIO]:
    """The file ``relative`` (a '/'-separated path inside ``folder``) opened for reading without following a
    symbolic link at any step below ``folder`` (``O_NOFOLLOW`` on each part; where the OS lacks it, each part's
    own status and the resolved path are checked), a regular file of at most ``max_bytes``."""
    parts = [p for p in relative.split("/") if p]
    path = Path(folder, *parts)
    if not parts or any(p in (".", "..") for p in parts):
        raise error(f"{path}: {what} is not a plain path inside {folder}: {fix}")
    if not (_NOFOLLOW and _DIRECTORY and os.open in os.supports_dir_fd):
        _check_inside_by_status(Path(folder), parts, what, fix, error)
        with open_regular(path, what, fix, max_bytes, error) as f:
            yield f
        return
    fd = _open_fd(folder, os.O_RDONLY | _DIRECTORY, None, folder, "the folder", fix, error)
    try:
        for part in parts[:-1]:
            inner = _open_fd(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, fd, path, what, fix, error)
            os.close(fd)
            fd = inner
        last = _open_fd(parts[-1], os.O_RDONLY | _NONBLOCK | _NOFOLLOW, fd, path, what, fix, error)
    finally:
        os.close(fd)
    with _fd_file(last, path, what, fix, error, max_bytes) as f:
        yield f


def _check_inside_by_status(folder: Path, parts: list[str], what: str, fix: str, error: type[Exception]) -> None:
    here = folder
    for part in parts:
        here = here / part
        if here.is_symlink():
            raise error(f"{here}: {what} is reached through a symbolic link: DiDA reads a received folder's own "
                        f"files only; {fix}")
    real, base = Path(os.path.realpath(here)), Path(os.path.realpath(folder))
    if base not in real.parents:
        raise error(f"{here}: {what} lies outside {folder}: {fix}")

