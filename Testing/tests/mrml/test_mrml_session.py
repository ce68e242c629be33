"""ExplainSession: a worker's events applied to the scene: class choices, continuing a run, a model that fails
mid-run, a run that never produced anything, progress and summary, polling in slices, and stored results."""

from __future__ import annotations

import numpy as np
import pytest

from DiDALib.engine.saturation import saturation_warning
from DiDALib.maps.labels import encode_labels
from DiDALib.mrml.results import STATUS, find_runs, read_scores
from DiDALib.mrml.selftest import fixtures
from DiDALib.mrml.session import ExplainSession


def _session(env, worker, package, n_bscans=2, settings=fixtures.TEST_SETTINGS, **kw):
    return ExplainSession(env.scene, fixtures.make_test_volume(env, n_bscans=n_bscans), worker, package, settings,
                          **kw)


def _labels(session, k):
    return {o.class_name: o.bscan_labels(k) for o in session.run.overlays}


def test_named_classes_and_unknown_names(env, worker, mrml_package):
    with pytest.raises(ValueError, match="not among the model's classes"):
        _session(env, worker, mrml_package, classes=("normal", "glaucoma"))
    session = _session(env, worker, mrml_package, classes=("drusen", "normal"))
    assert session.run_blocking(timeout=120) == "complete"
    assert [o.class_name for o in session.run.overlays] == ["drusen", "normal"]
    with pytest.raises(ValueError, match="does not exist"):
        session.start([7])


def test_continuing_a_run_adds_bscans(env, worker, mrml_package):
    session = _session(env, worker, mrml_package, n_bscans=4, classes="all")
    assert session.run_blocking([2], timeout=120) == "complete"
    assert session.run.finished == [2] and len(session.run.overlays) == len(fixtures.TEST_CLASSES)
    assert session.run_blocking([0, 3], timeout=120) == "complete"
    assert session.run.finished == [0, 2, 3] and session.run.unfinished == []
    assert len(find_runs(env.scene, session.volume)) == 1
    assert read_scores(session.run.table)[0] == [0, 2, 3]
    # One saturation scale for the whole run: B-scan 2, drawn when it was alone, is re-drawn at the run's scale.
    exp = session.explanation
    assert float(session.run.table.GetAttribute("DiDA.Scale")) == pytest.approx(exp.scale(), rel=1e-5)
    for o in session.run.overlays:
        for k in (0, 2, 3):
            mixed = exp.mixed(k, o.class_index)  # at the run's one scale
            assert np.array_equal(o.bscan_labels(k), encode_labels(mixed.positive, mixed.negative))


def test_a_model_that_fails_mid_run_keeps_the_finished_bscans(env, worker, tmp_path):
    per_bscan = 1 + sum(n * n for n in fixtures.TEST_GRIDS)
    package = fixtures.make_failing_package(tmp_path / "failing", fail_after=1 + per_bscan)  # + the load check
    session = _session(env, worker, package, n_bscans=3)
    assert session.run_blocking(timeout=120) == "failed", session.summary()
    assert "device-side assert triggered" in session.error and "\n" not in session.error, session.error  # one line
    assert session.run.finished == [0] and session.run.unfinished == [1, 2]
    assert all(node.GetAttribute(STATUS) == "failed" for node in session.run.nodes())
    assert all(not o.bscan_labels(k).any() for o in session.run.overlays for k in (1, 2))


def test_a_run_that_never_produced_anything_leaves_no_nodes(env, worker, mrml_package):
    session = _session(env, worker, mrml_package)
    before = env.scene.GetNumberOfNodes()
    session.start()
    session.cancel()
    state = session.wait(timeout=120)
    if state == "cancelled" and session.run is None:
        assert env.scene.GetNumberOfNodes() == before
    else:  # the first B-scan was quicker than the cancel: it is kept, as a finished B-scan
        assert session.run.finished


def test_fraction_and_summary(env, worker, mrml_package):
    session = _session(env, worker, mrml_package)
    assert session.fraction_done() == 0.0 and session.summary() == ""
    session.start()
    assert session.summary().startswith("Starting: loading the model")
    session.wait(timeout=120)
    assert session.fraction_done() == pytest.approx(1.0)
    # the random test model's probability maps are faint: the status line says so after the state
    assert session.summary().startswith("Done: 2 B-scan(s) explained")
    assert session.summary().removeprefix("Done: 2 B-scan(s) explained") in ("", ". Warning: " + str(
        saturation_warning(session.explanation.results.values())))
    assert np.isfinite(float(session.run.table.GetAttribute("DiDA.Scale")))


def test_polling_in_short_slices_draws_the_same(env, worker, mrml_package):
    """The widget polls for at most a slice of each timer tick (and skips drawing superseded previews): the scene
    ends the same as with every event applied at once."""
    whole = _session(env, worker, mrml_package, n_bscans=3, name="whole")
    assert whole.run_blocking(preview=True, timeout=120) == "complete"
    sliced = _session(env, worker, mrml_package, n_bscans=3, name="sliced")
    sliced.start(preview=True)
    polls = 0
    while sliced.poll(max_seconds=0.0):
        polls += 1
    assert sliced.state == "complete" and polls > 1
    for k in range(3):
        assert all(np.array_equal(a, b) for a, b in zip(_labels(whole, k).values(), _labels(sliced, k).values(),
                                                         strict=True))


