"""The audit folder (``--out``): the rules of every DiDA folder (``io.output_dir``), made resumable.

- A new audit's folder is made through ``staged_output``: its plan (``audit.sqlite`` with the settings and every
  item) and ``run.json`` are written in a staging folder and moved into place whole, so a failed start leaves
  nothing; it never replaces a folder DiDA did not write, and ``--force`` replaces only a DiDA folder (its
  ``run.json`` lists every file in it).
- Then the audit runs under the folder's lock (the ``.NAME.dida-lock`` of ``output_dir``: a second audit of the
  same folder is refused), adding records to ``audit.sqlite`` as they arrive (``store``: a transaction per batch).
  A stopped audit leaves a folder that ``--resume`` continues; without ``--resume`` it is refused, never
  overwritten.
- The final files (``audit.html``, ``summary.json``, ``results.csv``) are each written beside and renamed into
  place, replacing only DiDA's own earlier file; ``run.json`` is rewritten last, listing every file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from .. import __version__
from ..io.no_replace import rename_noreplace
from ..io.output_dir import (
    RUN_FILE,
    RUN_FORMAT,
    OutputFolderError,
    _claim,
    _lock,
    _recover,
    _release,
    check_output,
    hidden_sibling,
    staged_output,
)
from ..io.proof import HASHES_FIELD, fingerprints, new_run_id
from ..io.signals import signals_deferred
from .dataset import Item
from .store import STORE_FILE, AuditStore

AUDIT_KIND = "dida-audit"
PAGE_FILE = "audit.html"
SUMMARY_FILE = "summary.json"
TABLE_FILE = "results.csv"
#: Every file an audit may hold (a listed file that is missing harms nothing; SQLite's journal exists only while a
#: batch is written, or after a kill until the store is next opened).
OWN_FILES = (STORE_FILE, f"{STORE_FILE}-journal", PAGE_FILE, SUMMARY_FILE, TABLE_FILE)


def read_audit(folder: str | os.PathLike) -> dict | None:
    """The ``run.json`` of an audit folder, or None when ``folder`` is no audit. Read as a result's is (a received
    folder: its own regular file, not through a link, bounded), so that ``dida view`` asking first never blocks on a
    pipe or fails on JSON nested past the recursion limit; the result reader then says what is wrong."""
    from ..io.files import open_inside
    from ..io.result_reading import MAX_RUN_BYTES

    try:
        with open_inside(folder, RUN_FILE, RUN_FILE, "give a folder that dida audit wrote", MAX_RUN_BYTES) as f:
            run = json.loads(f.read(MAX_RUN_BYTES + 1).decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # refused files, undecodable text and JSON are ValueErrors
        return None
    return run if isinstance(run, dict) and run.get("kind") == AUDIT_KIND else None


def prepare(out: str | os.PathLike, resume: bool, force: bool, protect: Iterable[str | os.PathLike],
            what: str = "--out") -> str:
    """Whether ``out`` starts a new audit ('new') or continues one ('resume'); checked before anything is loaded
    (``OutputFolderError`` naming the fix otherwise)."""
    path = Path(os.path.abspath(os.fspath(out)))
    run = read_audit(path) if path.is_dir() and not path.is_symlink() else None
    if run is not None:
        # continued only where one could be written, and only while every file in it is DiDA's (its store has
        # changed since run.json was sealed: that is what a resumed audit continues)
        check_output(out, True, protect, what, unsealed=resume)
        if resume:
            return "resume"
        if not force:
            raise OutputFolderError(f"{what} {out} holds an audit already: add --resume to continue it, or --force "
                                    "to start it again from nothing")
    check_output(out, force, protect, what)
    return "new"


def _run_record(settings: dict, finished: bool, files: Sequence[str], hashes: dict | None = None) -> dict:
    record = {"format": RUN_FORMAT, "kind": AUDIT_KIND, "dida_version": __version__, "finished": finished,
              "settings": settings, "files": sorted(set(files))}
    if hashes is not None:  # the files' fingerprints at sealing: --force replaces the audit only while they hold
        record[HASHES_FIELD] = hashes
    return record


def create(out: str | os.PathLike, force: bool, protect: Iterable[str | os.PathLike], settings: dict,
           items: Sequence[Item], need_bytes: int, note: Callable[[str], None], what: str = "--out") -> Path:
    """A new audit folder holding the plan, moved into place whole; its path."""
    with staged_output(out, force, protect, need_bytes, what, note) as stage:
        AuditStore.create(stage / STORE_FILE, settings, items).close()
        (stage / RUN_FILE).write_text(json.dumps(_run_record(settings, False, OWN_FILES), indent=2) + "\n",
                                      encoding="utf-8")
    return Path(os.path.abspath(os.fspath(out)))


@contextlib.contextmanager
def locked(folder: Path, note: Callable[[str], None], what: str = "--out") -> Iterator[str]:
    """Hold the audit folder's lock (refused while another dida run holds it), clean up what a killed earlier
    write of its final files left beside them (by proof: the run id its lock recorded, ``io.proof``), and record
    this run's id in the lock; yields that id, which names this run's files written beside (``write_own``)."""
    lock, fd, killed = _lock(folder, what)
    try:
        for name in (*OWN_FILES, RUN_FILE):
            _recover(folder / name, note, killed)
        run_id = new_run_id()
        _claim(fd, folder, run_id)
        yield run_id
    finally:
        _release(lock, fd)


def write_own(folder: Path, name: str, write: Callable[[Path], object], run_id: str) -> None:
    """Write ``name`` into the audit folder (whose lock the run ``run_id`` holds) through ``write(temporary
    path)``, replacing only a file DiDA wrote (``run.json`` lists it)."""
    run = read_audit(folder) or {}
    target = folder / name
    listed = name in run.get("files", []) or (name == RUN_FILE and bool(run))
    if (target.exists() or target.is_symlink()) and not (listed and target.is_file() and not target.is_symlink()):
        raise OutputFolderError(f"{target} exists and was not written by dida: move it away and run the audit again "
                                "with --resume")
    tmp = hidden_sibling(target, f"staging-{run_id}")
    try:
        write(tmp)
        with signals_deferred():
            if target.exists():
                os.replace(tmp, target)
            else:
                rename_noreplace(tmp, target)
    finally:
        with signals_deferred(), contextlib.suppress(OSError):
            tmp.unlink()


def seal(folder: Path, settings: dict, finished: bool, run_id: str) -> None:
    """Rewrite ``run.json`` (atomically): whether the audit is finished, every file it holds (files that ``dida
    view --item`` added stay listed, with the fingerprints they were added with) and the fingerprints of its own."""
    run = read_audit(folder) or {}
    files = {*run.get("files", []), *OWN_FILES}
    earlier = run.get(HASHES_FIELD) if isinstance(run.get(HASHES_FIELD), dict) else {}
    own = [name for name in OWN_FILES if (folder / name).is_file() and not (folder / name).is_symlink()]
    hashes = {**{k: v for k, v in earlier.items() if k not in OWN_FILES}, **fingerprints(folder, own)}
    record = _run_record(settings, finished, sorted(files), hashes)
    write_own(folder, RUN_FILE, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8"),
              run_id)
