"""ExplainSession and BackgroundJob: streaming results into the scene, class choices, continuing a run, failures."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from DiDALib.maps.labels import encode_labels
from DiDALib.mrml import scenarios as scenarios
from DiDALib.mrml.background import BackgroundJob
from DiDALib.mrml.results import STATUS, find_runs, read_scores
from DiDALib.mrml.session import ExplainSession


def test_background_job_events_in_order():
    def work(emit, cancel):
        emit("progress", 1)
        emit("progress", 2)
        return "value"

    seen = []
    BackgroundJob(work).start().wait(lambda kind, payload: seen.append((kind, payload)), timeout=10)
    assert seen == [("progress", 1), ("progress", 2), ("done", "value")]


def test_background_job_reports_errors_and_cancellation():
    class Stopped(Exception):
        pass

    def failing(emit, cancel):
        raise RuntimeError("model exploded")

    def cancellable(emit, cancel):
        cancel.wait(10)
        raise Stopped()

    seen = []
    BackgroundJob(failing).start().wait(lambda k, p: seen.append((k, str(p))), timeout=10)
    assert seen == [("error", "model exploded")]
    job = BackgroundJob(cancellable, cancelled_types=(Stopped,)).start()
    job.cancel()
    kinds = []
    job.wait(lambda k, p: kinds.append(k), timeout=10)
    assert kinds == ["cancelled"]
    never = threading.Event()
    slow = BackgroundJob(lambda emit, cancel: never.wait(1)).start()
    with pytest.raises(TimeoutError):
        slow.wait(lambda k, p: None, timeout=0.05)


def test_named_classes_and_unknown_names(env, mrml_package):
    volume = scenarios.make_test_volume(env, n_bscans=2)
    explainer = scenarios.make_explainer(mrml_package)
    with pytest.raises(ValueError, match="not among the model's classes"):
        ExplainSession(env.scene, volume, explainer, classes=("normal", "glaucoma"))
    session = ExplainSession(env.scene, volume, explainer, classes=("drusen", "normal"))
    assert session.run_blocking(timeout=60) == "complete"
    assert [o.class_name for o in session.run.overlays] == ["drusen", "normal"]
    with pytest.raises(ValueError, match="does not exist"):
        session.start([7])


def test_continuing_a_run_adds_bscans(env, mrml_package):
    volume = scenarios.make_test_volume(env, n_bscans=4)
    session = ExplainSession(env.scene, volume, scenarios.make_explainer(mrml_package), classes="all")
    assert session.run_blocking([2], timeout=60) == "complete"
    assert session.run.finished == [2] and len(session.run.overlays) == len(scenarios.TEST_CLASSES)
    assert session.run_blocking([0, 3], timeout=60) == "complete"
    assert session.run.finished == [0, 2, 3] and session.run.unfinished == []
    assert len(find_runs(env.scene, volume)) == 1
    assert read_scores(session.run.table)[0] == [0, 2, 3]
    # One saturation scale for the whole run: B-scan 2, drawn when it was alone, is re-drawn at the run's scale.
    exp = session.explanation
    assert float(session.run.table.GetAttribute("DiDA.Scale")) == pytest.approx(exp.scale(), rel=1e-5)
    for o in session.run.overlays:
        for k in (0, 2, 3):
            mixed = exp.mixed(k, o.class_index)  # at the run's one scale
            assert np.array_equal(o.bscan_labels(k), encode_labels(mixed.positive, mixed.negative))


def test_a_failing_model_keeps_the_finished_bscans(env, mrml_package):
    volume = scenarios.make_test_volume(env, n_bscans=3)
    calls = []
    per_bscan = 1 + sum(n * n for n in scenarios.TEST_GRIDS)

    def breaks_later(model):
        def call(x):
            if sum(calls) >= per_bscan:  # the first B-scan's passes are done (one batch may span B-scans)
                raise RuntimeError("CUDA error: device-side assert triggered")
            calls.append(x.shape[0])
            return model(x)
        return call

    session = ExplainSession(env.scene, volume, scenarios.make_explainer(mrml_package, wrap=breaks_later), classes="top3")
    state = session.run_blocking(timeout=60)
    assert state == "failed" and "device-side assert" in session.summary()
    assert session.run.finished and len(session.run.finished) < 3
    assert all(node.GetAttribute(STATUS) == "failed" for node in session.run.nodes())


def test_a_run_that_never_produced_anything_leaves_no_nodes(env, mrml_package):
    volume = scenarios.make_test_volume(env, n_bscans=2)
    before = env.scene.GetNumberOfNodes()
    session = ExplainSession(env.scene, volume, scenarios.make_explainer(mrml_package))
    session.start()
    session.cancel()
    state = session.wait(timeout=60)
    if state == "cancelled" and session.run is None:
        assert env.scene.GetNumberOfNodes() == before
    else:  # the first B-scan was quicker than the cancel: it is kept, as a finished B-scan
        assert session.run.finished


def test_fraction_and_summary(env, mrml_package):
    volume = scenarios.make_test_volume(env, n_bscans=2)
    session = ExplainSession(env.scene, volume, scenarios.make_explainer(mrml_package))
    assert session.fraction_done() == 0.0 and session.summary() == ""
    session.run_blocking(timeout=60)
    assert session.fraction_done() == pytest.approx(1.0)
    assert session.summary() == "Done: 2 B-scan(s) explained"
    assert np.isfinite(float(session.run.table.GetAttribute("DiDA.Scale")))
