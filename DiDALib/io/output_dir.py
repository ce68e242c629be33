"""Output folders that lose nothing: every DiDA write of a folder goes through ``staged_output``.

The rules, in one place (the ``dida`` command and the Slicer module both follow them):

- A new folder is written beside its destination (``.NAME.dida-staging-RUNID``) and moved into place only when it is
  complete, by a rename that fails if the destination appeared meanwhile; so a failed, cancelled or interrupted
  run leaves nothing, and a concurrent writer is never overwritten (the loser keeps its result beside it).
- Replacing an existing folder (``force``) is allowed only for a DiDA result exactly as DiDA wrote it (its
  ``run.json`` lists every file in it with the size and SHA-256 each had at sealing, and every file still has
  them: ``proof``), and never for a folder that holds, lies above or lies inside a protected path (the input,
  the model package, the current folder).
- A lock file beside the destination (``.NAME.dida-lock``, held with an OS file lock that dies with its process)
  keeps two runs from writing the same folder: the second is refused before it computes anything. It records the
  random id of the run that holds it.
- What a killed run (SIGKILL, a power cut) left is removed by the next run in that folder, once it holds the
  lock, by proof (``proof``): only the staging entries named with the id the lock recorded, a folder only when
  the marker DiDA wrote into it says that id; the interrupted replacement of an old result is undone. Anything
  merely named like DiDA's is left alone, with a note.
- Folders are created with the user's umask; missing parent folders that a failed run created are removed.

Single files (an export from Slicer) go through ``new_file``: written beside, moved into place, never replacing
a file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..footprint import size_text
from .no_replace import rename_noreplace
from .proof import MARKER, carries_marker, new_run_id, read_record, run_id_of, unproven, write_marker
from .signals import Interrupted, signals_deferred

RUN_FILE = "run.json"
RUN_FORMAT = "dida-run/1"
#: The files a DiDA run writes (a result written before ``run.json`` listed its files is recognised by these).
RESULT_PATTERNS = tuple(re.compile(p) for p in (
    r"volume\.nrrd", r"DiDA_.+_(label|net)\.nrrd", r"DiDA-RedBlue\.ctbl", r"scores\.csv", r"dida_results\.npz",
    r"run\.json", r"figures/dida_view_bscan\d+\.png",
))
_TAGGED = re.compile(r"^\.(?P<base>.+)\.dida-(?P<tag>staging|old)-(?P<run>[0-9a-f]{16}|\d+)$")
_LOCKED = re.compile(r"^\.(?P<base>.+)\.dida-lock$")
_LEGACY = re.compile(r"^\.(?P<base>.+)\.partial-[A-Za-z0-9_]{8}$")  # staging folders of dida 0.1 (no lock)

log = logging.getLogger(__name__)


class OutputFolderError(ValueError):
    """An output folder that cannot be used (refused before anything is computed or written)."""


class OutputTaken(FileExistsError):
    """The destination appeared while the run computed; the run's complete result was kept at ``kept``."""

    def __init__(self, message: str, kept: Path):
        super().__init__(message)
        self.kept = kept


@dataclass(frozen=True)
class OutputPlan:
    """Where a run will write: ``path`` (absolute), and ``kind``: 'new', 'empty' (an empty folder) or 'replace'
    (a DiDA result, with force)."""

    path: Path
    kind: str


def _real(p: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(p))))


