"""The Slicer module's side of any model and any scan (issue 14), on slicer-core: the score modes a run can take, a
package that runs its own Python code only after the user agreed, and circle or radial scans marked as such."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from DiDALib.mrml import choices
from DiDALib.mrml.layout import score_text
from DiDALib.mrml.results import read_scores
from DiDALib.mrml.selftest import fixtures
from DiDALib.mrml.session import ExplainSession
from DiDALib.mrml.trust import CodeTrust
from DiDALib.worker.protocol import ModelRequest


def test_score_modes_reach_the_worker_as_chosen():
    for mode in ("probabilities", "logits", "log-odds", "auto"):
        assert choices.run_settings("paper", "", "", "black", mode, "top3", "cpu")["score"] == mode
    assert choices.run_settings("paper", "", "", "black", "model", "top3", "cpu")["score"] is None


def _run(env, worker, package, volume, score: str) -> ExplainSession:
    session = ExplainSession(env.scene, volume, worker, package, {**fixtures.TEST_SETTINGS, "score": score})
    assert session.run_blocking([1], timeout=120) == "complete", session.summary()
    return session


def test_a_log_odds_run_labels_its_scores_plot_and_views_in_log_odds(env, worker, mrml_package):
    volume = fixtures.make_test_volume(env, n_bscans=2)
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
    volume = fixtures.make_test_volume(env, n_bscans=1)
    session = ExplainSession(env.scene, volume, worker, mrml_package, {**fixtures.TEST_SETTINGS, "score": "odds"})
    assert session.run_blocking(timeout=120) == "failed"
    assert "odds" in session.error and "Traceback" not in session.error


NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))
'''


def _python_package(folder: Path, marker: Path) -> Path:
    """A package whose network is built by its own file (which also leaves ``marker`` when it runs)."""
    import torch

    folder.mkdir()
    source = f"open({str(marker)!r}, 'w').write('ran')\n" + NET
    (folder / "net.py").write_text(source, encoding="utf-8")
    namespace: dict = {}
    exec(NET, namespace)  # noqa: S102 (our own test source: the same class, built here to write its state dict)
    torch.save(namespace["Net"]().state_dict(), folder / "net.pth")
    spec = {"architecture": "python:net.py:Net", "weights": "net.pth", "classes": list(fixtures.TEST_CLASSES),
            "input_size": [32, 32], "channels": 1, "normalisation": "none", "name": "user code"}
    (folder / "model.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


def test_a_package_with_its_own_code_runs_only_after_the_user_agreed(env, worker, tmp_path, mrml_package):
    marker = tmp_path / "ran.txt"
    package = _python_package(tmp_path / "pkg", marker)
    trust = CodeTrust()
    question = trust.question(package)
    assert question is not None and str(package / "net.py") in question and question.endswith("Run it?")
    assert trust.request(package) == ModelRequest(str(package), trust_code=False)
    assert "Nothing was run" in trust.declined(package) and "net.py" in trust.declined(package)
    assert "own Python code (net.py): DiDA asks before running it" in choices.describe_model(package)
    assert trust.question(mrml_package) is None and not trust.request(mrml_package).trust_code  # no code: no question
    volume = fixtures.make_test_volume(env, n_bscans=2)
    # Without consent the worker refuses it, in one sentence that names the file, and none of its code runs.
    session = ExplainSession(env.scene, volume, worker, trust.request(package), fixtures.TEST_SETTINGS)
    assert session.run_blocking([0], timeout=120) == "failed"
    assert "net.py" in session.error and "own Python code" in session.error
    assert "Traceback" not in session.error and "\n" not in session.error
    assert session.run is None and not marker.exists()
    trust.agree(package)
    assert trust.question(package) is None and trust.request(package).trust_code
    session = ExplainSession(env.scene, volume, worker, trust.request(package), fixtures.TEST_SETTINGS)
    assert session.run_blocking([0], timeout=120) == "complete", session.summary()
    assert marker.exists() and session.run.finished == [0]
    # Consent is for the file as it was: a changed file is asked about again.
    (package / "net.py").write_text((package / "net.py").read_text() + "\n# changed\n", encoding="utf-8")
    assert trust.question(package) is not None and not trust.request(package).trust_code


def test_a_circle_scan_is_marked_in_the_module_and_keeps_its_geometry(env, tmp_path):
    from oct_samples import write_vol

    from DiDALib.io.registry import load_oct
    from DiDALib.mrml.volumes import add_oct_volume, oct_from_volume_node, scan_geometry

    raw = np.full((2, 24, 40), 1e-3, np.float32)
    raw[:, 12] = 0.2
    write_vol(tmp_path / "rnfl.vol", raw, scale=(0.0114, 0.0039, 0.0), laterality="OD", pattern=2,
              positions=[(4.0 + r, 4.5, 4.0, 4.5) for r in (1.75, 1.75)])
    node = add_oct_volume(env.scene, load_oct(tmp_path / "rnfl.vol"))
    assert scan_geometry(node) == "circle"
    text = choices.describe_volume(node)
    assert "Circle scan: B-scans are shown side by side as slices; nothing here is a 3-D geometry" in text
    assert "not a 3-D volume" in text and " x 1 mm" not in text and "A-scan spacing" in text
    assert oct_from_volume_node(node).geometry == "circle"
    phantom = fixtures.make_test_volume(env, n_bscans=1)
    assert choices.geometry_text(phantom) == "" and "\n" not in choices.describe_volume(phantom)
    back = env.save_and_reload(tmp_path / "scene")
    reloaded = next(n for n in back.scene.GetNodesByClass("vtkMRMLScalarVolumeNode") if n.GetName() == node.GetName())
    assert scan_geometry(reloaded) == "circle", "a saved scene forgot that the volume is a circle scan"
    back.close()
