"""Faithfulness of DiDA's Shapley values on the bundled demo model, where leave-one-out d is weakest: geographic
atrophy, whose evidence is spread over many cells, so that hiding any one of them changes little. On one such
phantom of the test seed, at the same budget as the paper's grids, the Shapley evidence map deletes the class
faster (larger ABPC, the benchmark's metric) than the leave-one-out evidence map of the paper's grids, points at the
atrophy, and its values sum to the drop when the whole B-scan is hidden. The full comparison (RISE, occlusion,
Grad-CAM, captum's ShapleyValueSampling, 24 phantoms) is ``Testing/benchmarks/bench_faithfulness.py``
(docs/faithfulness.md)."""

from __future__ import annotations

import numpy as np
import pytest

from DiDALib import PAPER_GRIDS, SHAPLEY_GRIDS, Shapley, evidence_map
from DiDALib.engine.core import DiDAEngine
from DiDALib.engine.estimators import estimator_passes
from DiDALib.engine.masks import fill_image, gaussian_blur
from DiDALib.evaluation import metrics as M
from DiDALib.evaluation.cases import phantom_cases
from DiDALib.models.package import load_model_package, phantom_model_path
from DiDALib.pipeline import ExplainSettings, engine_fill

SEED = 2027  # the faithfulness tests' seed (test_faithfulness.py): not the benchmark's 31337 nor its selection's 4099
#: ABPC lead of the Shapley map over leave-one-out on this phantom that the test requires; measured 0.69 (0.863
#: against 0.177), so a regression to leave-one-out's behaviour fails it.
MARGIN = 0.3


def test_shapley_map_beats_leave_one_out_on_spread_atrophy():
    demo = load_model_package(phantom_model_path())  # phantoms: the phantom model (#23 made Kermany the default)
    case = phantom_cases(demo, SEED, 1, labels=("geographic_atrophy",), depth=256, width=384)[0]
    fill = engine_fill(ExplainSettings().fill, demo)
    engine = DiDAEngine(demo.model, device="cpu", score=demo.spec.score, fill=fill, class_names=demo.spec.classes)
    loo = engine.explain(case.image, grids=PAPER_GRIDS, region=case.region)
    shapley = engine.explain(case.image, grids=SHAPLEY_GRIDS, region=case.region, estimator=Shapley())
    assert estimator_passes(SHAPLEY_GRIDS, Shapley()) <= estimator_passes(PAPER_GRIDS)
    k = case.class_index
    maps = [evidence_map(shapley, k), evidence_map(loo, k)]
    fill_img = fill_image(case.image, fill, case.region)
    tie = np.random.default_rng([SEED, 1]).random(case.input_mask.shape)

    def score(x):
        return engine.scores(x.contiguous(memory_format=engine.memory_format))

    curves = M.perturbation_curves(score, case.image, fill_img, gaussian_blur(case.image, 160 / 45), maps, tie)
    s, d = (M.map_metrics(m, case.input_mask, c, k) for m, c in zip(maps, curves))
    print(f"\n[shapley] geographic atrophy: ABPC Shapley {s['abpc']:.3f}, leave-one-out {d['abpc']:.3f}; "
          f"pointing {s['pointing']:.2f}, mass {s['mass']:.3f}")
    assert s["abpc"] > d["abpc"] + MARGIN
    assert s["pointing"] == 1.0
    hidden = case.image.clone()  # efficiency: the values of each grid share out C(I) - C(everything hidden)
    hidden[:] = fill_img.expand_as(hidden)
    drop = float(score(case.image[None])[0, k] - score(hidden[None])[0, k])
    for g in SHAPLEY_GRIDS:
        assert float(shapley.deltas[g][k].sum()) == pytest.approx(drop, abs=1e-5)
