"""The audit's workers on Ray: one actor per worker, each loading the model package once and explaining the items
it is given, one at a time; the driver (``dida audit``'s process) reads the items, hands them out and collects
the records as they finish.

- Local by default: ``ray.init`` starts Ray on this machine with the cores and GPUs asked for, bound to the loopback
  address, with no dashboard and no usage statistics; nothing goes over the network. ``address`` (``auto``,
  ``ray://host:port``) joins a running cluster instead; every node needs DiDA installed (``pip install
  "dida-slicer[audit]"``), and the model package travels through Ray's object store, so the nodes need no copy of it.
- The driver reads each B-scan (a corrupt file becomes a failed record here, and the audit goes on) and sends it
  with the item: the nodes need no access to the dataset either.
- A worker or node that dies loses only the items it held: they go back to the front of the queue and are given
  to another worker; a new worker replaces the dead one, wherever the cluster has room. An item whose worker died
  ``MAX_ATTEMPTS`` times is recorded as failed (it may be what kills them, e.g. out of memory).
- Each actor runs one item at a time and holds at most one more, so a lost worker costs at most two items' work.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.signals import STOP_SIGNALS, Interrupted
from .dataset import Item
from .explain import ItemRecord, failed_record

#: What Ray is told before it starts (local or client): no usage statistics sent, no prompts.
RAY_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_USAGE_STATS_PROMPT_ENABLED": "0",
                   "RAY_DISABLE_IMPORT_WARNING": "1", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
MAX_ATTEMPTS = 3
#: A model package larger than this is refused for shipping (model packages are a few MB to a few hundred).
MAX_PACKAGE_BYTES = 2 << 30
#: How long the audit waits for a worker when none is running (a cluster without room for one).
START_TIMEOUT = 600.0


class ExecutorError(RuntimeError):
    """The workers cannot run (one sentence: what happened and the fix)."""


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers, and each one's CPUs, GPUs and torch threads; ``address`` None for a local Ray."""

    workers: int
    cpus: float
    gpus: float
    threads: int
    address: str | None = None


@dataclass(frozen=True)
class ModelPlan:
    """What every worker builds: the package's files (name -> bytes), whether its own code may run, and the
    explainer's settings (``pipeline.ExplainSettings`` fields, the score mode settled)."""

    files: dict[str, bytes]
    trust_code: bool
    settings: dict


def package_files(folder: Path) -> dict[str, bytes]:
    """Every regular file of a model package folder (relative POSIX path -> bytes), links not followed."""
    out: dict[str, bytes] = {}
    total = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in files:
            p = Path(root) / name
            if p.is_symlink() or not p.is_file():
                continue
            total += p.stat().st_size
            if total > MAX_PACKAGE_BYTES:
                raise ExecutorError(f"the model package {folder} holds more than {MAX_PACKAGE_BYTES >> 30} GB: give "
                                    "a package with only model.json, its weights and examples")
            out[p.relative_to(folder).as_posix()] = p.read_bytes()
    return out


class AuditWorker:
    """One worker (a Ray actor): the model package loaded once, then one item after another."""

    def __init__(self, model: ModelPlan, threads: int, device: str):
        import tempfile

        import torch

        from ..models.package import load_model_package
        from ..pipeline import ExplainSettings, VolumeExplainer

        torch.set_num_threads(max(1, int(threads)))
        with tempfile.TemporaryDirectory(prefix="dida-audit-model-") as tmp:
            for rel, data in model.files.items():
                target = Path(tmp) / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            package = load_model_package(tmp, trust_code=model.trust_code)
        settings = ExplainSettings(**{**model.settings, "device": device})
        self.explainer = VolumeExplainer(package, settings)
        self.classes = package.spec.classes
        self.name = f"{socket.gethostname()}:{os.getpid()}/{torch.get_num_threads()}t"

    def ready(self) -> str:
        return self.name

    def explain(self, item_id: str, bscan: np.ndarray, label: str | None) -> tuple[ItemRecord, float, str]:
        """The item's record, the seconds it took and this worker's name; a failure of this item (a B-scan too
        small for the grids, the model failing on it, memory) is a failed record, not an error."""
        from ..engine.core import ModelCallError
        from .explain import explain_bscan, item_record

        started = time.perf_counter()
        try:
            record = item_record(item_id, bscan, explain_bscan(self.explainer, bscan), self.classes, label)
        except (ValueError, TypeError, ModelCallError, MemoryError) as exc:
            record = failed_record(item_id, f"{type(exc).__name__}: {exc}" if isinstance(exc, MemoryError) else exc)
        return record, time.perf_counter() - started, self.name


def start_ray(plan: WorkerPlan) -> tuple[dict, bool]:
    """Start a local Ray (or join ``plan.address``): the cluster's resources, and whether this call started the
    session (a session the caller had started already, e.g. a test module's, is used as it is and left running)."""
    os.environ.update(RAY_ENVIRONMENT)
    import ray

    if ray.is_initialized():
        return dict(ray.cluster_resources()), False
    with _signal_handlers_kept():
        _init(ray, plan)
    return dict(ray.cluster_resources()), True


