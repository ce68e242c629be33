"""The Slicer module's side of any model and any scan (issue 14), on slicer-core: the score modes a run can take, a
package that runs its own Python code only after the user agreed, and circle or radial scans marked as such."""

from __future__ import annotations

import numpy as np

from DiDALib.mrml import choices, scenarios
from DiDALib.mrml.layout import score_text
from DiDALib.mrml.results import read_scores
from DiDALib.mrml.session import ExplainSession


def test_score_modes_reach_the_worker_as_chosen():
    for mode in ("probabilities", "logits", "log-odds", "auto"):
        assert choices.run_settings("paper", "", "", "black", mode, "top3", "cpu")["score"] == mode
    assert choices.run_settings("paper", "", "", "black", "model", "top3", "cpu")["score"] is None


def _run(env, worker, package, volume, score: str) -> ExplainSession:
    session = ExplainSession(env.scene, volume, worker, package, {**scenarios.TEST_SETTINGS, "score": score})
    assert session.run_blocking([1], timeout=120) == "complete", session.summary()
    return session


def test_a_log_odds_run_labels_its_scores_plot_and_views_in_log_odds(env, worker, mrml_package):
    volume = scenarios.make_test_volume(env, n_bscans=2)
    p = _run(env, worker, mrml_package, volume, "probabilities")
    lo = _run(env, worker, mrml_package, volume, "log-odds")
    assert lo.run.setting("Score") == "log-odds" and lo.run.chart.GetYAxisTitle() == "log-odds"
    assert p.run.chart.GetYAxisTitle() == "probability"
    prob, odds = read_scores(p.run.table)[2][0], read_scores(lo.run.table)[2][0]
    # The same model on the same B-scan: log-odds are log(p / (1 - p)) of its probabilities.
    assert np.allclose(odds, np.log(prob / (1 - prob)), atol=1e-3), (prob, odds)
    assert score_text(float(odds[0]), lo.run.setting("Score")).startswith("log-odds ")
    auto = _run(env, worker, mrml_package, volume, "auto")
    # The random test model is far from saturated: auto takes probabilities, and the run says which mode it used.
    assert auto.run.setting("Score") == "probabilities"
    assert np.allclose(read_scores(auto.run.table)[2][0], prob, atol=1e-6)


def test_an_unknown_score_mode_is_refused_before_any_run(env, worker, mrml_package):
    volume = scenarios.make_test_volume(env, n_bscans=1)
    session = ExplainSession(env.scene, volume, worker, mrml_package, {**scenarios.TEST_SETTINGS, "score": "odds"})
    assert session.run_blocking(timeout=120) == "failed"
    assert "odds" in session.error and "Traceback" not in session.error
