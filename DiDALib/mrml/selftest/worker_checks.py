"""Checks of DiDA runs in the worker process, shared by the CI tests (``slicer-core``) and ``DiDATest`` (inside
Slicer): previews, finished B-scans in order, a second job on the warm model, cancel within one batch, a scene
closed while running, and a worker killed mid-run. Each takes an environment, a ``WorkerClient`` and the test
model package, and leaves no job folder behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...maps.labels import encode_labels
from ...worker.protocol import DIED, Event
from ..overlays import ROLE
from ..results import FINISHED, STATUS, UNFINISHED, read_scores
from ..session import ExplainSession
from ..volumes import nodes_of_class
from .fixtures import SLOW_SETTINGS, TEST_GRIDS, TEST_SETTINGS, make_test_volume

#: B-scans of the runs that are cancelled, closed or killed while they go (with ``SLOW_SETTINGS``).
SLOW_BSCANS = 10


def _drive(session: ExplainSession, on_event: Callable[[Event], None] | None = None, timeout: float = 120.0) -> str:
    """Apply the job's events one by one as they arrive (``on_event`` sees each after it was applied)."""
    deadline = time.monotonic() + timeout
    while session.running:
        for event in session.job.poll():
            session.handle(event.kind, event.data)
            if on_event is not None:
                on_event(event)
        if time.monotonic() > deadline:
            session.cancel()
            raise AssertionError(f"the run did not end within {timeout} s: {session.summary()}")
        time.sleep(0.005)
    return session.state


def _no_folder(job, timeout: float = 60.0) -> None:
    """The job's folder is gone (at once when it ended, else once the worker is done with it)."""
    deadline = time.monotonic() + timeout
    while job.folder.exists() and time.monotonic() < deadline:
        job.client.reap()
        time.sleep(0.01)
    assert not job.folder.exists(), f"the job folder {job.folder} was left behind"


def _encoded(session: ExplainSession, k: int, class_index: int) -> np.ndarray:
    mixed = session.explanation.mixed(k, class_index)
    return encode_labels(mixed.positive, mixed.negative)


def check_preview_then_refined(env, worker, package_dir: str | Path) -> None:
    """Explaining one B-scan draws the coarsest grid first, then refines it; the end is the full Mixed Image."""
    volume = make_test_volume(env, n_bscans=2)
    session = ExplainSession(env.scene, volume, worker, package_dir, TEST_SETTINGS, name="DiDA preview")
    k, seen = 1, []

    def look(event: Event) -> None:
        if event.kind == "grid":
            seen.append(session.run.overlays[0].bscan_labels(k))
            assert session.run.status == "running" and session.run.unfinished == [k], "the preview is not marked"

    session.start([k], preview=True)
    assert _drive(session, look) == "complete", session.summary()
    assert len(seen) == len(TEST_GRIDS), f"{len(seen)} previews for {len(TEST_GRIDS)} grids"
    n = min(TEST_GRIDS)
    assert len(np.unique(seen[0])) <= n * n, "the first preview is not the coarsest grid"
    final = session.run.overlays[0].bscan_labels(k)
    assert np.array_equal(final, _encoded(session, k, session.run.overlays[0].class_index))
    _no_folder(session.job)


def check_finished_bscans(env, worker, package_dir: str | Path) -> None:
    """A volume's B-scans arrive one by one, in order, each with its scores and every grid; the scene shows them."""
    volume = make_test_volume(env, n_bscans=4)
    session = ExplainSession(env.scene, volume, worker, package_dir, TEST_SETTINGS, classes="all", name="DiDA all")
    kinds, order = [], []

    def look(event: Event) -> None:
        kinds.append(event.kind)
        if event.kind == "result":
            k = int(event.data["index"])
            order.append(k)
            assert session.run.finished == sorted(order), f"finished {session.run.finished} after results {order}"
            assert sorted(session.explanation.results[k].deltas) == list(TEST_GRIDS)

    session.start([3, 0, 2])
    assert _drive(session, look) == "complete", session.summary()
    assert kinds[0] == "ready" and kinds[-1] == "done" and "progress" in kinds, kinds
    assert order == [3, 0, 2], f"results arrived as {order}"
    indices, names, scores = read_scores(session.run.table)
    assert indices == [0, 2, 3] and np.allclose(scores, session.explanation.scores())
    for o in session.run.overlays:
        for k in (0, 2, 3):
            assert np.array_equal(o.bscan_labels(k), _encoded(session, k, o.class_index)), f"B-scan {k} not drawn"
        assert not o.bscan_labels(1).any(), "B-scan 1 was not asked for but shows an overlay"
    _no_folder(session.job)


def check_warm_second_job(env, worker, package_dir: str | Path) -> None:
    """A second job on the same model runs in the same worker, whose model stayed loaded."""
    volume = make_test_volume(env, n_bscans=2)
    session = ExplainSession(env.scene, volume, worker, package_dir, TEST_SETTINGS, name="DiDA warm")
    assert session.run_blocking([0], timeout=120) == "complete", session.summary()
    first, starts = dict(session.info), worker.starts
    assert session.run_blocking([1], timeout=120) == "complete", session.summary()
    second = session.info
    assert second["warm"] and second["pid"] == first["pid"] and worker.starts == starts, (first, second)
    assert second["seconds"] < 0.5, f"the warm worker took {second['seconds']} s to be ready"
    assert session.run.finished == [0, 1]
    _no_folder(session.job)