@contextlib.contextmanager
def _signal_handlers_kept():
    """Ray's core installs its own SIGTERM handler (a stack dump and exit 1): put the caller's back, so that a stop
    signal ends the audit as any dida run ends (the finished records committed, one line, 128 + the signal)."""
    saved = {}
    if threading.current_thread() is threading.main_thread():
        saved = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    try:
        yield
    except SystemExit as exc:  # Ray's own handler, while it starts, ends the process with the signal's number
        if exc.code in STOP_SIGNALS:
            raise Interrupted(int(exc.code)) from None
        raise
    finally:
        for s, handler in saved.items():
            if handler is not None:
                signal.signal(s, handler)


def _init(ray, plan: WorkerPlan) -> None:
    if plan.address:
        try:
            ray.init(address=plan.address, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ExecutorError(f"--address {plan.address}: no Ray cluster could be joined "
                                f"({' '.join(str(exc).split())[:200]}): start one with 'ray start --head', or leave "
                                "out --address for a local one") from None
    else:
        ray.init(num_cpus=max(1, int(np.ceil(plan.workers * plan.cpus))), num_gpus=int(plan.workers * plan.gpus),
                 include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR", log_to_driver=False)


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


class _Pool:
    """The live actors, those starting, and the work each holds."""

    def __init__(self, ray, plan: WorkerPlan, model_ref, device: str):
        self.ray, self.plan, self.model_ref, self.device = ray, plan, model_ref, device
        self.cls = ray.remote(AuditWorker).options(num_cpus=plan.cpus, num_gpus=plan.gpus, max_restarts=0,
                                                   max_task_retries=0)
        self.starting: dict = {}  # ready ref -> actor
        self.live: dict = {}  # actor -> items held
        self.started = 0
        self.last_live = time.monotonic()
        for _ in range(plan.workers):
            self.spawn()

    def spawn(self) -> None:
        limit = 4 * self.plan.workers + 4
        if self.started >= limit:
            raise ExecutorError(f"{self.started} workers were started and kept dying: look at the Ray logs "
                                "(ray logs) for why, e.g. out of memory, and give fewer --workers")
        actor = self.cls.remote(self.model_ref, self.plan.threads, self.device)
        self.starting[actor.ready.remote()] = actor
        self.started += 1

    def lost(self, actor) -> None:
        """An actor died: forget it (and whatever it held) and start another."""
        if actor in self.live:
            del self.live[actor]
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 -- it is gone already
                pass
            self.spawn()

    def stop(self) -> None:
        for actor in [*self.live, *self.starting.values()]:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass


def run_items(items: Sequence[Item], read: Callable[[Item], np.ndarray], plan: WorkerPlan, model: ModelPlan,
              device: str, on_record: Callable[[ItemRecord, str, float], None]) -> None:
    """Explain ``items`` on the workers (Ray must be started); ``on_record(record, worker, seconds)`` hears each
    finished or failed item once, in the order they finish."""
    import ray
    from ray.exceptions import RayActorError, RayError, RayTaskError

    queue = deque(items)
    attempts: Counter = Counter()
    pool = _Pool(ray, plan, ray.put(model), device)
    inflight: dict = {}  # task ref -> (item, actor)
    try:
        while queue or inflight:
            for actor in list(pool.live):
                while pool.live.get(actor, 2) < 2 and queue:
                    item = queue.popleft()
                    try:
                        bscan = read(item)
                    except (OSError, ValueError) as exc:  # OCTReadError is a ValueError
                        on_record(failed_record(item.id, exc), "driver", 0.0)
                        continue
                    inflight[actor.explain.remote(item.id, bscan, item.label)] = (item, actor)
                    pool.live[actor] += 1
            if not pool.live and time.monotonic() - pool.last_live > START_TIMEOUT:
                raise ExecutorError(f"no worker has run for {START_TIMEOUT:.0f} s: the Ray cluster has no room for one "
                                    f"({plan.cpus} CPU, {plan.gpus} GPU each): add nodes or lower --cpus-per-worker")
            ready, _ = ray.wait([*inflight, *pool.starting], num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in pool.starting:
                    actor = pool.starting.pop(ref)
                    try:
                        ray.get(ref)
                    except RayTaskError as exc:  # the model does not load there: no use trying elsewhere
                        raise ExecutorError(f"a worker could not load the model: {_cause(exc)}") from None
                    except RayError:
                        pool.spawn()
                        continue
                    pool.live[actor] = 0
                    pool.last_live = time.monotonic()
                    continue
                item, actor = inflight.pop(ref)
                try:
                    record, seconds, worker = ray.get(ref)
                except RayTaskError as exc:  # our own code failed on this item: record it, go on
                    pool.live[actor] = pool.live.get(actor, 1) - 1
                    on_record(failed_record(item.id, _cause(exc)), "", 0.0)
                    continue
                except (RayActorError, RayError):  # the worker or its node died: the item goes to another
                    attempts[item.id] += 1
                    pool.lost(actor)
                    if attempts[item.id] >= MAX_ATTEMPTS:
                        on_record(failed_record(item.id, f"its worker died {MAX_ATTEMPTS} times while explaining it "
                                                "(out of memory?)"), "", 0.0)
                    else:
                        queue.appendleft(item)
                    continue
                if actor in pool.live:
                    pool.live[actor] -= 1
                    pool.last_live = time.monotonic()
                on_record(record, worker, seconds)
    finally:
        pool.stop()


def _cause(exc) -> str:
    cause = getattr(exc, "cause", None) or exc
    return " ".join(f"{type(cause).__name__}: {cause}".split())[:400]
