"""``dida view AUDIT --item ID``: one audited B-scan as the interactive DiDA View page (``report.html``'s page), from
the audit's records (the d of every grid, the scores) and the B-scan read again from the dataset; no model."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .common import UsageError


def item_file(item_id: str) -> str:
    """The page's file name in the audit folder: the id made readable, and a hash of it (ids differ only by
    characters a file name cannot hold, e.g. '/')."""
    stem = re.sub(r"[^\w.-]+", "_", item_id).strip("_.")[:80] or "item"
    return f"item-{stem}-{hashlib.sha1(item_id.encode()).hexdigest()[:8]}.html"


def item_source(folder: Path, item_id: str):
    """The page source of one finished item of the audit in ``folder`` (``UsageError`` naming the fix)."""
    import numpy as np

    from ..audit.dataset import ItemReader
    from ..audit.explain import result_from_record
    from ..audit.store import STORE_FILE, AuditStore, StoreError
    from ..io.map_files import contrast_scale
    from ..maps.contrast import default_pairs
    from ..pipeline import VolumeExplanation
    from ..reports.page_data import PageSource

    try:
        store = AuditStore(folder / STORE_FILE)
    except StoreError as exc:
        raise UsageError(f"{exc}: run dida audit again") from None
    with store:
        details = store.details(item_id)
        if details is None:
            ids = store.ids()
            raise UsageError(f"--item {item_id!r}: no finished item of that id in {folder} (the ids are the first "
                             f"column of results.csv{', e.g. ' + ids[0] if ids else ''})")
        item, status, reason, row = details
        if status != "done":
            raise UsageError(f"--item {item_id!r} failed in the audit ({reason}): there is no DiDA result to show")
        settings = store.settings()
        result = result_from_record(row, store.arrays(item_id), settings["classes"], settings["score_mode"])
    try:
        bscan = ItemReader()(item)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{item.path} cannot be read again ({' '.join(str(exc).split())[:200]}): the page shows the "
                         "B-scan itself; put the dataset back where the audit read it") from None
    if list(bscan.shape) != list(row["shape"]):
        raise UsageError(f"{item.path} is {bscan.shape[0]} x {bscan.shape[1]} now but was {row['shape'][0]} x "
                         f"{row['shape'][1]} when audited: the file changed; audit it again")
    weights = settings.get("weights")
    explanation = VolumeExplanation(tuple(settings["classes"]), {0: result}, tuple(bscan.shape),
                                    tuple(weights) if weights else None)
    pairs = default_pairs(explanation.scores().max(axis=0))
    run = {"input": item.path, "model_name": settings.get("model_name"), "score": settings["score_mode"],
           "grids": row["grids"], "demo_model": settings.get("demo_model"), "spacing_pixels": [1.0, 1.0, 1.0]}
    return PageSource(explanation, bscan[None].astype(np.float32), run, pairs, contrast_scale(explanation, pairs),
                      [item.label] if item.label else None)


def cmd_view_item(args, folder: Path, point: tuple[int, ...] | None) -> int:
    from ..audit.folder import read_audit
    from .view import write_page

    if read_audit(folder) is None:
        raise UsageError(f"--item: {folder} is not an audit folder (one that dida audit wrote): give the audit's "
                         "folder, or leave out --item for a dida explain result")
    if args.item is None:
        raise UsageError(f"{folder} is an audit: add --item ID to open one of its B-scans (the ids are the first "
                         "column of results.csv and of the audit page's table)")
    src = item_source(folder, args.item)
    written = write_page(args, folder, src, None, point, item_file(args.item), "the audit folder")
    print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB): the DiDA View of {args.item}; open it in a web "
          "browser")
    return 0