def check_cancel(env, worker, package_dir: str | Path) -> None:
    """A cancelled run stops within one batch, keeps the B-scans finished so far, marks the rest, and leaves no
    half-drawn B-scan."""
    volume = make_test_volume(env, n_bscans=SLOW_BSCANS)
    session = ExplainSession(env.scene, volume, worker, package_dir, SLOW_SETTINGS, name="DiDA cancel")
    session.start()
    assert _drive(session, lambda e: session.cancel() if e.kind == "result" else None) == "cancelled"
    ended = session.ended
    assert ended["passes_done"] - ended["passes_at_request"] <= ended["batch_size"], f"not within one batch: {ended}"
    run = session.run
    finished, unfinished = run.finished, run.unfinished
    assert 1 <= len(finished) < SLOW_BSCANS and sorted(finished + unfinished) == list(range(SLOW_BSCANS)), \
        (finished, unfinished)
    for node in run.nodes():
        assert node.GetAttribute(STATUS) == "cancelled", f"{node.GetName()} is not marked cancelled"
        assert node.GetAttribute(FINISHED) == " ".join(map(str, finished))
        assert node.GetAttribute(UNFINISHED) == " ".join(map(str, unfinished))
    for o in run.overlays:
        for k in unfinished:
            assert not o.bscan_labels(k).any(), f"unfinished B-scan {k} shows an overlay"
        for k in finished:
            assert o.bscan_labels(k).any(), f"finished B-scan {k} lost its overlay"
    assert read_scores(run.table)[0] == finished, "the score table lists unfinished B-scans"
    _no_folder(session.job)


def check_scene_closed_while_running(env, worker, package_dir: str | Path) -> None:
    """Closing the scene while a run goes on stops it: nothing more reaches the scene, the job folder goes once
    the worker has stopped, and the next run uses the same warm worker."""
    volume = make_test_volume(env, n_bscans=SLOW_BSCANS)
    session = ExplainSession(env.scene, volume, worker, package_dir, SLOW_SETTINGS, name="DiDA closed")
    session.start()
    job, pid = session.job, None

    def close_on_result(event: Event) -> None:
        if event.kind == "result":
            env.scene.Clear(0)

    deadline = time.monotonic() + 120
    while not session.closed and time.monotonic() < deadline:
        for event in job.poll():
            pid = event.data.get("pid", pid)
            session.handle(event.kind, event.data)
            close_on_result(event)
            if session.closed:
                break
        time.sleep(0.005)
    assert session.closed and session.run is None and not session.poll(), "the session goes on after the close"
    leftovers = [n.GetName() for n in nodes_of_class(env.scene, "vtkMRMLNode") if n.GetAttribute(ROLE)]
    assert not leftovers, f"DiDA nodes in the closed scene: {leftovers}"
    _no_folder(job)
    again = ExplainSession(env.scene, make_test_volume(env, n_bscans=1), worker, package_dir, TEST_SETTINGS)
    assert again.run_blocking(timeout=120) == "complete", again.summary()
    assert again.info["warm"] and again.info["pid"] == pid, "the next run did not reuse the worker"
    _no_folder(again.job)


def check_worker_killed(env, worker, package_dir: str | Path) -> None:
    """A worker killed mid-run (as by the system when memory runs out) is reported in one sentence; the finished
    B-scans are kept, and the next run starts a new worker."""
    volume = make_test_volume(env, n_bscans=SLOW_BSCANS)
    session = ExplainSession(env.scene, volume, worker, package_dir, SLOW_SETTINGS, name="DiDA killed")
    session.start()
    starts = worker.starts
    assert _drive(session, lambda e: worker.kill() if e.kind == "result" else None) == "failed", session.summary()
    assert session.error_kind == DIED, session.error
    assert "stopped unexpectedly" in session.error and session.error.count(". ") == 0, session.error
    finished, unfinished = session.run.finished, session.run.unfinished
    assert 1 <= len(finished) < SLOW_BSCANS and all(n.GetAttribute(STATUS) == "failed" for n in session.run.nodes())
    for o in session.run.overlays:
        assert all(o.bscan_labels(k).any() for k in finished) and not any(o.bscan_labels(k).any() for k in unfinished)
    _no_folder(session.job)
    assert session.run_blocking([unfinished[0]], timeout=120) == "complete", session.summary()
    assert worker.starts == starts + 1 and not session.info["warm"], "the next run did not start a new worker"
    assert session.run.finished == sorted(finished + [unfinished[0]])


#: The checks of runs in the worker, in the order ``scenarios.run_all`` runs them (each on a fresh environment).
WORKER_CHECKS = (check_preview_then_refined, check_finished_bscans, check_warm_second_job, check_cancel,
                 check_scene_closed_while_running, check_worker_killed)