def _under(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def foreign_files(folder: Path) -> list[str] | None:
    """The entries of ``folder`` DiDA did not write (relative paths), or None when it is no DiDA result at all
    (no ``run.json`` written by dida)."""
    try:
        run = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(run, dict):
        return None
    if run.get("format") == RUN_FORMAT and isinstance(run.get("files"), list):
        listed = {str(f) for f in run["files"]} | {RUN_FILE}
        ours = lambda rel: rel in listed
    elif "format" not in run and "dida_version" in run and "masked_images_per_bscan" in run:
        ours = lambda rel: any(p.fullmatch(rel) for p in RESULT_PATTERNS)
    else:
        return None
    foreign = []
    for root, dirs, files in os.walk(folder):  # symbolic links to folders are listed in dirs, not followed
        for name in dirs + files:
            full = Path(root) / name
            rel = full.relative_to(folder).as_posix()
            if full.is_symlink() or (name in files and not ours(rel)) or (name in dirs and not any(full.iterdir())):
                foreign.append(rel)
    return sorted(foreign)


def _shown(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_output(out: str | os.PathLike, force: bool = False, protect: Iterable[str | os.PathLike] = (),
                 what: str = "the output folder", unsealed: bool = False) -> OutputPlan:
    """Check a destination folder before anything is computed (writes nothing); raises ``OutputFolderError``
    naming ``what`` (e.g. '--out') and the fix. ``protect``: paths that must stay untouched (the input, the model
    package); the current folder is always protected. ``unsealed``: the folder is to be continued by its own
    writer (an audit's ``--resume``), not replaced: its files must all be DiDA's, but they changed since sealing."""
    text = os.fspath(out)
    if not str(text).strip():
        raise OutputFolderError(f"{what} is empty (an unset variable?): give the name of a new folder")
    absolute = Path(os.path.abspath(text))
    for above in reversed(absolute.parents):
        if above.exists() and not above.is_dir():
            raise OutputFolderError(f"{what} {text}: {above} is a file, not a folder: choose a folder path")
    if absolute.is_symlink():
        raise OutputFolderError(f"{what} {text} is a symbolic link: give the folder it points to, or a new name")
    real = _real(absolute)
    cwd = _real(os.getcwd())
    if _under(cwd, real):
        raise OutputFolderError(f"{what} {text} is the current folder or lies above it: give a new folder name, "
                                "e.g. results")
    for p in protect:
        q = _real(p)
        if _under(q, real):
            raise OutputFolderError(f"{what} {text} holds {p}, which this run reads: choose a new folder outside it")
        if q.is_dir() and _under(real, q):
            raise OutputFolderError(f"{what} {text} lies inside {p}, which this run reads (DiDA never writes into "
                                    "its input): choose a folder outside it")
    if not real.exists():
        return OutputPlan(real, "new")
    if not real.is_dir():
        raise OutputFolderError(f"{what} {text} exists and is a file: choose a folder name")
    if os.path.ismount(real):
        raise OutputFolderError(f"{what} {text} is a mount point: give a new folder inside it")
    if not any(real.iterdir()):
        return OutputPlan(real, "empty")
    cli = what.startswith("--")  # an option of the dida command, or a folder the Slicer module names
    if not force:
        raise OutputFolderError(f"{what} {text} already holds files: choose another folder, or "
                                f"{'add --force' if cli else 'allow replacing it'} to replace an earlier DiDA result")
    foreign = foreign_files(real)
    if foreign is None:
        raise OutputFolderError(f"{what} {text} is not a DiDA result (it has no run.json written by dida), so "
                                f"{'--force' if cli else 'DiDA'} will not replace it: choose another folder")
    if foreign:
        raise OutputFolderError(f"{what} {text} is a DiDA result but also holds files dida did not write "
                                f"({_shown(foreign)}): move them out, or choose another folder")
    changed = [] if unsealed else changed_files(real)
    if changed:
        raise OutputFolderError(f"{what} {text} is a DiDA result whose files are not as dida wrote them "
                                f"({_shown(changed)}: changed since, or no fingerprint in its run.json), so "
                                f"{'--force' if cli else 'DiDA'} will not replace it: move it away, or choose "
                                "another folder")
    return OutputPlan(real, "replace")


def changed_files(folder: Path) -> list[str]:
    """The files of a DiDA result (``foreign_files`` found none foreign) whose size or SHA-256 differ from what its
    ``run.json`` recorded when it was sealed, or that it recorded no fingerprint for (``proof.unproven``)."""
    try:
        run = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return [RUN_FILE]
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and not p.is_symlink() and p.name != RUN_FILE)
    return unproven(folder, run if isinstance(run, dict) else {}, files)


def _base(name: str) -> str:
    """A folder name as the stem of its hidden siblings: a long one shortened (with a hash) to fit 255 bytes."""
    if len(name.encode()) <= 150:
        return name
    return name.encode()[:120].decode(errors="ignore") + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]


def hidden_sibling(out: Path, tag: str) -> Path:
    """``.NAME.dida-TAG`` beside ``out``."""
    return out.parent / f".{_base(out.name)}.dida-{tag}"


def _keep_beside(path: Path, out: Path) -> Path:
    """Move ``path`` to the first free ``NAME-2``, ``NAME-3``, ... beside ``out``; the new path."""
    for n in range(2, 10000):
        target = out.with_name(f"{out.name}-{n}")
        try:
            rename_noreplace(path, target)
            return target
        except FileExistsError:
            continue
    raise OutputTaken(f"{out}: no free name beside it for this run's result; it is in {path}", path)


def _free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


