"""Faithfulness: on phantom B-scans whose lesions are known pixel by pixel, DiDA's maps of the bundled demo model
point at the lesions, measured with the faithfulness benchmark's own metric code (``DiDALib.evaluation``) on a
small set: one phantom per lesion class, one DiDA run each over the paper's grids and the evidence schedule.

(a) For every lesion class, most of the true class's positive (red) Mixed-Image mass lies on the lesion, although
    the lesion covers only a small part of the B-scan.
(b) For ``normal``, the lesion carries net negative (blue) evidence, clearly more than the rest of the B-scan:
    "blue on normal means a lesion", as in the paper's worked examples.
(c) The metrics themselves: an oracle map (the lesion) beats a random map on every metric, as the benchmark
    requires of every run, and each metric gives its known value on hand-made maps.
(d) DiDA's evidence map on the evidence schedule points at the lesion, and is ahead of the random and centre maps
    and of the paper's Mixed Image as displayed.

A Mixed Image paints whole cells and cannot place evidence more finely than its finest cell, so for (a) and (b) the
lesion mask is dilated by one cell of the finest grid (12 rows and 18 columns of a 256 x 384 B-scan). Evidence
"mass" is measured with linear brightness (gamma 1, a = |d| / scale), proportional to the contributions d. Run with
``pytest -s`` to see the figures; the full comparison with Grad-CAM, RISE and occlusion is
``Testing/benchmarks/bench_faithfulness.py`` (README, "Faithfulness").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from DiDALib import EVIDENCE_GRIDS, PAPER_GRIDS, evidence_map, mixed_image
from DiDALib.engine.core import DiDAEngine
from DiDALib.engine.masks import fill_image, gaussian_blur
from DiDALib.evaluation import baselines as B
from DiDALib.evaluation import metrics as M
from DiDALib.evaluation.cases import LESIONS, Case, phantom_cases
from DiDALib.evaluation.dida_runs import part
from DiDALib.models.package import demo_model_path, load_model_package
from DiDALib.phantom import CLASSES, make_dataset
from DiDALib.pipeline import ExplainSettings, engine_fill

SEED = 2027  # not used by train_demo_model.py (seeds spawned from 1 and 2) nor by the benchmark (31337, 4099)
PER_CLASS = 1  # one phantom per lesion class: 4 DiDA runs of 3,057 passes, about 20 s on two CPU cores
DEPTH, WIDTH = 256, 384
STEPS = 20  # deletion / insertion steps per curve, as the benchmark


@dataclass
class Run:
    case: Case
    result: object  # probability-mode DiDAResult over the paper's grids and the evidence schedule
    dilated: np.ndarray  # the lesion on the B-scan, dilated by one finest paper cell


def cell_allowance(grids=PAPER_GRIDS) -> tuple[int, int]:
    """One cell of the finest grid, in B-scan rows and columns."""
    n = max(grids)
    return round(DEPTH / n), round(WIDTH / n)


def test_phantom_ground_truth_is_reproducible_and_local():
    """The ground truth itself: the same seed gives the same phantoms, intensities lie in [0, 1], normal B-scans
    carry no lesion and every lesion covers a small part of its B-scan."""
    images, labels, masks = make_dataset(1, seed=SEED, depth=DEPTH, width=WIDTH)
    again, _, masks_again = make_dataset(1, seed=SEED, depth=DEPTH, width=WIDTH)
    assert images.shape == (len(CLASSES), DEPTH, WIDTH) and images.dtype == np.float32
    assert masks.shape == images.shape and masks.dtype == bool
    assert list(labels) == list(range(len(CLASSES)))
    assert np.array_equal(images, again) and np.array_equal(masks, masks_again)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images[:, : DEPTH // 8].mean() < 0.15, "the vitreous at the top should be dark"
    for label, mask in zip(labels, masks):
        if CLASSES[label] == "normal":
            assert not mask.any()
        else:
            assert 0.002 < mask.mean() < 0.15, f"{CLASSES[label]}: lesion covers {mask.mean():.1%}"


def test_metrics_give_their_known_values_on_hand_made_maps():
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True
    plateau = np.zeros((10, 10))
    plateau[2:4, 2:6] = 1.0  # half of the maximal pixels on the lesion
    assert M.pointing_game(plateau, mask, tolerance=0) == 0.5
    assert M.pointing_game(plateau, mask, tolerance=0.2) == 1.0  # 2 pixels' grace reaches the rest
    assert M.relevance_mass(plateau - 0.5, mask) == pytest.approx(0.5)  # only positive mass counts
    assert M.relevance_mass(-plateau, mask) == 0.0
    assert M.auc(np.array([1.0, 1.0, 1.0])) == 1.0 and M.auc(np.array([1.0, 0.0, 0.0])) == pytest.approx(0.25)
    tie = np.arange(100)[::-1].astype(float).reshape(10, 10)
    order = M.ranking(plateau, tie)
    assert set(order[:8]) == set(np.flatnonzero(plateau)) and order[0] == 35  # the tie with the smallest key
    assert set(M.ranking(plateau, tie, most_relevant_first=False)[-8:]) == set(order[:8])
    mean, lo, hi = M.bootstrap_mean(np.array([0.1, 0.2, 0.3, 0.4]), np.array(["a", "a", "b", "b"]))
    assert mean == pytest.approx(0.25) and lo < mean < hi
    assert M.bootstrap_mean(np.ones(5)) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="lesion"):
        M.pointing_game(plateau, np.zeros((10, 10), bool))


@pytest.fixture(scope="module")
def demo():
    package = load_model_package(demo_model_path())
    assert package.spec.demo and list(package.spec.classes) == list(CLASSES)
    return package


@pytest.fixture(scope="module")
def runs(demo) -> list[Run]:
    cases = phantom_cases(demo, SEED, PER_CLASS, depth=DEPTH, width=WIDTH)
    fill = engine_fill(ExplainSettings().fill, demo)
    engine = DiDAEngine(demo.model, device="cpu", score=demo.spec.score, fill=fill, class_names=demo.spec.classes)
    grids = sorted(set(PAPER_GRIDS) | set(EVIDENCE_GRIDS))
    results = engine.explain_volume([c.image for c in cases], grids=grids, region=cases[0].region)
    rows, cols = cell_allowance()
    return [Run(c, r, M.dilate(c.mask, (rows, cols))) for c, r in zip(cases, results)]


@pytest.mark.parametrize("label", LESIONS)
def test_true_class_evidence_lies_on_the_lesion(runs, label):
    """(a) Most of the true class's red mass is on the (dilated) lesion, which covers a small part of the image."""
    for run in (r for r in runs if r.case.label == label):
        paper = part(run.result, PAPER_GRIDS)
        positive = mixed_image(paper, label, shape=(DEPTH, WIDTH), gamma=1.0).positive
        display = mixed_image(paper, label, shape=(DEPTH, WIDTH)).positive
        fraction = M.relevance_mass(positive, run.dilated)
        coverage = float(run.dilated.mean())
        print(f"\n[faithfulness a] {label}: red mass on the lesion {fraction:.1%} (display gamma "
              f"{M.relevance_mass(display, run.dilated):.1%}); the dilated mask covers {coverage:.1%} of the B-scan")
        assert positive.sum() > 0, f"{label}: the true class has no positive evidence at all"
        assert coverage < 0.2, f"{label}: the dilated lesion covers {coverage:.1%} of the B-scan, too much for a test"
        assert fraction > 0.5 and fraction > 3 * coverage, f"{label}: {fraction:.1%} of the red mass on the lesion"


