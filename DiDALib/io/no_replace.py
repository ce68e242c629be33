"""A rename that never replaces its destination, atomically where the OS offers it.

``os.rename`` silently replaces an existing file, and on POSIX even an existing *empty* folder, so a check before
it leaves a window in which another process's result is lost. Linux has ``renameat2(RENAME_NOREPLACE)`` and macOS
``renamex_np(RENAME_EXCL)``; Windows' rename already fails when the destination exists. Elsewhere (or on a file
system that lacks the flag) the check and the rename are two steps, and the lock of ``output_dir`` is what keeps
other dida runs out of that window.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import sys
from pathlib import Path

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1  # Linux
_RENAME_EXCL = 0x4  # macOS


@functools.lru_cache(maxsize=1)
def _native():
    """The OS's no-replace rename as ``f(src: bytes, dst: bytes) -> int`` (0 or -1 with errno), or None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if sys.platform.startswith("linux"):
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            return lambda s, d: fn(_AT_FDCWD, s, _AT_FDCWD, d, _RENAME_NOREPLACE)
        if sys.platform == "darwin":
            fn = libc.renamex_np
            fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
            return lambda s, d: fn(s, d, _RENAME_EXCL)
    except (OSError, AttributeError):  # no such symbol (an old C library)
        pass
    return None


def rename_noreplace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename ``src`` (a file or folder) to ``dst``; ``FileExistsError`` if ``dst`` exists, nothing changed."""
    s, d = os.fsencode(Path(src)), os.fsencode(Path(dst))
    native = None if os.name == "nt" else _native()
    if native is not None:
        if native(s, d) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), os.fsdecode(d))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # the file system does not know the flag
            raise OSError(err, os.strerror(err), os.fsdecode(s), None, os.fsdecode(d))
    if os.path.lexists(d):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(d))
    os.rename(s, d)
