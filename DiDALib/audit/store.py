"""The audit's records in one SQLite file (``audit.sqlite``): the plan (settings and every item, fixed when the audit
begins) and one row per finished item, keyed by its id.

Nothing lost, nothing twice: records are added in batches, each batch one transaction (SQLite's rollback journal,
``synchronous=FULL``), so a kill, a power cut or a full disk at any moment leaves every earlier batch whole and no
part of the interrupted one; an item already recorded is never recorded again (``INSERT OR IGNORE`` on its id), so a
result that arrives twice (a retried task, a resumed audit) changes nothing. Arrays are kept as ``.npz`` bytes and
read back without unpickling anything.
"""

from __future__ import annotations

import errno
import io
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .dataset import Item
from .explain import ItemRecord

STORE_FILE = "audit.sqlite"
STORE_FORMAT = "dida-audit/1"
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (ord INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, path TEXT NOT NULL, bscan INTEGER NOT NULL,
                    label TEXT, error TEXT);
CREATE TABLE results (id TEXT PRIMARY KEY REFERENCES items(id), status TEXT NOT NULL, reason TEXT, row TEXT,
                      arrays BLOB, worker TEXT, seconds REAL, finished REAL NOT NULL);
"""


class StoreError(ValueError):
    """An ``audit.sqlite`` that is not an audit's (one sentence)."""


def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def unpack(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _full(exc: sqlite3.Error, path: Path) -> Exception:
    """SQLite's 'disk full' as the OSError every front end reports (ENOSPC), anything else as it is."""
    if "full" in str(exc).lower():
        return OSError(errno.ENOSPC, "No space left on device", str(path))
    return exc


class AuditStore:
    """An open ``audit.sqlite``: ``create`` a new one, or open an existing one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"{self.path} is missing: the folder holds no audit")
        self._db = self._connect()
        try:
            fmt = self.meta().get("format")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path} is not an audit's record ({exc})") from None
        if fmt != STORE_FORMAT:
            self._db.close()
            raise StoreError(f"{self.path} is not an audit's record of format {STORE_FORMAT}")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA synchronous=FULL")
        return db

    @classmethod
    def create(cls, path: str | Path, settings: dict, items: Sequence[Item]) -> AuditStore:
        """A new store at ``path`` holding the plan: ``settings`` (JSON) and the items in order."""
        p = Path(path)
        db = sqlite3.connect(p, isolation_level=None)
        try:
            db.executescript(_SCHEMA)
            db.execute("BEGIN")
            db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", STORE_FORMAT),
                                                               ("settings", json.dumps(settings, sort_keys=True))])
            db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)",
                           [(i, it.id, it.path, it.bscan, it.label, it.error) for i, it in enumerate(items)])
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _full(exc, p) from None
        finally:
            db.close()
        return cls(p)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the plan --------------------------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta"))

    def settings(self) -> dict:
        return json.loads(self.meta()["settings"])

    def items(self) -> list[Item]:
        rows = self._db.execute("SELECT id, path, bscan, label, error FROM items ORDER BY ord")
        return [Item(*r) for r in rows]

    # -- results ---------------------------------------------------------------------------------------------------

    def finished_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT id FROM results")}

    def counts(self) -> dict[str, int]:
        out = {"items": self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0], "done": 0, "failed": 0}
        out.update(dict(self._db.execute("SELECT status, COUNT(*) FROM results GROUP BY status")))
        return out

    def add(self, entries: Iterable[tuple[ItemRecord, str, float]]) -> int:
        """Record a batch of (record, worker, seconds) in one transaction; items recorded before are left as they
        are. Returns how many rows were new."""
        now = time.time()
        rows = [(r.id, r.status, r.reason, json.dumps(r.row, allow_nan=False) if r.row else None,
                 _pack(r.arrays) if r.arrays else None, worker, seconds, now) for r, worker, seconds in entries]
        if not rows:
            return 0
        try:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            added = self._db.total_changes - before
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise _full(exc, self.path) from None
        return added

    def forget_failed(self) -> int:
        """Remove the failed items' records, so that they are tried again; how many."""
        self._db.execute("BEGIN IMMEDIATE")
        n = self._db.execute("DELETE FROM results WHERE status = 'failed'").rowcount
        self._db.execute("COMMIT")
        return n

    def records(self) -> Iterator[tuple[str, str, str | None, dict]]:
        """(id, status, reason, row) of every recorded item, in the plan's order."""
        q = ("SELECT r.id, r.status, r.reason, r.row FROM results r JOIN items i ON i.id = r.id ORDER BY i.ord")
        for item_id, status, reason, row in self._db.execute(q):
            yield item_id, status, reason, json.loads(row) if row else {}

    def arrays(self, item_id: str) -> dict[str, np.ndarray]:
        """The arrays of a finished item (``KeyError`` when it has none)."""
        hit = self._db.execute("SELECT arrays FROM results WHERE id = ? AND arrays IS NOT NULL", (item_id,)).fetchone()
        if hit is None:
            raise KeyError(item_id)
        return unpack(hit[0])

    def details(self, item_id: str) -> tuple[Item, str, str | None, dict] | None:
        """The item, status, reason and row of one id (None when the plan has no such item or it is unfinished)."""
        hit = self._db.execute("SELECT i.id, i.path, i.bscan, i.label, i.error, r.status, r.reason, r.row FROM items i "
                               "JOIN results r ON r.id = i.id WHERE i.id = ?", (item_id,)).fetchone()
        if hit is None:
            return None
        return Item(*hit[:5]), hit[5], hit[6], json.loads(hit[7]) if hit[7] else {}

    def ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT id FROM items ORDER BY ord")]