@pytest.mark.parametrize("label", LESIONS)
def test_lesion_is_evidence_against_normal(runs, label):
    """(b) On a lesion B-scan, the lesion speaks against ``normal``: net blue there, far more than elsewhere, in
    the paper's Mixed Image and in the evidence map alike."""
    for run in (r for r in runs if r.case.label == label):
        for name, net in (("Mixed Image", mixed_image(part(run.result, PAPER_GRIDS), "normal", shape=(DEPTH, WIDTH)).net),
                          ("evidence map", evidence_map(part(run.result, EVIDENCE_GRIDS), "normal", (DEPTH, WIDTH)))):
            inside, outside = float(net[run.case.mask].mean()), float(net[~run.dilated].mean())
            print(f"\n[faithfulness b] {label}, {name}: mean 'normal' evidence on the lesion {inside:+.4f}, "
                  f"away from it {outside:+.4f}")
            assert inside < 0, f"{label}: the lesion does not speak against normal ({name}, mean {inside:+.4f})"
            assert outside - inside > 0.5 * abs(inside), f"{label}: {name} not clearly against normal on the lesion"


@pytest.fixture(scope="module")
def scored(runs, demo) -> dict[str, list[dict]]:
    """Every map of the small set scored with the benchmark's metrics (deletion fills as DiDA fills)."""
    model = demo.model  # channels-last since the engine took it: batches of 8 in that layout run fastest on a CPU

    def score(x):
        with torch.no_grad():
            return torch.softmax(model(x.contiguous(memory_format=torch.channels_last)), dim=1)

    fill_value = engine_fill(ExplainSettings().fill, demo)
    out: dict[str, list[dict]] = {}
    for i, run in enumerate(runs):
        c = run.case
        maps = {
            "evidence": evidence_map(part(run.result, EVIDENCE_GRIDS), c.class_index),
            "mixed_display": mixed_image(part(run.result, PAPER_GRIDS), c.class_index).net,
            "random": B.random_map(c.input_mask.shape, np.random.default_rng([SEED, i])),
            "centre": B.centre_map(c.input_mask.shape),
            "oracle": B.oracle_map(c.input_mask),
        }
        tie = np.random.default_rng([SEED, i, 1]).random(c.input_mask.shape)
        curves = M.perturbation_curves(score, c.image, fill_image(c.image, fill_value, c.region),
                                       gaussian_blur(c.image, min(c.image.shape[1:]) / 45), list(maps.values()), tie,
                                       STEPS, batch_size=8)
        for (name, m), cv in zip(maps.items(), curves):
            out.setdefault(name, []).append(M.map_metrics(m, c.input_mask, cv, c.class_index))
    return out