# -- the lock ---------------------------------------------------------------------------------------------------


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _acquire(lock: Path) -> int | None:
    """The open, OS-locked lock file, or None when a live process holds it (the lock dies with its process)."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        if not _try_lock(fd):
            os.close(fd)
            return None
        try:  # the holder before us may have unlinked the file between our open and our lock: then retry
            st, own = os.stat(lock), os.fstat(fd)
            if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _release(lock: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(lock)  # while still held, so nobody locks a file that is about to vanish
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(lock)  # Windows cannot unlink an open file


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        since = time.strftime("%H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {int(info['pid'])} on {info['host']}, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its lock file is " + str(lock)


def _lock(out: Path, what: str) -> tuple[Path, int, str | None]:
    """Hold the lock of destination ``out`` (to be given back with ``_release``), or refuse: another run has it.
    Also the id of the run that held it last (a killed run's, whose debris may be removed): None if none."""
    lock = hidden_sibling(out, "lock")
    fd = _acquire(lock)
    if fd is None:
        raise OutputFolderError(f"another dida run ({_holder(lock)}) is writing {what} {out}: wait for it to "
                                "finish, or choose another folder")
    return lock, fd, run_id_of(read_record(fd))


def _claim(fd: int, out: Path, run_id: str) -> None:
    """Record this run (and its id) in the lock it holds: written before it stages anything."""
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "name": out.name, "run": run_id}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(info).encode())
    os.fsync(fd)


# -- what killed runs left behind ---------------------------------------------------------------------------------


def _recover(out: Path, note: Callable[[str], None], killed: str | None,
             restore: bool = True) -> None:
    """Remove what the killed run ``killed`` (the id its lock record names; the caller holds that lock) left for
    ``out``: its staging folder (with its marker) or file, and undo a replacement it left half done (the old result
    moved aside, the new one not yet in place); without ``restore`` (the destination's name is not known for sure)
    such an old result is only named. Entries merely named like DiDA's are left alone, with a note."""
    stage_prefix = hidden_sibling(out, "staging-").name
    old_prefix = hidden_sibling(out, "old-").name
    for entry in sorted(out.parent.iterdir()):
        m = _TAGGED.match(entry.name)
        if not m or not entry.name.startswith((stage_prefix, old_prefix)):
            continue
        ours = killed is not None and m["run"] == killed
        if m["tag"] == "staging":
            is_folder = entry.is_dir() and not entry.is_symlink()
            if ours and (carries_marker(entry, killed) if is_folder else entry.is_file()):
                shutil.rmtree(entry, ignore_errors=True) if is_folder else entry.unlink(missing_ok=True)
                note(f"removed {entry}, the staging {'folder' if is_folder else 'file'} of a dida run that was killed")
            else:
                note(f"left {entry} as it is: it is named like a dida staging folder, but nothing proves that dida "
                     "wrote it; delete it yourself if it is no longer needed")
        elif not ours or not restore:
            note(f"{entry} is an earlier result that a killed dida run may have moved aside: rename it back")
        elif not out.exists() and not out.is_symlink():
            rename_noreplace(entry, out)
            note(f"put the earlier result back in {out}: a dida run replacing it was killed")
        elif foreign_files(entry) == [] and not changed_files(entry):
            shutil.rmtree(entry, ignore_errors=True)  # the replacement was complete: the old result had been due to go
        else:
            note(f"{entry} is an earlier result that a killed dida run had moved aside: look at it, then delete it")


def recover_folder(folder: Path, note: Callable[[str], None], skip: str = "") -> None:
    """Clean up after killed runs of other destinations in ``folder`` (those whose lock nobody holds; ``skip``
    names the caller's own), and name staging folders left by dida 0.1, which had no lock."""
    names: dict[str, str] = {}
    for entry in folder.iterdir():
        m = _TAGGED.match(entry.name) or _LOCKED.match(entry.name)
        if m:
            names.setdefault(m["base"], entry.name)
        elif _LEGACY.match(entry.name) and entry.is_dir():
            note(f"{entry} is an interrupted run's partial output from an older dida: delete it when no dida run "
                 "is writing there")
    for base in names:
        if base == _base(skip):
            continue
        out = folder / base  # the destination itself when its name was not shortened
        lock = hidden_sibling(out, "lock")
        fd = _acquire(lock)
        if fd is None:
            continue  # a live run owns these
        try:
            _recover(out, note, run_id_of(read_record(fd)), restore=False)
        finally:
            _release(lock, fd)


