"""The evidence schedule and the background fill through the pipeline, the results file and ``dida explain``; runs
of the paper's aligned grids keep writing the files they always wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from DiDALib import EVIDENCE_GRIDS, OffsetGrid, cli, evidence_map, offset_grids
from DiDALib.engine.core import DiDAEngine
from DiDALib.io.results import RESULTS_FORMAT, load_results, write_results
from DiDALib.pipeline import ExplainSettings, VolumeExplainer, VolumeExplanation

CLASSES = ("normal", "drusen", "wet_amd")


@pytest.fixture
def package(mrml_package) -> Path:
    """The suite's tiny model package (timm test_efficientnet, 32 x 32 grey input, random weights)."""
    return mrml_package


def _volume(n=2, depth=24, width=30) -> np.ndarray:
    rng = np.random.default_rng(7)
    v = rng.random((n, depth, width)).astype(np.float32)
    v[:, : depth // 4] = 0.02
    return v


def _explanation(grids) -> VolumeExplanation:
    engine = DiDAEngine(lambda x: x.mean(dim=(2, 3)).repeat(1, 3) * torch.tensor([1.0, -2.0, 3.0]), device="cpu",
                        score="logits", class_names=CLASSES)
    ex = VolumeExplanation(CLASSES, {}, (12, 12))
    for i, img in enumerate(np.random.default_rng(3).random((2, 1, 12, 12), dtype=np.float32)):
        r = engine.explain(img, grids=grids)
        r.index = i
        ex.results[i] = r
    return ex


def test_results_files_of_shifted_grids_round_trip_and_aligned_ones_keep_format_1(tmp_path):
    for grids, fmt in (((2, 3), RESULTS_FORMAT), (offset_grids((2, 3), 2) + (OffsetGrid(4, "1/3", 0),),
                                                   "dida-results/2")):
        ex = _explanation(grids)
        path = write_results(tmp_path / f"r{len(grids)}.npz", ex)
        with np.load(path, allow_pickle=False) as data:
            assert str(data["format"]) == fmt
            assert ("grid_keys" in data) == (fmt != RESULTS_FORMAT)
            if fmt == RESULTS_FORMAT:
                assert sorted(k for k in data.files if k.startswith("d_")) == ["d_2", "d_3"]
        back = load_results(path)
        for i in ex.indices:
            assert back.results[i].grids == ex.results[i].grids
            for g in ex.results[i].grids:
                np.testing.assert_array_equal(back.results[i].deltas[g], ex.results[i].deltas[g])
            np.testing.assert_array_equal(evidence_map(back.results[i], 1), evidence_map(ex.results[i], 1))


def test_pipeline_runs_the_evidence_schedule_with_the_background_fill(package):
    from DiDALib.models.package import load_model_package

    explainer = VolumeExplainer(load_model_package(package), ExplainSettings(
        grids=offset_grids((2, 3), 2), fill="background", device="cpu"))
    ex = explainer.explain_all(_volume())
    assert ex.results[0].grids == offset_grids((2, 3), 2)
    e = ex.evidence(1, 2)
    assert e.shape == (24, 30) and e.dtype == np.float32 and np.isfinite(e).all()
    m = ex.mixed(1, 2)
    assert m.positive.shape == (24, 30) and 0 <= m.positive.min() and m.positive.max() <= 1
    with pytest.raises(ValueError, match="fill 'grey' is not known"):
        VolumeExplainer(load_model_package(package), ExplainSettings(fill="grey", device="cpu"))


def test_dida_explain_takes_schedule_names_and_offset_grids(tmp_path, capsys, package):
    import SimpleITK as sitk

    source = tmp_path / "v.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(_volume()), str(source))
    out = tmp_path / "out"
    code = cli.main(["explain", str(source), "--model", str(package), "--out", str(out), "--grids", "3,2:2",
                     "--weights", "2,1", "--fill", "background", "--device", "cpu", "--quiet", "--no-figures"])
    assert code == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["grid_schedule"] == "2:2,3" and run["fill"] == "background"
    assert run["grids"] == [2, "2@0_1/2", "2@1/2_0", "2@1/2_1/2", 3] and run["masked_images_per_bscan"] == 4 + 6 * 2 + 9 + 9
    ex = load_results(out / "dida_results.npz")
    assert ex.results[0].grids == tuple(sorted(offset_grids((2,), 2) + (3,)))
    assert ex.weights == (1.0, 2.0)  # one per size, given for 3 then 2, stored coarse to fine
    from DiDALib.cli.explain import settings_from_args

    for text, grids in (("evidence", EVIDENCE_GRIDS), ("paper", (7, 9, 11, 13, 15, 17, 19, 21))):
        args = type("A", (), {"grids": text, "weights": None, "classes": "top3", "fill": "black", "score": None,
                              "device": "cpu", "precision": "auto", "batch_size": None,
                              "estimator": "leave-one-out", "permutations": None, "seed": 0})()
        assert settings_from_args(args).grids == grids
    code = cli.main(["explain", str(source), "--model", str(package), "--out", str(tmp_path / "bad"), "--grids",
                     "evidence,7", "--device", "cpu", "--quiet"])
    assert code == 2 and "--grids" in capsys.readouterr().err and not (tmp_path / "bad").exists()