def _means(rows: list[dict]) -> dict[str, float]:
    return {m: float(np.mean([r[m] for r in rows])) for m in rows[0]}


def test_oracle_beats_random_on_every_metric(scored):
    """(c) The benchmark's metric check, on the small set."""
    oracle, rand = _means(scored["oracle"]), _means(scored["random"])
    print("\n[faithfulness c] oracle " + ", ".join(f"{k} {v:.3f}" for k, v in oracle.items())
          + "\n[faithfulness c] random " + ", ".join(f"{k} {v:.3f}" for k, v in rand.items()))
    for m, higher in M.HIGHER_IS_BETTER.items():
        assert (oracle[m] > rand[m]) if higher else (oracle[m] < rand[m]), f"{m}: oracle does not beat random"


def test_evidence_map_points_at_the_lesion_and_beats_the_display_and_the_sanity_maps(scored):
    """(d) The evidence map hits the lesion on every phantom, beats the random map on every metric, the centre map
    on pointing, mass and ABPC (the centre deletes as fast on this small set: its lesions sit mid-B-scan, where
    deleting anything hurts), and the paper's Mixed Image as displayed on mass, deletion and ABPC."""
    ev = _means(scored["evidence"])
    print("\n[faithfulness d] " + "; ".join(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in _means(rows).items())
                                            for name, rows in scored.items()))
    assert min(r["pointing"] for r in scored["evidence"]) == 1.0

    def ahead(metric: str, other: str) -> bool:
        o = _means(scored[other])[metric]
        return ev[metric] > o if M.HIGHER_IS_BETTER[metric] else ev[metric] < o

    for metric in M.HIGHER_IS_BETTER:
        assert ahead(metric, "random"), f"the evidence map does not beat the random map on {metric}"
    for metric in ("pointing", "mass", "abpc"):
        assert ahead(metric, "centre") or metric == "pointing" and ev[metric] == 1.0, f"centre ahead on {metric}"
    for metric in ("mass", "deletion", "abpc"):
        assert ahead(metric, "mixed_display"), f"the Mixed Image as displayed is ahead on {metric}"
