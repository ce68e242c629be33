"""NRRD, NIfTI and MetaImage volumes through SimpleITK: the header spacing (x = A-scans, y = depth, z = B-scans)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .common import short_error
from .volume import OCTReadError, OCTVolume

SITK_IO = {
    "nrrd": ("NrrdImageIO", "NRRD"),
    "nifti": ("NiftiImageIO", "NIfTI"),
    "metaimage": ("MetaImageIO", "MetaImage"),
}


def itk_reader(fmt: str, extensions: tuple[str, ...]):
    """The reader of one SimpleITK format (a key of ``SITK_IO``); ``extensions`` name it in errors."""

    def read(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
        import SimpleITK as sitk

        io_name, label = SITK_IO[fmt]
        reader = sitk.ImageFileReader()
        reader.SetImageIO(io_name)  # the extension's reader only: a PNG renamed .nrrd is an error, not a guess
        reader.SetFileName(str(p))
        try:
            with native_stderr_captured() as chatter:
                image = reader.Execute()
        except RuntimeError as e:
            raise OCTReadError(
                f"{p}: is not a readable {label} file (SimpleITK {io_name}: {itk_reason(e, chatter, p)}): expected "
                f"a {label} image ({' '.join(extensions)})"
            ) from e
        volume = OCTVolume.from_sitk(image, source=str(p), format=fmt, bscan_distance=bscan_distance)
        volume.metadata["spacing_source"] = f"{label} header spacing (x lateral, y axial, z B-scan distance), mm"
        return volume

    return read


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Within the block, what native code writes to the process's stderr (ITK's and MetaIO's messages go
    straight to file descriptor 2) is collected into the yielded list instead of reaching the terminal."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(ln.strip() for ln in tmp.read().decode(errors="replace").splitlines() if ln.strip())


#: ITK appends ``Reason: strerror(errno)`` to read errors whatever failed, so after a parse error it reads "Success"
#: or a stale errno; only these reasons are about the file itself.
_FILE_REASONS = {os.strerror(e) for e in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.EIO)}


def itk_reason(error: BaseException, chatter: list[str], path: Path) -> str:
    """ITK's reason for a failed read in a few words: its error line without the object address and the path,
    the native library's own last message, and the system's reason where it is about the file."""
    parts = []
    for line in str(error).splitlines():
        line = line.strip()
        if line.startswith("ITK ERROR:"):
            text = re.sub(r"^ITK ERROR:\s*\w+\(0x[0-9a-fA-F]+\):\s*", "", line).replace(str(path), "")
            parts.append(re.sub(r"\s+", " ", text.replace(" for reading.", "")).strip(" :."))
        elif line.startswith("Reason:") and line.removeprefix("Reason:").strip() in _FILE_REASONS:
            parts.append(line.removeprefix("Reason:").strip())
    if chatter:
        parts.insert(1, chatter[-1])
    return short_error(Exception("; ".join(p for p in parts if p) or type(error).__name__), 200)
