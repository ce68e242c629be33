"""Score modes: log-odds exact for any margin and non-saturating where probabilities saturate, ``auto`` settled
once per run from the model's outputs, and every mode through the engine, the pipeline and ``dida explain``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import LinearScorer, softmax
from PIL import Image

from DiDALib import cli
from DiDALib.engine.core import DiDAEngine
from DiDALib.engine.scores import (
    AUTO_SATURATION,
    choose_auto,
    format_score,
    log_odds,
    score_unit,
    transform_scores,
)
from DiDALib.models.package import ModelPackage, save_model_package
from DiDALib.models.spec import ModelSpec
from DiDALib.pipeline import ExplainSettings, VolumeExplainer

SHAPE = (1, 12, 12)


def _log_odds64(z: np.ndarray) -> np.ndarray:
    """z_k - logsumexp_{j != k} z_j in float64, one row per image."""
    out = np.empty_like(z, dtype=np.float64)
    for k in range(z.shape[1]):
        others = np.delete(z, k, axis=1).astype(np.float64)
        m = others.max(axis=1, keepdims=True)
        out[:, k] = z[:, k] - (m[:, 0] + np.log(np.exp(others - m).sum(axis=1)))
    return out


def test_log_odds_is_exact_for_any_margin():
    z = np.array([[0.3, -1.2, 2.0], [40.0, 0.0, -7.0], [1e-3, 0.0, 0.0]])
    got = log_odds(torch.tensor(z, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, _log_odds64(z), rtol=1e-5, atol=1e-5)
    p = softmax(z[:1])
    np.testing.assert_allclose(got[0], np.log(p / (1 - p))[0], rtol=1e-5)  # the definition, where p is not saturated
    assert np.isfinite(got).all() and abs(got[1, 0] - (40 - np.log1p(np.exp(-7.0)))) < 1e-4
    assert transform_scores(torch.tensor(z[1:2], dtype=torch.float32), "probabilities")[0, 0] == 1.0  # p saturated
    single = torch.tensor([[2.5], [-1.0]])
    torch.testing.assert_close(log_odds(single), single)  # one output: its logit is the log-odds
    with pytest.raises(ValueError, match="not known"):
        transform_scores(single, "softmax")


def _scorer(scale: float, seed: int = 0) -> LinearScorer:
    m = LinearScorer(SHAPE, 3, seed=seed)
    with torch.no_grad():
        m.weight.mul_(scale)
        m.bias.mul_(scale)
    return m


def test_engine_log_odds_deltas_follow_from_the_logits():
    model = _scorer(1.0)
    x = torch.rand(SHAPE)
    logits = DiDAEngine(model, device="cpu", score="logits").explain(x, grids=(3,))
    odds = DiDAEngine(model, device="cpu", score="log-odds").explain(x, grids=(3,))
    base = logits.base_scores.astype(np.float64)
    masked = base[:, None, None] - logits.deltas[3].astype(np.float64)  # (K, 3, 3) logits of each masked image
    want = _log_odds64(base[None])[0][:, None, None] - np.moveaxis(_log_odds64(np.moveaxis(masked, 0, -1).reshape(-1, 3))
                                                                    .reshape(3, 3, 3), -1, 0)
    np.testing.assert_allclose(odds.deltas[3], want, rtol=1e-4, atol=1e-4)
    assert odds.score == "log-odds"


def test_an_overconfident_model_saturates_probabilities_but_not_log_odds():
    model = _scorer(60.0)  # logit margins in the tens, like the third-party Kermany classifier
    x = torch.rand(SHAPE)
    probs = DiDAEngine(model, device="cpu", score="probabilities").explain(x, grids=(3,))
    odds = DiDAEngine(model, device="cpu", score="log-odds").explain(x, grids=(3,))
    assert probs.base_scores.max() >= 1 - 1e-6
    d = np.abs(probs.deltas[3])
    assert not ((d > 1e-4) & (d < 1 - 1e-4)).any()  # all or nothing: 0 where p stays 1, 1 where the decision flips
    assert (np.abs(odds.deltas[3]) > 0.1).mean() > 0.5  # graded evidence in most cells, and log-odds shows it
    assert choose_auto(torch.tensor(probs.base_scores[None]).log())[0] == "log-odds"


def test_choose_auto_thresholds():
    sure = torch.tensor([[0.0, np.log(AUTO_SATURATION / (1 - AUTO_SATURATION)) + 0.01]])
    unsure = torch.tensor([[0.0, 1.0], [0.2, 0.1]])
    assert choose_auto(sure)[0] == "log-odds" and "saturated" in choose_auto(sure)[1]
    assert choose_auto(unsure)[0] == "probabilities"


def test_units_and_labels():
    assert [score_unit(m) for m in ("probabilities", "logits", "log-odds")] == ["probability", "logit", "log-odds"]
    assert format_score(0.934, "probabilities") == "p = 0.93" and format_score(4.2, "log-odds") == "log-odds 4.20"


def _package(model, score: str) -> ModelPackage:
    spec = ModelSpec(architecture="timm:none", classes=("a", "b", "c"), input_size=SHAPE[1:], score=score)
    return ModelPackage(spec, model, Path("."))


def test_auto_is_settled_once_per_explainer_from_the_explained_bscans():
    bscans = np.random.default_rng(0).random((3, 20, 20), dtype=np.float32)
    confident = VolumeExplainer(_package(_scorer(60.0), "auto"), ExplainSettings(grids=(2,), device="cpu"))
    assert confident.resolve_score(bscans) == "log-odds" and "saturated" in confident.score_note
    unsure = VolumeExplainer(_package(_scorer(0.001), "auto"), ExplainSettings(grids=(2,), device="cpu"))
    result = unsure.explain_bscan(bscans[0])
    assert unsure.engine.score == result.score == "probabilities" and "not saturated" in unsure.score_note
    unsure.package.model.weight.data.mul_(1e5)  # decided: a later B-scan does not change the run's unit
    assert next(unsure.explain(bscans, [1])).score == "probabilities"
    fixed = VolumeExplainer(_package(_scorer(60.0), "auto"), ExplainSettings(grids=(2,), device="cpu", score="logits"))
    assert fixed.resolve_score(bscans) == "logits" and fixed.score_note is None  # asked for: never overridden
    with pytest.raises(ValueError, match="score 'odds' is not known"):
        ExplainSettings(score="odds").check()


def test_engine_batches_to_a_models_fixed_batch_size():
    class Fixed(LinearScorer):
        fixed_batch_size = 5

    model = Fixed(SHAPE, 3)
    engine = DiDAEngine(model, device="cpu", channels_last=False)  # no memory-format probe passes
    engine.explain(torch.rand(SHAPE), grids=(3,))
    assert engine.batch_size == 5 and model.calls == [5, 5]  # 10 passes (the original and 9 cells)


@pytest.mark.parametrize("score", ["log-odds", "auto"])
def test_dida_explain_score_modes(tmp_path, capsys, score):
    timm = pytest.importorskip("timm")
    spec = ModelSpec(architecture="timm:test_efficientnet", classes=("a", "b", "c"), input_size=(32, 32))
    net = timm.create_model("test_efficientnet", pretrained=False, num_classes=3, in_chans=1)
    package = save_model_package(tmp_path / "pkg", spec, net)
    image = tmp_path / "b.png"
    Image.fromarray((np.random.default_rng(0).random((24, 30)) * 255).astype(np.uint8)).save(image)
    code = cli.main([str(a) for a in ("explain", image, "--model", package, "--score", score, "--grids", "2",
                                      "--device", "cpu", "--quiet", "--out", tmp_path / "r")])
    assert code == 0, capsys.readouterr().err
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    if score == "auto":  # random weights are far from saturated
        assert run["score"] == "probabilities" and run["score_choice"].startswith("auto: probabilities")
    else:
        assert run["score"] == "log-odds" and "score_choice" not in run
    assert str(np.load(tmp_path / "r" / "dida_results.npz")["score"]) == run["score"]


# -- honest score modes: auto by default, saturated probabilities warned about, the mode named everywhere ----------

def test_a_package_that_names_no_score_mode_gets_auto():
    spec = ModelSpec.from_dict({"architecture": "torchscript", "classes": ["a", "b"]})
    assert spec.score == "auto" and ModelSpec(architecture="x", classes=("a", "b")).score == "auto"


def _overconfident_package(folder: Path, score: str | None, scale: float = 400.0) -> Path:
    """A TorchScript package of a model with logit margins in the tens, like the third-party Kermany classifier."""
    import warnings

    class Confident(torch.nn.Module):
        def __init__(self, scale: float):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, 3)
            self.scale = scale

        def forward(self, x):
            return self.fc(torch.tanh(self.conv(x)).mean(dim=(2, 3))) * self.scale

    torch.manual_seed(1)
    folder.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(Confident(scale).eval()), str(folder / "m.pt"))
    data = {"architecture": "torchscript", "weights": "m.pt", "classes": ["CNV", "DME", "NORMAL"],
            "input_size": [16, 16], **({"score": score} if score else {})}
    (folder / "model.json").write_text(json.dumps(data))
    return folder


def _bscan_png(path: Path) -> Path:
    rng = np.random.default_rng(4)
    b = rng.random((20, 24)) * 0.4
    b[8:12] += 0.5
    Image.fromarray((b * 255).astype(np.uint8)).save(path)
    return path


def test_saturated_probabilities_are_warned_about_on_console_record_figure_page_and_slicer(tmp_path, capsys,
                                                                                            drawn):
    """A package that insists on probabilities over a saturated model draws vivid maps of nothing: one line with the
    fix (--score auto) on the console, in run.json, on the PNG figure and the page, and in Slicer's status line."""
    from DiDALib.engine.saturation import saturation_warning

    package = _overconfident_package(tmp_path / "pkg", "probabilities")
    image = _bscan_png(tmp_path / "b.png")
    code = cli.main([str(a) for a in ("explain", image, "--model", package, "--grids", "3", "--device", "cpu",
                                      "--quiet", "--out", tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 0, err
    warning = [line for line in err.splitlines() if "saturated" in line]
    assert len(warning) == 1 and "--score auto" in warning[0] and warning[0].startswith("dida: warning:")
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["score"] == "probabilities" and "--score auto" in run["score_warning"]
    assert any("saturated" in t and "--score auto" in t for t in drawn)  # on the figure itself
    assert "--score auto" in (tmp_path / "r" / "report.html").read_text()
    # Slicer's status line reads the same sentence from the session's results
    from DiDALib.io.results import load_results

    ex = load_results(tmp_path / "r" / "dida_results.npz")
    assert saturation_warning(ex.results.values()) == run["score_warning"]
    # auto on the same model: log-odds, no warning
    code = cli.main([str(a) for a in ("explain", image, "--model", package, "--grids", "3", "--device", "cpu",
                                      "--quiet", "--no-figures", "--no-report", "--score", "auto", "--out",
                                      tmp_path / "a")])
    _, err = capsys.readouterr()
    assert code == 0 and "saturated" not in err.replace("is saturated (top probability", "")
    assert "score_warning" not in json.loads((tmp_path / "a" / "run.json").read_text())


def test_the_saturation_warning_thresholds():
    from DiDALib.engine.result import DiDAResult
    from DiDALib.engine.saturation import FAINT_SHARE, SATURATED_TOP, saturation_warning

    def result(top: float, peak: float, score: str = "probabilities") -> DiDAResult:
        d = np.zeros((2, 3, 3), np.float32)
        d[0, 1, 1] = peak
        return DiDAResult(base_scores=np.array([top, 1 - top], np.float32), deltas={3: d}, image_shape=(9, 9),
                          region=(0, 0, 9, 9), score=score, index=0)

    assert saturation_warning([result(0.9, 0.2)]) is None
    assert "top probability 0.9995" in saturation_warning([result(0.9995, 0.2)])
    assert SATURATED_TOP == 0.999 and FAINT_SHARE == 0.01
    faint = saturation_warning([result(0.9, 0.005)])
    assert faint is not None and "0.56 %" in faint and "--score log-odds" in faint  # 0.005 of a top score of 0.9
    assert "--score auto" in saturation_warning([result(0.9995, 0.2)])
    assert saturation_warning([result(0.9995, 0.2, "log-odds")]) is None  # only probabilities saturate


def test_the_score_mode_is_named_wherever_a_score_is_shown(tmp_path, capsys, drawn):
    """scores.csv says its mode, every panel caption names the unit ("CNV log-odds 15.54"), and the console says
    which mode ran and, for auto, why."""
    import csv

    package = _overconfident_package(tmp_path / "pkg", None)  # no score field: auto, here log-odds
    image = _bscan_png(tmp_path / "b.png")
    code = cli.main([str(a) for a in ("explain", image, "--model", package, "--grids", "3", "--device", "cpu",
                                      "--quiet", "--view", "classes,contrast", "--out", tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 0, err
    with open(tmp_path / "r" / "scores.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:2] == ["bscan", "score_mode"] and rows[1][1] == "log-odds"
    captions = [t for t in drawn if t.startswith(("CNV", "DME", "NORMAL"))]
    assert captions and all("log-odds" in t for t in captions), captions
    assert "score: log-odds (auto: log-odds, because the model is saturated" in out
    page = (tmp_path / "r" / "report.html").read_text()
    assert '"score_label":"log-odds"' in page
