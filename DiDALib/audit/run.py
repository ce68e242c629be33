"""One audit from start (or resume) to its final files: the plan checked and made once (``AuditRequest`` ->
settings), the items handed to the workers (``executor``), each batch of records committed as it arrives
(``store``), and the summary, table and page written at the end (``folder``)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..engine.schedule import format_grids
from ..io.output_dir import OutputFolderError
from ..io.signals import signals_deferred
from ..pipeline import ExplainSettings
from .dataset import DatasetError, Item, ItemReader, list_items, sample_items
from .executor import ModelPlan, WorkerPlan, package_files, run_items, start_ray, stop_ray
from .explain import ItemRecord
from .folder import PAGE_FILE, SUMMARY_FILE, TABLE_FILE, create, locked, prepare, seal, write_own
from .store import STORE_FILE, AuditStore

#: CPU batch size when none is given: fixed, so that an item's d does not depend on the timing that the engine's
#: automatic choice measures (the same item gives the same bits on any worker and after any resume).
CPU_BATCH = 16
#: Records are committed when this many have arrived or this many seconds have passed, whichever is first.
COMMIT_RECORDS = 16
COMMIT_SECONDS = 2.0
#: The plan's settings that a resumed audit must share with the one it continues.
IDENTITY = ("data", "sample", "seed", "model_sha256", "grids", "weights", "fill", "score", "precision", "batch_size")


@dataclass
class AuditRequest:
    """What the user asked for (each value checked where it entered)."""

    data: Path
    model: Path
    out: Path
    explain: ExplainSettings
    sample: int | None = None
    seed: int = 0
    workers: int | None = None
    cpus_per_worker: float | None = None
    address: str | None = None
    resume: bool = False
    retry_failed: bool = False
    force: bool = False
    trust_code: bool = False
    quiet: bool = False


@dataclass
class AuditOutcome:
    """What an audit did: the folder, counts, the workers, the seconds, the failures and the files written."""

    folder: Path
    counts: dict
    summary: dict
    workers: str = ""
    seconds: float = 0.0
    new_records: int = 0
    files: list[str] = field(default_factory=list)


def _sha256(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def _identity(request: AuditRequest, files: dict[str, bytes], package) -> dict:
    s = request.explain
    batch = s.batch_size if s.batch_size is not None else None
    return {"data": str(request.data), "sample": request.sample, "seed": request.seed, "model_sha256": _sha256(files),
            "grids": format_grids(s.grids), "weights": list(s.weights) if s.weights else None, "fill": s.fill,
            "score": s.score or package.spec.score, "precision": s.precision, "batch_size": batch}


def _resolve_score(package, settings: ExplainSettings, items: Sequence[Item], read) -> tuple[str, str | None]:
    """The audit's one score mode: the package's or the user's; ``auto`` settled from the model's outputs on the
    first 16 readable items (one pass each), so that every worker uses the same."""
    requested = settings.score or package.spec.score
    if requested != "auto":
        return requested, None
    import torch

    from ..engine.scores import choose_auto
    from ..models.preprocess import preprocess_bscan

    outputs = []
    with torch.inference_mode():
        for item in items:
            try:
                x = preprocess_bscan(read(item), package.spec)[0][None]
            except (OSError, ValueError):
                continue
            outputs.append(package.model(x).float())
            if len(outputs) == 16:
                break
    if not outputs:
        return "probabilities", "auto: probabilities (no item could be read to look at the model's outputs)"
    return choose_auto(torch.cat(outputs))


def _estimate_bytes(n_items: int, classes: int, grids) -> int:
    from ..engine.grid import passes_per_image

    return n_items * (classes * (passes_per_image(grids) - 1) * 4 + 24_000) + (1 << 20)


def worker_plan(request: AuditRequest, resources: dict) -> tuple[WorkerPlan, str]:
    """How many workers of what size, from the cluster's resources (or the local machine's), and their device."""
    cpus = float(resources.get("CPU", 1.0))
    gpus = float(resources.get("GPU", 0.0))
    device = request.explain.device
    if device != "cpu" and gpus >= 1:
        workers = request.workers or int(gpus)
        per_cpu = request.cpus_per_worker or 1.0
        threads = max(1, int(cpus // workers))
        return WorkerPlan(workers, per_cpu, min(1.0, gpus / workers), threads, request.address), \
            ("cuda" if device == "auto" else device)
    if device not in ("auto", "cpu"):
        raise ValueError(f"--device {device}: the Ray cluster has no GPU: use --device cpu or auto")
    # One core (one torch thread) per worker unless asked otherwise: images are independent, so processes scale
    # better than threads, and a result's bits depend on its worker's thread count (checked by the tests and the
    # benchmark), so the same command gives the same bits with any number of workers.
    per_cpu = request.cpus_per_worker or 1.0
    workers = request.workers or max(1, int(cpus // per_cpu))
    return WorkerPlan(workers, per_cpu, 0.0, max(1, int(per_cpu)), request.address), "cpu"


def _explain_fields(s: ExplainSettings, score: str, device: str) -> dict:
    batch = s.batch_size if s.batch_size is not None else (CPU_BATCH if device == "cpu" else None)
    # A fixed memory format, not the probe's choice by timing: an item's bits must not depend on the worker's load.
    return {"grids": s.grids, "weights": s.weights, "fill": s.fill, "score": score, "classes": "all",
            "precision": s.precision, "batch_size": batch, "runtime": s.runtime, "channels_last": False}


def start_or_resume(request: AuditRequest, note: Callable[[str], None]) -> tuple[Path, dict, ModelPlan | None]:
    """Check the folder, load the model (checking it), and make a new audit's plan or check a resumed one's;
    the folder, its settings and what every worker loads."""
    from ..models.package import load_model_package

    protect = (request.data, request.model)
    mode = prepare(request.out, request.resume, request.force, protect)
    package = load_model_package(request.model, trust_code=request.trust_code)
    files = package_files(Path(package.path))
    identity = _identity(request, files, package)
    out = Path(os.path.abspath(request.out))
    if mode == "resume":
        with AuditStore(out / STORE_FILE) as store:
            settings = store.settings()
        differ = [k for k in IDENTITY if settings.get(k) != identity.get(k)]
        if differ:
            k = differ[0]
            raise OutputFolderError(f"--out {request.out} holds an audit with other settings ({k}: "
                                    f"{settings.get(k)!r} there, {identity.get(k)!r} now): give the same options to "
                                    "resume it, or choose another --out")
    else:
        items, layout = list_items(request.data)
        items = sample_items(items, request.sample, request.seed)
        score, why = _resolve_score(package, request.explain, items, ItemReader())
        settings = {**identity, "layout": layout, "classes": list(package.spec.classes), "score_mode": score,
                    "score_choice": why, "model": str(package.path), "model_name": package.spec.name,
                    "demo_model": package.spec.demo, "dida_version": __version__, "created": time.time()}
        need = _estimate_bytes(len(items), len(package.spec.classes), request.explain.grids)
        create(request.out, request.force, protect, settings, items, need, note)
    model = ModelPlan(files, request.trust_code, {})
    return out, settings, model


class _Committer:
    """Records buffered and committed in batches (``COMMIT_RECORDS`` or ``COMMIT_SECONDS``), with a progress bar."""

    def __init__(self, store: AuditStore, bar):
        self.store, self.bar = store, bar
        self.buffer: list[tuple[ItemRecord, str, float]] = []
        self.last = time.monotonic()
        self.added = 0
        self.failed = 0

    def __call__(self, record: ItemRecord, worker: str, seconds: float) -> None:
        self.buffer.append((record, worker, seconds))
        self.failed += record.status == "failed"
        if self.bar is not None:
            self.bar.update(1)
            if self.failed:
                self.bar.set_postfix(failed=self.failed, refresh=False)
        if len(self.buffer) >= COMMIT_RECORDS or time.monotonic() - self.last >= COMMIT_SECONDS:
            self.flush()

    def flush(self) -> None:
        with signals_deferred():  # a stop signal waits for the batch's transaction
            self.added += self.store.add(self.buffer)
        self.buffer = []
        self.last = time.monotonic()


def run_audit(request: AuditRequest, note: Callable[[str], None], progress=None) -> AuditOutcome:
    """The whole audit; ``progress(total)`` makes a progress bar (tqdm-like) or None."""
    out, settings, model = start_or_resume(request, note)
    started = time.perf_counter()
    workers_text = ""
    with locked(out, note) as run_id, AuditStore(out / STORE_FILE) as store:
        if request.retry_failed:
            n = store.forget_failed()
            if n:
                note(f"trying {n} failed item(s) again (--retry-failed)")
        finished = store.finished_ids()
        todo = [it for it in store.items() if it.id not in finished]
        if finished and todo:
            note(f"resuming: {len(finished)} item(s) recorded before are kept, {len(todo)} to go")
        bar = progress(len(todo)) if progress and todo else None
        commit = _Committer(store, bar)
        owned = False
        try:
            if todo:
                resources, owned = start_ray(WorkerPlan(0, 1, 0, 1, request.address) if request.address else
                                      _local_plan(request))
                plan, device = worker_plan(request, resources)
                workers_text = (f"{plan.workers} worker(s) x {plan.cpus:g} CPU" + (f", {plan.gpus:g} GPU" if plan.gpus
                                else "") + f" on {'Ray at ' + plan.address if plan.address else 'a local Ray'}")
                worker_model = ModelPlan(model.files, model.trust_code,
                                         _explain_fields(request.explain, settings["score_mode"], device))
                run_items(todo, ItemReader(), plan, worker_model, device, commit)
        finally:
            try:
                commit.flush()
            finally:
                if bar is not None:
                    bar.close()
                if owned:
                    stop_ray()
        outcome = finish(out, store, settings, run_id)
    outcome.workers, outcome.seconds, outcome.new_records = workers_text, time.perf_counter() - started, commit.added
    return outcome


def _local_plan(request: AuditRequest) -> WorkerPlan:
    """The local Ray's size: this machine's cores (those this process may use) and, unless --device cpu, GPUs."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpus = 0
    if request.explain.device != "cpu":
        import torch

        gpus = torch.cuda.device_count()
    return WorkerPlan(1, float(cores), float(gpus), 1, None)


