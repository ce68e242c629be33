"""The Shapley estimator through everything that carries d: ``dida explain --estimator shapley`` writes its values
as it writes d (maps, figures, the page), ``run.json`` and ``dida_results.npz`` say which estimator made them, with
what permutations and seed and how exact the values are; ``dida view`` reads them back; the worker carries them and
the Slicer module's choice into a scene and an export; bad choices fail with one line and write nothing."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from cli_helpers import FAST, make_package, one_line
from cli_helpers import bscans as _bscans
from cli_helpers import run as _run
from oct_samples import write_sample

from DiDALib import cli
from DiDALib.engine.estimators import SHAPLEY_GRIDS, Shapley, split_budget
from DiDALib.engine.result import DiDAResult
from DiDALib.io.results import RESULTS_FORMAT_ESTIMATOR, load_results
from DiDALib.worker.protocol import decode_result, encode_result

pytest.importorskip("timm")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return make_package(tmp_path_factory.mktemp("model") / "pkg")


def test_explain_with_shapley_records_the_estimator_and_view_reads_it(tmp_path, capsys, package):
    source = write_sample("nrrd", tmp_path / "v.nrrd", _bscans(2))
    out = tmp_path / "out"
    code, printed, err = _run(capsys, "explain", source, "--model", package, "--out", out, "--estimator", "shapley",
                              "--grids", "2,3", "--permutations", "4,6", "--seed", "5", "--device", "cpu", "--quiet",
                              "--view", "classes,contrast,scale")
    assert code == 0, err
    assert "Shapley values (62 passes per B-scan): standard errors" in printed
    run = json.loads((out / "run.json").read_text())
    assert run["estimator"] == "shapley" and run["grids"] == [2, 3]
    shapley = run["shapley"]
    assert shapley["permutations"] == {"2": 4, "3": 6} and shapley["seed"] == 5 and shapley["antithetic"]
    assert run["masked_images_per_bscan"] == shapley["passes_per_image"] - 1 == 1 + 4 * 3 + 6 * 8
    ex = load_results(out / "dida_results.npz")
    errors = np.concatenate([r.stderr[g].ravel() for r in ex.results.values() for g in r.grids])
    assert shapley["stderr"]["largest"] == pytest.approx(float(errors.max())) and errors.min() >= 0
    assert all(r.estimator == "shapley" and set(r.stderr) == {2, 3} for r in ex.results.values())
    with np.load(out / "dida_results.npz") as data:
        assert str(data["format"]) == RESULTS_FORMAT_ESTIMATOR and str(data["estimator"]) == "shapley"
    for name in ("report.html", "figures/dida_view_bscan000.png", "figures/dida_contrast_bscan001.png",
                 "figures/dida_scale_bscan000.png"):
        assert (out / name).is_file(), name
    assert '"estimator":"shapley"' in (out / "report.html").read_text()  # the page's legend names the values
    page = tmp_path / "page.html"
    code, _, err = _run(capsys, "view", out, "--out", page)
    assert code == 0 and page.is_file(), err
    # a leave-one-out run of the same grids keeps the paper's format and says so
    loo = tmp_path / "loo"
    assert _run(capsys, "explain", source, "--model", package, "--out", loo, *FAST)[0] == 0
    assert json.loads((loo / "run.json").read_text())["estimator"] == "leave-one-out"
    assert all(r.estimator == "leave-one-out" and r.stderr is None
               for r in load_results(loo / "dida_results.npz").results.values())


def test_default_shapley_grids_fit_the_papers_budget():
    import argparse

    from DiDALib.cli.explain import add_parser, settings_from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["explain", "in", "--out", "o", "--estimator", "shapley"])
    settings = settings_from_args(args)
    assert settings.grids == SHAPLEY_GRIDS and settings.engine_estimator() == Shapley()
    assert settings.passes_per_image() <= 1737 and Shapley().counts(SHAPLEY_GRIDS) == split_budget(SHAPLEY_GRIDS)


@pytest.mark.parametrize("args,match", [
    (["--permutations", "4"], "--permutations is for --estimator shapley"),
    (["--estimator", "shapley", "--grids", "paper"], "more than the budget"),
    (["--estimator", "shapley", "--permutations", "5"], "even"),
    (["--estimator", "shapley", "--permutations", "4,4,4"], "one per grid"),
    (["--estimator", "shapley", "--permutations", "x"], "whole numbers"),
    (["--estimator", "shapley", "--permutations", "1000000000000"], "fewer --permutations"),  # named in the fix
    (["--estimator", "banzhaf"], "invalid choice"),
])
def test_bad_shapley_options_fail_with_one_line_and_write_nothing(tmp_path, capsys, package, args, match):
    source = write_sample("nrrd", tmp_path / "v.nrrd", _bscans(2))
    out = tmp_path / "out"
    opts = list(FAST)
    if "--grids" in args:
        del opts[opts.index("--grids") : opts.index("--grids") + 2]
    try:
        code, _, err = _run(capsys, "explain", source, "--model", package, "--out", out, *opts, *args)
    except SystemExit as exc:  # argparse's own refusal of a choice
        code, err = exc.code, capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert re.search(match, err), err
    assert one_line(err.splitlines()[-1]) and not out.exists()


def test_worker_events_carry_shapley_values_and_their_errors_bit_for_bit():
    rng = np.random.default_rng(0)
    result = DiDAResult(base_scores=rng.random(3, dtype=np.float32), deltas={7: rng.random((3, 7, 7), np.float32)},
                        image_shape=(32, 32), region=(0, 0, 32, 32), score="log-odds", index=4,
                        estimator="shapley", stderr={7: rng.random((3, 7, 7), np.float32)})
    back = decode_result(json.loads(json.dumps(encode_result(result, 4))))
    assert back.estimator == "shapley"
    np.testing.assert_array_equal(back.deltas[7], result.deltas[7])
    np.testing.assert_array_equal(back.stderr[7], result.stderr[7])
    plain = decode_result(json.loads(json.dumps(encode_result(DiDAResult(
        result.base_scores, result.deltas, (32, 32), (0, 0, 32, 32)), 0))))
    assert plain.estimator == "leave-one-out" and plain.stderr is None


def test_captum_baseline_agrees_with_dida_on_an_additive_model_of_three_channels():
    """The benchmark's peer, captum's ShapleyValueSampling over DiDA's cells: on a model additive over the pixels
    every permutation gives a cell its leave-one-out d, so captum and DiDA agree (and RGB input works)."""
    import torch

    from DiDALib import DiDAEngine, cell_index_map
    from DiDALib.evaluation.baselines import shapley_cells_map

    torch.manual_seed(0)
    weight = torch.randn(3, 3, 20, 24)

    def model(x):
        return torch.einsum("bchw,kchw->bk", x.double(), weight.double()).float()

    image = torch.rand(3, 20, 24)
    fill = torch.full((3, 1, 1), 0.25)
    values = DiDAEngine(model, device="cpu", score="logits", fill=0.25).explain(
        image, grids=(4,), estimator="shapley").deltas[4]
    m, passes = shapley_cells_map(model, image, fill, cell_index_map(20, 24, 4), 2, n_samples=3)
    assert passes == 3 * 16 + 1
    np.testing.assert_allclose(m, values[2].ravel()[cell_index_map(20, 24, 4)], rtol=0, atol=1e-4)