# -- staging and the final move -----------------------------------------------------------------------------------


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, deepest first."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _commit(stage: Path, plan: OutputPlan, old: Path) -> None:
    """Move the complete ``stage`` to ``plan.path`` without ever replacing what another writer put there."""
    out = plan.path
    try:
        if plan.kind == "empty":
            os.rmdir(out)  # fails if something was written into it meanwhile
        elif plan.kind == "replace":
            if foreign_files(out) != [] or changed_files(out):
                raise FileExistsError(out)
            rename_noreplace(out, old)
        rename_noreplace(stage, out)
    except OSError as exc:
        if not isinstance(exc, FileExistsError) and exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise  # "taken" is EEXIST or ENOTEMPTY; anything else (a full disk, a lost drive) is a real failure
        kept = _keep_beside(stage, out)
        extra = ""
        if plan.kind == "replace" and old.exists():
            extra = f"; the earlier result is in {_keep_beside(old, out)}"
        raise OutputTaken(f"{out} was written by another program while this run was computing; nothing there was "
                          f"touched, and this run's complete result is in {kept}{extra}", kept) from None
    if plan.kind == "replace":
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_output(out: str | os.PathLike, force: bool = False, protect: Iterable[str | os.PathLike] = (),
                  need_bytes: int = 0, what: str = "the output folder",
                  note: Callable[[str], None] | None = None) -> Iterator[Path]:
    """A staging folder that becomes ``out`` only if the block completes (the rules are in the module docstring).

    Refuses (``OutputFolderError``) what ``check_output`` refuses, a destination another run is writing, and one
    whose disk has less than ``need_bytes`` free; all before the block runs. Raises ``OutputTaken`` if the
    destination was created by another program meanwhile (the result is kept beside it). ``note`` hears about
    debris of killed runs that was removed (default: the logging module).
    """
    note = note or log.warning
    protect = tuple(protect)
    plan = check_output(out, force, protect, what)
    parent = plan.path.parent
    created: list[Path] = []
    lock = stage = None
    done = False
    run_id = new_run_id()
    try:
        with signals_deferred(), _writable(parent, what):  # what exists is always known, so cleaned up
            created = _make_parents(parent)
            *lock, killed = _lock(plan.path, what)
        _recover(plan.path, note, killed)
        recover_folder(parent, note, skip=plan.path.name)
        plan = check_output(out, force, protect, what)  # again, now that no other dida run can change it
        with signals_deferred(), _writable(parent, what):
            _claim(lock[1], plan.path, run_id)  # the proof first, then what it proves
            stage = hidden_sibling(plan.path, f"staging-{run_id}")
            os.mkdir(stage)
            write_marker(stage, run_id)
        free = _free_bytes(stage)
        if need_bytes > free:
            raise OutputFolderError(f"{what} {out} needs about {size_text(need_bytes)} but only {size_text(free)} "
                                    "are free on its disk: free some space, or choose a folder on another disk")
        yield stage
        committed = False
        try:
            with signals_deferred():
                (stage / MARKER).unlink()  # a result never carries it
                _commit(stage, plan, hidden_sibling(plan.path, f"old-{run_id}"))
                committed = True
        except Interrupted as exc:  # a stop signal held back during the move: the result may be whole
            exc.written = plan.path if committed else None
            raise
        done = True
    finally:
        with signals_deferred():
            if stage is not None and not done:
                shutil.rmtree(stage, ignore_errors=True)  # gone already if it was moved into place or beside
            if lock is not None:
                _release(*lock)
            if not done:
                _remove_created(created)


def _remove_created(created: list[Path]) -> None:
    for p in created:  # only what this run created, and only while empty
        with contextlib.suppress(OSError):
            p.rmdir()


@contextlib.contextmanager
def _writable(folder: Path, what: str) -> Iterator[None]:
    """An OS refusal to create files in ``folder`` as an ``OutputFolderError`` naming the folder and the fix."""
    try:
        yield
    except (PermissionError, OSError) as exc:
        if isinstance(exc, (FileExistsError, OutputFolderError)) or exc.errno not in (
                errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC):
            raise
        raise OutputFolderError(f"{what}: cannot write in {folder} ({exc.strerror}): choose a folder you can write "
                                "to") from None


@contextlib.contextmanager
def new_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside ``path`` that becomes ``path`` when the block completes, refusing to replace any
    existing file (``FileExistsError``, nothing changed): for single-file exports."""
    target = Path(os.path.abspath(os.fspath(path)))
    if target.exists() or target.is_symlink():
        raise FileExistsError(f"{target} exists: DiDA does not overwrite files; choose another name")
    tmp = hidden_sibling(target, f"staging-{new_run_id()}")
    try:
        yield tmp
        with signals_deferred():
            rename_noreplace(tmp, target)
    except BaseException:
        with signals_deferred(), contextlib.suppress(OSError):
            tmp.unlink()
        raise