def finish(out: Path, store: AuditStore, settings: dict, run_id: str) -> AuditOutcome:
    """Write the summary, the table and the page from the store, then ``run.json`` (as the run ``run_id``, which
    holds the folder's lock)."""
    from ..reports.audit_page import write_audit_page
    from .summary import summarize

    summary = summarize(store)
    figures = {"format": "dida-audit-summary/1", **summary.figures, "settings": _public(settings)}
    write_own(out, SUMMARY_FILE, lambda tmp: tmp.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8"),
              run_id)
    write_own(out, TABLE_FILE, lambda tmp: write_table(tmp, store, settings["classes"]), run_id)
    write_own(out, PAGE_FILE, lambda tmp: write_audit_page(tmp, store, summary, settings), run_id)
    counts = store.counts()
    seal(out, settings, counts["done"] + counts["failed"] == counts["items"], run_id)
    return AuditOutcome(out, counts, figures, files=[PAGE_FILE, SUMMARY_FILE, TABLE_FILE])


def _public(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k != "created"}


TABLE_COLUMNS = ("id", "status", "label", "predicted", "correct", "probability", "score", "margin", "inside",
                 "above", "below", "border", "centroid_depth", "centroid_in_band", "band_found", "against_box",
                 "against_value", "height", "width", "reason")


def write_table(path: Path, store: AuditStore, classes: Sequence[str]) -> None:
    """``results.csv``: one row per recorded item (the plan's order), every class's score last."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*TABLE_COLUMNS, *(f"score_{c}" for c in classes)])
        for item_id, status, reason, row in store.records():
            against = row.get("against") or {}
            values = {**row, "id": item_id, "status": status, "reason": reason or "",
                      "against_box": " ".join(map(str, against.get("box", []))), "against_value": against.get("value"),
                      "height": (row.get("shape") or [None, None])[0], "width": (row.get("shape") or [None, None])[1]}
            w.writerow([_cell(values.get(c)) for c in TABLE_COLUMNS] + [_cell(v) for v in row.get("scores", [])])


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


__all__ = ["AuditOutcome", "AuditRequest", "DatasetError", "run_audit", "start_or_resume", "worker_plan"]
