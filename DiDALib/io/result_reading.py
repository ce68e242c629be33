"""Reading a DiDA result folder that may come from someone else (``dida view``, Slicer's stored results): only the
folder's own files (no symbolic link is followed below it: a link to ``~/.ssh/id_rsa`` must not end up in a page
the user shares), regular files only, each bounded in size or by the memory its header promises, and the fields of
``run.json`` the page uses checked for their types. Every refusal is a ``ValueError`` naming the file and the fix.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..explanation import VolumeExplanation
from .files import FileRefused, open_inside
from .limits import peak_bytes

#: The most ``run.json`` and the fundus figure may weigh: a run's record is kilobytes, its figure a few MB.
MAX_RUN_BYTES = 16_000_000
MAX_FIGURE_BYTES = 64_000_000
FIX = "run dida explain again to make the result"


def check_run_fields(run: Mapping, where: str) -> None:
    """Refuse (``ValueError`` naming the field) a ``run.json`` whose fields the page uses have the wrong types."""
    def bad(field: str, what: str) -> ValueError:
        return ValueError(f"{where}: the field {field!r} is {str(run.get(field))[:60]!r}: it must be {what}; {FIX}")

    for field in ("spacing_mm", "spacing_pixels"):
        if field in run:
            v = run[field]
            if not (isinstance(v, list) and len(v) == 3 and all(_positive(x) for x in v)):
                raise bad(field, "three positive numbers (lateral, axial, B-scan distance)")
    if "contrasts" in run:
        v = run["contrasts"]
        if not (isinstance(v, list) and all(isinstance(e, dict) and isinstance(e.get("classes"), list)
                                            and len(e["classes"]) == 2 and all(isinstance(c, str) for c in e["classes"])
                                            for e in v)):
            raise bad("contrasts", "a list of {\"classes\": [A, B], ...} entries")
    if "contrast_scale" in run and not (_number(run["contrast_scale"]) and run["contrast_scale"] >= 0):
        raise bad("contrast_scale", "a number >= 0")
    for field in ("input", "model_name", "score", "scan_geometry", "enface_on_fundus"):
        if field in run and not isinstance(run[field], str):
            raise bad(field, "a text")
    if "grids" in run and not (isinstance(run["grids"], list) and all(isinstance(g, (int, str)) for g in run["grids"])):
        raise bad("grids", "a list of grid sizes")
    if "demo_model" in run and not isinstance(run["demo_model"], bool):
        raise bad("demo_model", "true or false")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _positive(v) -> bool:
    return _number(v) and v > 0


def read_results_inside(folder: Path, name: str, max_bytes: int | None) -> VolumeExplanation:
    """The results file ``name`` of ``folder``, opened without following links (``results.load_results`` checks
    its arrays from their headers before reading them)."""
    from .results import load_results

    with open_inside(folder, name, "the results file", FIX) as f:
        return load_results(f, max_bytes, str(folder / name))


def read_volume_inside(folder: Path, name: str, max_bytes: int | None) -> np.ndarray:
    """The B-scans (n, depth, width) float32 of the result's NRRD volume: the folder's own regular file (never a
    detached header that names a data file elsewhere), refused from its header when it would not fit in memory."""
    import SimpleITK as sitk

    from ..footprint import Footprint
    from .itk import native_stderr_captured
    from .limits import _sitk_itemsize

    path = folder / name
    with open_inside(folder, name, "the result's volume", FIX) as f:
        header = f.read(65536).split(b"\n\n", 1)[0].lower()
        if not header.startswith(b"nrrd") or b"data file" in header or b"datafile" in header:
            raise FileRefused(f"{path}: is not a NRRD file with its own data (a detached header would read another "
                              f"file): {FIX}")
        # SimpleITK reads by name: on Linux the name of this very open file, so nothing can be swapped in.
        name_to_read = f"/proc/self/fd/{f.fileno()}" if sys.platform.startswith("linux") else str(path)
        reader = sitk.ImageFileReader()
        reader.SetImageIO("NrrdImageIO")
        reader.SetFileName(name_to_read)
        try:
            with native_stderr_captured():
                reader.ReadImageInformation()
                size = [int(v) for v in reader.GetSize()]
                pixels = math.prod(size) * int(reader.GetNumberOfComponents())
                need = peak_bytes(pixels, _sitk_itemsize(reader.GetPixelID()))
                part = f"the volume's {' x '.join(map(str, size))} voxels"
                Footprint({part: need}, {part: FIX}, need).check(max_bytes, f"reading {path}")
                image = reader.Execute()
        except RuntimeError as exc:
            raise FileRefused(f"{path} cannot be read ({' '.join(str(exc).split())[:200]}): {FIX}") from None
    bscans = sitk.GetArrayFromImage(image).astype(np.float32)
    return bscans[None] if bscans.ndim == 2 else bscans


def read_figure_inside(folder: Path, relative: str) -> bytes | None:
    """A figure of the result (a PNG it lists), or None where the folder has none of its own: a link, a folder or a
    file too large is not shown."""
    try:
        with open_inside(folder, relative, "the figure", FIX, MAX_FIGURE_BYTES) as f:
            data = f.read(MAX_FIGURE_BYTES + 1)
    except (FileRefused, OSError):
        return None
    return data if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) <= MAX_FIGURE_BYTES else None


def exists_inside(folder: Path, relative: str) -> bool:
    """Whether ``relative`` is one of the folder's own regular files (no link on the way)."""
    try:
        with open_inside(folder, relative, "the file", FIX):
            return True
    except (FileRefused, OSError):
        return False


