"""Adding a file to an existing DiDA result (``dida view`` writes ``report.html`` into one), by the rules of
``output_dir``: under the result's lock (no ``dida explain --force`` replaces it meanwhile), written beside first
and moved into place whole, listed in ``run.json`` before it appears (so the folder stays a DiDA result that
``--force`` may replace), and never replacing a file DiDA did not write."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from .no_replace import rename_noreplace
from .output_dir import (
    RUN_FILE,
    RUN_FORMAT,
    OutputFolderError,
    _claim,
    _lock,
    _recover,
    _release,
    hidden_sibling,
)
from .proof import HASHES_FIELD, fingerprint, new_run_id, unproven
from .signals import signals_deferred


def read_run(folder: Path, what: str = "the results folder") -> dict:
    """``run.json`` of a DiDA result folder (format ``dida-run/1``), or an ``OutputFolderError`` saying why not:
    the folder's own regular file (not a link), of a sane size."""
    from .files import FileRefused, open_inside
    from .result_reading import MAX_RUN_BYTES

    path = Path(folder) / RUN_FILE
    if not Path(folder).is_dir():
        raise OutputFolderError(f"{what} {folder} is not a folder: give a folder that dida explain wrote")
    if not os.path.lexists(path):
        raise OutputFolderError(f"{what} {folder} has no {RUN_FILE}: give a folder that dida explain wrote")
    try:
        with open_inside(folder, RUN_FILE, RUN_FILE, "give a folder that dida explain wrote", MAX_RUN_BYTES,
                         OutputFolderError) as f:
            run = json.loads(f.read(MAX_RUN_BYTES + 1).decode("utf-8"))
    except (FileRefused, OutputFolderError):
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise OutputFolderError(f"{path} cannot be read ({' '.join(str(exc).split())[:200]}): give a folder that "
                                "dida explain wrote") from None
    if not isinstance(run, dict) or run.get("format") != RUN_FORMAT or not isinstance(run.get("files"), list):
        raise OutputFolderError(f"{path} is not the record of a DiDA run ({RUN_FORMAT}): run dida explain again to "
                                "make a result this dida can read")
    return run


def _write_json(path: Path, data: dict, run_id: str) -> None:
    tmp = hidden_sibling(path, f"staging-{run_id}")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # run.json is DiDA's own file
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def add_result_file(folder: str | os.PathLike, name: str, write: Callable[[Path], object],
                    note: Callable[[str], None], what: str = "the results folder") -> Path:
    """Write ``name`` (a plain file name) into the DiDA result ``folder`` through ``write(temporary path)``; a file
    of that name is replaced only if ``run.json`` lists it with the fingerprint it still has (DiDA wrote it, and
    nobody changed it since). ``run.json`` gains the new file's fingerprint. Returns the file's path."""
    out = Path(os.path.abspath(os.fspath(folder)))
    if out.is_symlink():
        raise OutputFolderError(f"{what} {folder} is a symbolic link: give the folder it points to")
    read_run(out, what)
    target = out / name
    run_id = new_run_id()
    lock, fd, killed = _lock(out, what)
    tmp = hidden_sibling(target, f"staging-{run_id}")
    try:
        for each in (target, out / RUN_FILE):
            _recover(each, note, killed)  # the hidden files of a killed earlier write
        _claim(fd, out, run_id)
        run = read_run(out, what)  # again, under the lock
        listed = name in run["files"]
        if (target.exists() or target.is_symlink()) and not (listed and target.is_file() and not target.is_symlink()):
            raise OutputFolderError(f"{target} exists and was not written by dida: move it away, or write the page "
                                    "elsewhere with --out")
        if target.exists() and unproven(out, run, [name]):
            raise OutputFolderError(f"{target} changed since dida wrote it: move it away, or write the page "
                                    "elsewhere with --out")
        write(tmp)
        with signals_deferred():
            # Listed first: a file run.json names but that is missing (or older) harms nothing but a later --force.
            run["files"] = sorted({*run["files"], name})
            run[HASHES_FIELD] = {**(run.get(HASHES_FIELD) or {}), name: fingerprint(tmp)}
            _write_json(out / RUN_FILE, run, run_id)
            if listed and target.exists():
                os.replace(tmp, target)  # DiDA's own earlier file
            else:
                rename_noreplace(tmp, target)
    finally:
        with signals_deferred(), contextlib.suppress(OSError):
            tmp.unlink()
        _release(lock, fd)
    return target
