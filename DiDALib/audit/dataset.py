"""The items of an audit: every B-scan of a dataset, with its label where the dataset gives one.

A dataset is one of:

- a folder with one subfolder per label (the common ImageFolder layout): every readable file below a label folder
  is a source; files beside the label folders (a README, a manifest) are not items;
- a CSV file of ``path,label`` rows (a header row ``path,label`` is optional, the label column too; paths relative
  to the CSV's folder);
- a folder of OCT files without label folders (every file a source, unlabelled).

A source is an image file (one item, read only when explained: 84,000 files are listed without opening them) or an
OCT file (``io.registry``: one item per B-scan; read once at listing to count them). A source that cannot be read
at listing is still an item: it is recorded as failed with the reason, and the audit goes on.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.common import natural_key
from ..io.files import special_kind
from ..io.images import IMAGE_EXTENSIONS
from ..io.registry import SUPPORTED_EXTENSIONS

#: Single-image extensions (one item each, unless a TIFF has several pages).
_SINGLE = tuple(e for e in IMAGE_EXTENSIONS)
_LIST_LIMIT = 5_000_000  # items; a listing beyond this is refused (a wrong folder, e.g. /)


class DatasetError(ValueError):
    """A dataset that cannot be audited (one sentence naming the problem and the fix)."""


@dataclass(frozen=True)
class Item:
    """One B-scan to explain: ``id`` (unique, stable: the path relative to the dataset, ``#bNNN`` for a B-scan of a
    multi-B-scan file), the file, the B-scan's index in it, the label (None: unknown) and, for a source that
    failed at listing, why."""

    id: str
    path: str
    bscan: int
    label: str | None
    error: str | None = None


def _suffix(name: str) -> str:
    low = name.lower()
    return ".nii.gz" if low.endswith(".nii.gz") else os.path.splitext(low)[1]


def _readable(name: str) -> bool:
    return not name.startswith(".") and _suffix(name) in SUPPORTED_EXTENSIONS


def _walk(folder: Path) -> list[Path]:
    """Readable files below ``folder``, in natural order, without following links to folders."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)
        found.extend(Path(root) / f for f in sorted(files, key=natural_key) if _readable(f)
                     and os.path.isfile(os.path.join(root, f)))  # a named pipe or device is no B-scan
        if len(found) > _LIST_LIMIT:
            raise DatasetError(f"{folder} holds more than {_LIST_LIMIT:,} files: give the dataset's own folder")
    return found


def _source_items(path: Path, rel: str, label: str | None) -> list[Item]:
    """The items of one source file: one for a single image, one per B-scan for an OCT file or multi-page TIFF."""
    suffix = _suffix(path.name)
    try:
        if suffix in _SINGLE:
            if suffix not in (".tif", ".tiff"):
                return [Item(rel, str(path), 0, label)]
            from ..io.images import open_pil

            with open_pil(path) as im:
                n = int(getattr(im, "n_frames", 1))
        else:
            from ..io.registry import load_oct

            n = load_oct(path).n_bscans
    except (OSError, ValueError) as exc:  # OCTReadError is a ValueError
        return [Item(rel, str(path), 0, label, " ".join(str(exc).split()))]
    if n == 1:
        return [Item(rel, str(path), 0, label)]
    return [Item(f"{rel}#b{i:03d}", str(path), i, label) for i in range(n)]


def _image_folder(folder: Path, labels: list[Path]) -> list[Item]:
    items: list[Item] = []
    for sub in labels:
        for f in _walk(sub):
            items.extend(_source_items(f, f.relative_to(folder).as_posix(), sub.name))
    return items


