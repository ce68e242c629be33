"""The real-data mode of the faithfulness benchmark (``Testing/benchmarks/faithfulness_real.py``): its explainers
on a shipped real B-scan with a tiny model (quick; the benchmark itself runs the bundled model on the Kermany
validation B-scans), the same-budget settings, and captum's Shapley value sampling over cells, checked against
exact Shapley values."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import make_package

from DiDALib.engine.estimators import SHAPLEY_GRIDS, Shapley, estimator_passes
from DiDALib.evaluation import baselines as B
from DiDALib.evaluation.image_cases import image_cases
from DiDALib.models.package import load_model_package

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Testing" / "benchmarks"))

import faithfulness_real as FR  # noqa: E402

SAMPLES = ROOT / "Resources" / "Samples" / "kermany"
CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")


def test_shapley_over_cells_is_exact_on_an_additive_model():
    """For a linear score every permutation gives each cell the same marginal contribution, so sampled Shapley
    values equal the exact ones: the sum over the cell of weight x (image - fill), signed; and the passes counted
    are the passes made."""
    g = torch.Generator().manual_seed(0)
    image, fill = torch.rand((1, 8, 8), generator=g), torch.full((1, 1, 1), 0.2)
    weights = torch.randn((2, 8, 8), generator=g)
    calls = []

    def score(x):
        calls.append(x.shape[0])
        return torch.einsum("bchw,khw->bk", x, weights)

    cells = (np.arange(8)[:, None] // 4) * 2 + np.arange(8)[None, :] // 4  # a 2 x 2 grid
    got, passes = B.shapley_cells_map(score, image, fill, cells, class_index=1, n_samples=3, seed=5)
    contribution = (weights[1] * (image[0] - 0.2)).numpy()
    exact = np.array([contribution[cells == c].sum() for c in range(4)])[cells]
    np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-5)
    assert (got < 0).any() and (got > 0).any(), "signed"
    assert passes == sum(calls) == 3 * 4 + 1
    again, _ = B.shapley_cells_map(score, image, fill, cells, class_index=1, n_samples=3, seed=5)
    np.testing.assert_array_equal(got, again)


def test_the_same_budget_settings_stay_within_didas_passes():
    window, stride = FR.same_budget_occlusion(224, 224)
    assert window == 28 and B.occlusion_passes(224, 224, window, stride) <= FR.BUDGET
    assert B.occlusion_passes(224, 224, window, stride - 1) > FR.BUDGET, "the finest stride within the budget"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    package = load_model_package(make_package(tmp_path_factory.mktemp("tiny"), CLASSES))
    files = [(p, p.name.split("-")[0]) for p in sorted(SAMPLES.glob("*.jpeg"))]
    cases = image_cases(package, files, per_class=1, correct_only=False)
    scorer = FR.Counter(package.model)
    ctx = FR.Context(package, scorer, "background", rise_masks=16, shapley_samples=2, occlusion=(8, 8),
                     gradcam_layer="conv_head", seed=0)
    return ctx, cases


def test_every_explainer_maps_a_real_bscan_at_its_cost(tiny_run):
    """Each entry of ``METHODS`` gives a finite map of the model input's size and says what it cost; the DiDA
    entries cost their schedule's passes (the benchmark runs them once, first), the others the passes they made
    (the benchmark reports the passes counted)."""
    ctx, cases = tiny_run
    assert [c.label for c in cases] == list(CLASSES)
    case = cases[2]
    ctx.dida(case, 2)
    for method in FR.METHODS:
        before = ctx.scorer.images
        m, passes = method.explain(ctx, case, 2)
        assert m.shape == tuple(case.image.shape[1:]) and np.isfinite(m).all(), method.name
        if method.name == "dida_shapley":  # its own run, every class at once, in the phantom table's schedule
            assert passes == estimator_passes(SHAPLEY_GRIDS, Shapley()) == ctx.scorer.images - before <= FR.BUDGET
        elif method.name.startswith("dida_"):
            assert passes in (FR.BUDGET, 1716) and ctx.scorer.images == before, method.name
        elif method.name in ("rise", "occlusion", "shapley_7x7"):  # occlusion_map asks once more for the classes
            assert 0 < passes <= ctx.scorer.images - before <= passes + 1, method.name
    assert len({m.name for m in FR.METHODS}) == len(FR.METHODS)


def test_the_tables_come_from_the_rows():
    """The summary and the README tables of made-up rows: means, paired differences and ABPC per class."""
    rows = [{"case": i, "label": CLASSES[i % 4], "explainer": name, "score": "probabilities", "passes": passes,
             "seconds": 1.0 + i + k, "deletion": 0.1 * k, "lerf": 0.5, "abpc": 0.5 - 0.1 * k, "insertion": 0.9}
            for i in range(8) for k, (name, passes) in enumerate((("dida_evidence_evidence", 1716), ("rise", 1737)))]
    table = FR.summarise(rows, 0, FR.METRICS, CLASSES)
    pairs = {"vs_rise": FR.paired(rows, "dida_evidence_evidence|probabilities", "rise|probabilities", 0, FR.METRICS)}
    assert table["rise|probabilities"]["abpc"][0] == pytest.approx(0.4)
    assert pairs["vs_rise"]["abpc"] == pytest.approx([0.1, 0.1, 0.1])
    cost = FR.cost_per_bscan(rows, [6.0, 8.0], 3057)
    assert cost["explainers"] == {"dida_evidence_evidence": 4.5, "rise": 5.5}
    assert cost["dida_leave_one_out_run"] == {"passes": 3057, "seconds": 7.0,
                                              "paper_grids_seconds_at_its_rate": round(7.0 * FR.BUDGET / 3057, 3)}
    text = FR.markdown({"main": table, "paired_dida_evidence_evidence_minus": pairs,
                        "bscans": dict.fromkeys(CLASSES, 2), "seconds_per_bscan": cost})
    assert "| rise | 5.50 |" in text and "| DiDA leave-one-out run, both schedules (3,057 passes) | 7.00 |" in text
    assert "| rise | 1,737 | 0.100 [0.100, 0.100] | 0.900 [0.900, 0.900] | 0.400 [0.400, 0.400] |" in text
    assert "| dida_evidence_evidence minus |" in text and "| rise | -0.100" in text
    assert "| dida_evidence_evidence | 0.500 | 0.500 | 0.500 | 0.500 |" in text