def test_stored_results_replay_as_the_run_drew_them(env, worker, mrml_package):
    live = _session(env, worker, mrml_package, n_bscans=3)
    assert live.run_blocking(timeout=120) == "complete"
    stored = ExplainSession(env.scene, live.volume, None, None, name="stored")
    assert stored.replay(live.explanation) == "complete"
    assert stored.run.finished == [0, 1, 2] and stored.run is not live.run
    for k in range(3):
        assert {n: v.tolist() for n, v in _labels(stored, k).items()} == \
               {n: v.tolist() for n, v in _labels(live, k).items()}
    with pytest.raises(RuntimeError, match="only shows stored results"):
        stored.start()


def test_shifted_grids_run_in_the_worker_and_are_drawn(env, worker, mrml_package):
    """The evidence schedule's kind of grids (sizes at half-cell offsets) travel to the worker and back as text,
    preview and finished B-scans alike, and the overlays are the run's Mixed Images of those grids."""
    from DiDALib.engine.schedule import offset_grids

    grids = offset_grids((2, 3), 2)
    settings = {**fixtures.TEST_SETTINGS, "grids": [str(g) for g in grids]}
    session = _session(env, worker, mrml_package, settings=settings)
    assert session.run_blocking(timeout=120) == "complete", session.error
    exp = session.explanation
    for k in exp.indices:
        assert exp.results[k].grids == grids
        for o in session.run.overlays:
            mixed = exp.mixed(k, o.class_index)
            assert np.array_equal(o.bscan_labels(k), encode_labels(mixed.positive, mixed.negative))


def test_starting_writes_no_bscan_on_the_spot(env, worker, mrml_package):
    """Explain volume on a large volume must not hold Slicer's main thread while the B-scans go to the job folder
    (bench_submit.py measures it): ``start`` writes none, each timer poll does a share (the smallest: scanning one
    B-scan for the volume's intensity rule, or writing one), the job reaches the worker once all are written, as
    the intensities the rule gives; a cancel before that sends nothing and removes the folder."""
    from DiDALib.mrml.volumes import bscans_from_volume_node, volume_array
    from DiDALib.worker.protocol import BSCANS_FILE

    session = _session(env, worker, mrml_package, n_bscans=4)
    session.start([3, 1, 2])
    job = session.job
    written = np.load(job.folder / BSCANS_FILE, mmap_mode="r")
    assert written.shape == (3, 48, 64) and not written.any(), "start wrote B-scans on the spot"
    counts = []
    while job._written < 2:
        assert job.poll(seconds=0) == []
        counts.append(job._written)
    assert counts == [0, 0, 0, 0, 1, 2], f"B-scans written after each poll: {counts} (4 to scan the volume first)"
    session._pending.extend(job.poll(seconds=None))  # the rest written, the job sent
    expected, _ = bscans_from_volume_node(session.volume)
    assert job._written == 3 and np.array_equal(np.load(job.folder / BSCANS_FILE), expected[[3, 1, 2]])
    assert session.wait(timeout=120) == "complete", session.summary()
    assert session.explanation.indices == [1, 2, 3]
    session.start([0])
    early = session.job
    session.cancel()
    assert session.wait(timeout=10) == "cancelled" and not early.folder.exists(), "the unsent job left its folder"
    volume_array(session.volume)[2, 5, 5] = np.nan  # found while the B-scans are written: one sentence, no job
    session.volume.GetImageData().Modified()
    session.start([0])
    assert session.wait(timeout=10) == "failed" and "1 NaN" in session.error and "\n" not in session.error


def test_the_status_line_warns_about_saturated_probabilities(env):
    """Slicer's status line carries the saturation warning of the run's results, with the fix."""
    from DiDALib.engine.result import DiDAResult
    from DiDALib.explanation import VolumeExplanation

    volume = fixtures.make_test_volume(env, n_bscans=2)
    names = tuple(fixtures.TEST_CLASSES)
    d = np.full((len(names), 3, 3), 1e-7, np.float32)
    base = np.full(len(names), 1e-5, np.float32)
    base[0] = 1 - base[1:].sum()  # saturated: the top class at 0.99996
    ex = VolumeExplanation(names, {}, (48, 64))
    for score, i in (("probabilities", 0), ("probabilities", 1)):
        ex.results[i] = DiDAResult(base_scores=base, deltas={3: d}, image_shape=(48, 64), region=(0, 0, 48, 64),
                                   score=score, index=i, class_names=names)
    stored = ExplainSession(env.scene, volume, None, None, name="stored")
    assert stored.replay(ex) == "complete"
    assert stored.summary().startswith("Done: 2 B-scan(s) explained. Warning: probabilities are saturated")
    assert "--score auto" in stored.summary()