def _csv_items(table: Path) -> list[Item]:
    try:
        with open(table, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{table} cannot be read as a CSV of path,label rows ({exc}): give a UTF-8 CSV") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["path"], ["path", "label"]):
        rows = rows[1:]
    base = table.parent
    items: list[Item] = []
    for n, row in enumerate(rows, start=1):
        if len(row) > 2:
            raise DatasetError(f"{table} row {n} has {len(row)} columns: each row is path or path,label")
        rel = row[0].strip()
        label = row[1].strip() or None if len(row) > 1 else None
        p = Path(rel) if os.path.isabs(rel) else base / rel
        if not p.is_file():
            items.append(Item(rel, str(p), 0, label, f"{p}: no such file (row {n} of {table.name})"))
            continue
        items.extend(_source_items(p, rel, label))
    return items


def list_items(data: str | os.PathLike) -> tuple[list[Item], str]:
    """Every item of a dataset and the layout found: ``image-folder``, ``csv`` or ``oct-files``."""
    root = Path(os.path.abspath(os.fspath(data)))
    if not root.exists():
        raise DatasetError(f"{data}: no such file or folder: give a folder with one subfolder per label, a CSV of "
                           "path,label rows, or a folder of OCT files")
    kind = special_kind(root.stat().st_mode)
    if kind not in (None, "a folder"):  # opening a named pipe would block for ever
        raise DatasetError(f"{data} is {kind}, not a dataset: give a folder with one subfolder per label, a CSV of "
                           "path,label rows, or a folder of OCT files")
    if root.is_file():
        if _suffix(root.name) != ".csv":
            raise DatasetError(f"{data} is a file, not a dataset: give a folder with one subfolder per label, a CSV "
                               "of path,label rows, or a folder of OCT files (dida explain explains one file)")
        items, layout = _csv_items(root), "csv"
    else:
        subs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                      key=lambda d: natural_key(d.name))
        labels = [d for d in subs if any(True for _ in _walk(d))]
        if labels:
            items, layout = _image_folder(root, labels), "image-folder"
        else:
            files = sorted((f for f in root.iterdir() if f.is_file() and _readable(f.name)),
                           key=lambda f: natural_key(f.name))
            items = [it for f in files for it in _source_items(f, f.name, None)]
            layout = "oct-files"
    if not items:
        raise DatasetError(f"{data} holds no B-scans: expected images ({', '.join(_SINGLE)}) or OCT files in one "
                           "subfolder per label, a CSV of path,label rows, or OCT files")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise DatasetError(f"{data} names {', '.join(twice)} more than once: give each B-scan once")
    return items, layout


def sample_items(items: Sequence[Item], n: int | None, seed: int = 0) -> list[Item]:
    """``n`` items drawn without replacement, stratified by label (each label's share kept, by largest remainder,
    every label at least one while n allows), reproducible from ``seed``; all items when ``n`` is None or not
    smaller. The result keeps the listing's order."""
    if n is None or n >= len(items):
        return list(items)
    if n < 1:
        raise DatasetError(f"--sample {n}: give a positive number of B-scans")
    rng = np.random.default_rng(seed)
    groups: dict[str | None, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(it.label, []).append(i)
    keys = sorted(groups, key=lambda k: ("" if k is None else k))
    sizes = np.array([len(groups[k]) for k in keys], dtype=np.float64)
    quota = sizes * n / sizes.sum()
    take = np.floor(quota).astype(int)
    if n >= len(keys):
        take = np.maximum(take, 1)
    while take.sum() > n:  # the minimum of one per label overshot: trim the largest
        take[int(np.argmax(take - quota))] -= 1
    order = np.argsort(-(quota - take), kind="stable")
    for j in order[: n - int(take.sum())]:
        take[j] += 1
    chosen: list[int] = []
    for k, t in zip(keys, take):
        members = groups[k]
        chosen.extend(members[j] for j in rng.choice(len(members), size=int(min(t, len(members))), replace=False))
    return [items[i] for i in sorted(chosen)]


class ItemReader:
    """Reads items' B-scans; the last OCT file read is kept, so the B-scans of one file, listed together, read it
    once."""

    def __init__(self):
        self._last: tuple[str, object] | None = None

    def __call__(self, item: Item) -> np.ndarray:
        """The item's B-scan as display intensities (depth, width) float32 in [0, 1]; ``OCTReadError`` (a
        ValueError naming the file) when it cannot be read."""
        from ..io.registry import load_oct
        from ..io.volume import OCTReadError

        if item.error:
            raise OCTReadError(item.error)
        if self._last is not None and self._last[0] == item.path:
            volume = self._last[1]
        else:
            volume = load_oct(item.path)
            self._last = (item.path, volume) if volume.n_bscans > 1 else None
        if not 0 <= item.bscan < volume.n_bscans:
            raise OCTReadError(f"{item.path}: has {volume.n_bscans} B-scan(s), B-scan {item.bscan} is gone: the file "
                               "changed since the audit began")
        return np.ascontiguousarray(volume.bscans[item.bscan], dtype=np.float32)
