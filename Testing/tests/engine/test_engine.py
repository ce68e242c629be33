"""The engine against classifiers whose contributions are known in closed form, and its contracts."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import LinearScorer, probability_deltas, softmax

from DiDALib import DiDACancelled, DiDAEngine, OffsetGrid, cell_index_map, offset_grids
from DiDALib.engine.grid import grid_shape
from DiDALib.engine.masks import gaussian_blur, lateral_median


def _expected_logit_deltas(model: LinearScorer, image: np.ndarray, fill: np.ndarray, n: int, region=None):
    """d_ij for a linear scorer: the weighted sum of the cell's pixels minus the fill (float64)."""
    c, h, w = image.shape
    top, left, rh, rw = region or (0, 0, h, w)
    cells = cell_index_map(rh, rw, n)
    rows, cols = grid_shape(n)
    wt = model.weight.detach().double().numpy()
    diff = image.astype(np.float64) - np.broadcast_to(fill, image.shape)
    contrib = (wt * diff[None]).sum(axis=1)[:, top : top + rh, left : left + rw]  # (K, rh, rw)
    out = np.zeros((wt.shape[0], rows * cols))
    for k in range(wt.shape[0]):
        out[k] = np.bincount(cells.ravel(), weights=contrib[k].ravel(), minlength=rows * cols)
    return out.reshape(-1, rows, cols)


def _expected(model, image, fill, n, score, region=None):
    dz = _expected_logit_deltas(model, image, fill, n, region)  # (K, n, n)
    if score == "logits":
        return dz
    wt = model.weight.detach().double().numpy()
    z = (wt * image[None]).sum(axis=(1, 2, 3)) + model.bias.detach().double().numpy()
    return probability_deltas(z, dz)


def _np_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """An independent separable Gaussian with replicated edges, in float64."""
    r = max(1, int(round(3 * sigma)))
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    out = np.pad(image.astype(np.float64), ((0, 0), (0, 0), (r, r)), mode="edge")
    out = np.stack([np.convolve(row, k, mode="valid") for row in out.reshape(-1, out.shape[-1])]).reshape(image.shape)
    out = np.pad(out, ((0, 0), (r, r), (0, 0)), mode="edge")
    t = np.moveaxis(out, 1, -1)
    res = np.stack([np.convolve(col, k, mode="valid") for col in t.reshape(-1, t.shape[-1])])
    return np.moveaxis(res.reshape(image.shape[0], image.shape[2], image.shape[1]), -1, 1)


SHAPE = (2, 21, 26)


@pytest.fixture
def image():
    return np.random.default_rng(1).random(SHAPE, dtype=np.float32)


@pytest.mark.parametrize("score", ["logits", "probabilities"])
@pytest.mark.parametrize("fill", [0.0, [0.25, -0.5], "mean", "blur"])
def test_linear_scorer_exact_for_dividing_and_non_dividing_grids(image, score, fill):
    model = LinearScorer(SHAPE, classes=4)
    grids = (3, 7, 4, 5, 6)  # 3 and 7 divide 21; 4, 5, 6 divide neither side
    result = DiDAEngine(model, device="cpu", score=score, fill=fill, batch_size=16).explain(image, grids=grids)
    if fill == "mean":
        f = image.mean(axis=(1, 2), keepdims=True)
    elif fill == "blur":
        f = _np_blur(image, sigma=max(1.0, min(SHAPE[1:]) / 20.0))
    else:
        f = np.asarray(fill, dtype=np.float64).reshape(-1, 1, 1)
    assert result.grids == (3, 4, 5, 6, 7)
    wt = model.weight.detach().double().numpy()
    z = (wt * image[None]).sum(axis=(1, 2, 3)) + model.bias.detach().double().numpy()
    base = z if score == "logits" else softmax(z)
    np.testing.assert_allclose(result.base_scores, base, rtol=1e-5, atol=1e-5)
    for n in grids:
        got = result.deltas[n]
        assert got.shape == (4, n, n) and got.dtype == np.float32
        expect = _expected(model, image, f, n, score)
        tol = 2e-4 * max(1.0, np.abs(expect).max())
        np.testing.assert_allclose(got, expect, atol=tol)


def _np_lateral_median(image: np.ndarray, half: int) -> np.ndarray:
    """An independent lateral median: each pixel the median of its row over 2 * half + 1 columns, edges mirrored."""
    padded = np.pad(image.astype(np.float64), ((0, 0), (0, 0), (half, half)), mode="reflect")
    return np.stack([np.median(padded[:, :, j : j + 2 * half + 1], axis=2) for j in range(image.shape[2])], axis=2)


@pytest.mark.parametrize("score", ["logits", "probabilities"])
@pytest.mark.parametrize("fill", [0.0, "background"])
def test_linear_scorer_exact_for_shifted_grids(image, score, fill):
    """Offset grids are masked cell by cell like aligned ones: d is exact for a linear scorer, a region included."""
    model = LinearScorer(SHAPE, classes=3)
    region = (1, 2, 19, 23)
    grids = offset_grids((3, 5), 2) + (OffsetGrid(4, "1/3", "2/3"),)
    result = DiDAEngine(model, device="cpu", score=score, fill=fill, batch_size=9).explain(image, grids=grids,
                                                                                          region=region)
    if fill == "background":
        f = image.astype(np.float64).copy()
        sub = image[:, 1:20, 2:25]
        f[:, 1:20, 2:25] = _np_lateral_median(sub, int(round(23 * 0.5)) // 2)
    else:
        f = np.asarray(fill, dtype=np.float64).reshape(-1, 1, 1)
    assert set(result.grids) == set(grids) and result.grids == tuple(sorted(grids))
    for g in grids:
        assert result.deltas[g].shape == (3, *grid_shape(g))
        expect = _expected(model, image, f, g, score, region)
        np.testing.assert_allclose(result.deltas[g], expect, atol=2e-4 * max(1.0, np.abs(expect).max()))


def test_background_fill_keeps_layers_and_removes_a_narrow_finding():
    """The lateral median keeps a band that runs across the image and removes a spot narrower than half its window."""
    img = np.zeros((1, 20, 40), np.float32)
    img[0, 8:12] = 1.0  # a layer across the B-scan
    img[0, 14:17, 18:22] = 2.0  # a finding 4 columns wide
    out = lateral_median(torch.from_numpy(img), (0, 0, 20, 40)).numpy()
    np.testing.assert_array_equal(out[0, 8:12], 1.0)
    np.testing.assert_array_equal(out[0, 14:17], 0.0)
    np.testing.assert_allclose(out, _np_lateral_median(img, 10))


def test_blur_fill_matches_an_independent_blur(image):
    got = gaussian_blur(torch.from_numpy(image), 2.0).numpy()
    np.testing.assert_allclose(got, _np_blur(image, 2.0), atol=1e-5)


def test_region_limits_the_grid(image):
    model = LinearScorer(SHAPE, classes=3)
    region = (2, 3, 15, 20)
    result = DiDAEngine(model, device="cpu", score="logits", fill=0.0).explain(image, grids=(4, 5), region=region)
    for n in (4, 5):
        np.testing.assert_allclose(result.deltas[n], _expected(model, image, 0.0, n, "logits", region), atol=1e-4)
    assert result.region == region


def test_sign_raise_is_positive_lower_is_negative():
    class Quadrant(torch.nn.Module):
        def forward(self, x):
            q = x[:, 0, :10, :10].mean(dim=(1, 2))
            return torch.stack([q, -q, torch.zeros_like(q)], dim=1)

    img = np.zeros((1, 20, 20), np.float32)
    img[0, :10, :10] = 1.0
    r = DiDAEngine(Quadrant(), device="cpu", score="logits", fill=0.0).explain(img, grids=(2, 4))
    assert r.deltas[2][0, 0, 0] > 0 and r.deltas[2][1, 0, 0] < 0
    assert np.all(r.deltas[2][:, 1:, :] == 0) and np.all(r.deltas[2][:, :, 1:] == 0)
    assert np.all(r.deltas[4][0, :2, :2] > 0) and np.all(r.deltas[4][1, :2, :2] < 0)
    assert np.all(r.deltas[4][2] == 0)


def test_results_do_not_depend_on_batch_size_or_grouping():
    model = LinearScorer(SHAPE, classes=5)
    rng = np.random.default_rng(3)
    images = [rng.random(SHAPE, dtype=np.float32) for _ in range(3)]
    grids = (3, 5, 7)
    reference = [DiDAEngine(model, device="cpu", batch_size=1).explain(im, grids=grids) for im in images]
    for bs in (4, 7, 50, 500):
        grouped = list(DiDAEngine(model, device="cpu", batch_size=bs).explain_volume(images, grids=grids))
        assert [r.index for r in grouped] == [0, 1, 2]
        for ref, got in zip(reference, grouped):
            np.testing.assert_allclose(got.base_scores, ref.base_scores, atol=1e-6)
            for n in grids:
                np.testing.assert_allclose(got.deltas[n], ref.deltas[n], atol=1e-6)
    # A batch of 500 spans B-scans: 84 jobs per image, so one batch mixes all three.
    assert max(model.calls) > 84


def test_every_class_from_one_pass_per_masked_image(image):
    model = LinearScorer(SHAPE, classes=6)
    # channels_last=False: no memory-format probe (test_memory_format.py), whose passes would count here
    r = DiDAEngine(model, device="cpu", batch_size=10, channels_last=False).explain(image, grids=(3, 4))
    assert sum(model.calls) == 1 + 9 + 16
    assert all(d.shape[0] == 6 for d in r.deltas.values())


def test_timm_model_runs_end_to_end_on_cpu():
    timm = pytest.importorskip("timm")
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=4, in_chans=3)
    image = torch.rand(3, 96, 96)
    before = image.clone()
    r = DiDAEngine(model, device="cpu").explain(image)
    assert r.grids == (7, 9, 11, 13, 15, 17, 19, 21)
    assert r.base_scores.shape == (4,) and np.isclose(r.base_scores.sum(), 1.0, atol=1e-5)
    assert all(np.isfinite(d).all() and d.shape == (4, n, n) for n, d in r.deltas.items())
    assert r.max_abs_delta() > 0
    assert torch.equal(image, before)  # the input is never modified


@pytest.mark.parametrize(
    "bad,exc,match",
    [
        (np.zeros((8, 8), np.float32), ValueError, "2 dimension"),
        (np.zeros((1, 1, 8, 8), np.float32), ValueError, "4 dimension"),
        ("not an image", TypeError, "numpy array or torch tensor"),
        (np.zeros((1, 8, 8), complex), TypeError, "real-valued"),
    ],
)
def test_bad_images_are_refused(bad, exc, match):
    with pytest.raises(exc, match=match):
        DiDAEngine(LinearScorer((1, 8, 8), 2), device="cpu").explain(bad, grids=(2,))


def test_non_finite_pixels_are_refused():
    img = np.ones((1, 8, 8), np.float32)
    img[0, 3, 4] = np.nan
    img[0, 1, 1] = np.inf
    with pytest.raises(ValueError, match="2 non-finite pixel"):
        DiDAEngine(LinearScorer((1, 8, 8), 2), device="cpu").explain(img, grids=(2,))


@pytest.mark.parametrize("grids,match", [((0,), "grid size 0"), ((9,), "grid size 9"), ((2, 2), "repeat")])
def test_bad_grids_are_refused(grids, match):
    with pytest.raises(ValueError, match=match):
        DiDAEngine(LinearScorer((1, 8, 8), 2), device="cpu").explain(np.ones((1, 8, 8), np.float32), grids=grids)


def test_model_returning_the_wrong_shape_or_type_is_refused():
    img = np.ones((1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"shape \(4,\) .*\(B, K\)"):
        DiDAEngine(lambda x: x.sum(dim=(1, 2, 3)), device="cpu", batch_size=4).explain(img, grids=(2,))
    with pytest.raises(ValueError, match="shape"):
        DiDAEngine(lambda x: torch.ones(1, 3), device="cpu", batch_size=4).explain(img, grids=(2,))
    with pytest.raises(TypeError, match="returned a ndarray"):
        DiDAEngine(lambda x: np.ones((x.shape[0], 2)), device="cpu").explain(img, grids=(2,))
    calls = iter(range(100))
    with pytest.raises(ValueError, match="same K classes"):
        DiDAEngine(lambda x: torch.ones(x.shape[0], 2 + (next(calls) > 0)), device="cpu",
                   batch_size=2).explain(img, grids=(2,))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_model_returning_non_finite_scores_is_refused(bad):
    def model(x):
        out = torch.zeros(x.shape[0], 3)
        out[-1, 1] = bad
        return out

    with pytest.raises(ValueError, match="non-finite score"):
        DiDAEngine(model, device="cpu", score="logits").explain(np.ones((1, 8, 8), np.float32), grids=(2,))


def test_engine_arguments_are_checked():
    m = LinearScorer((1, 8, 8), 2)
    with pytest.raises(ValueError, match="score"):
        DiDAEngine(m, score="softmax")
    with pytest.raises(ValueError, match="fill"):
        DiDAEngine(m, fill="median")
    with pytest.raises(ValueError, match="batch_size"):
        DiDAEngine(m, batch_size=0)
    with pytest.raises(TypeError, match="callable"):
        DiDAEngine("model.pth")
    with pytest.raises(ValueError, match="precision"):
        DiDAEngine(m, precision="int8")
    with pytest.raises(ValueError, match="3 values but the image has 1"):
        DiDAEngine(m, fill=[0, 0, 0], device="cpu").explain(np.ones((1, 8, 8), np.float32), grids=(2,))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            DiDAEngine(m, device="cuda")


def test_progress_and_per_grid_callbacks_coarse_first():
    model = LinearScorer(SHAPE, classes=3)
    img = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    seen, progress = [], []
    r = DiDAEngine(model, device="cpu", batch_size=5).explain(
        img, grids=(6, 2, 4), on_grid=lambda i, n, d, base: seen.append((i, n, d.copy(), base.copy())))
    assert [s[1] for s in seen] == [2, 4, 6]
    for _, n, d, base in seen:
        np.testing.assert_array_equal(d, r.deltas[n])
        np.testing.assert_array_equal(base, r.base_scores)
    list(DiDAEngine(model, device="cpu", batch_size=16).explain_volume([img, img], grids=(2, 4), progress=progress.append))
    assert progress[-1].images_done == 2 and progress[-1].images_total == 2
    assert progress[-1].passes_done == 2 * (1 + 4 + 16)
    assert [p.passes_done for p in progress] == sorted(p.passes_done for p in progress)


def test_cancel_stops_within_one_batch_and_keeps_only_complete_results():
    model = LinearScorer(SHAPE, classes=3)
    images = [np.random.default_rng(i).random(SHAPE, dtype=np.float32) for i in range(4)]
    stop = threading.Event()
    got = []
    engine = DiDAEngine(model, device="cpu", batch_size=8)
    calls_at_cancel = []

    def progress(p):
        if p.images_done == 1 and not stop.is_set():
            stop.set()
            calls_at_cancel.append(len(model.calls))

    with pytest.raises(DiDACancelled) as info:
        for r in engine.explain_volume(images, grids=(3, 5), progress=progress, cancel=stop):
            got.append(r)
    assert info.value.completed == 1 and len(got) == 1 and got[0].index == 0
    assert len(model.calls) == calls_at_cancel[0]  # no batch ran after the flag was set
    assert all(d.shape == (3, n, n) for n, d in got[0].deltas.items())
    # A callable works as a flag too, and a cancelled single image raises instead of returning half a result.
    with pytest.raises(DiDACancelled):
        engine.explain(images[0], grids=(3, 5), cancel=lambda: len(model.calls) > calls_at_cancel[0] + 2)


def test_volume_memory_stays_bounded_by_reading_lazily():
    model = LinearScorer(SHAPE, classes=2)
    pulled = []

    def source():
        for i in range(30):
            pulled.append(i)
            yield np.full(SHAPE, i / 30, np.float32)

    engine = DiDAEngine(model, device="cpu", batch_size=16)
    for r in engine.explain_volume(source(), grids=(3,)):
        # At most the image in flight and the next one (whose jobs share the batch) have been read.
        assert len(pulled) <= r.index + 3
    assert len(pulled) == 30


def test_out_of_memory_halves_the_batch_without_losing_or_repeating_work(image):
    model = LinearScorer(SHAPE, classes=3)
    ok_batches = []

    def fragile(x):
        if x.shape[0] > 5:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        ok_batches.append(x.shape[0])
        return model(x)

    engine = DiDAEngine(fragile, device="cpu", batch_size=32)
    r = engine.explain(image, grids=(3, 4))
    assert engine.batch_size == 4 and sum(ok_batches) == 1 + 9 + 16
    ref = DiDAEngine(model, device="cpu").explain(image, grids=(3, 4))
    for n in (3, 4):
        np.testing.assert_allclose(r.deltas[n], ref.deltas[n], atol=1e-6)
    never = DiDAEngine(lambda x: (_ for _ in ()).throw(torch.OutOfMemoryError("simulated")), device="cpu", batch_size=4)
    with pytest.raises(MemoryError, match="one image at a time"):
        never.explain(image, grids=(3,))


def test_failed_compile_falls_back_to_eager(image, monkeypatch):
    model = LinearScorer(SHAPE, classes=3)

    def broken_compile(fn, **kwargs):
        def run(x):
            raise RuntimeError("inductor cannot build here (simulated)")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(UserWarning, match="running the model eagerly"):
        r = DiDAEngine(model, device="cpu", compile=True).explain(image, grids=(3,))
    ref = DiDAEngine(model, device="cpu").explain(image, grids=(3,))
    np.testing.assert_allclose(r.deltas[3], ref.deltas[3], atol=1e-6)


def test_lower_precision_subtracts_in_float32():
    model = LinearScorer((1, 8, 8), classes=2)
    r = DiDAEngine(model, device="cpu", precision="bfloat16").explain(np.ones((1, 8, 8), np.float32), grids=(2,))
    assert r.deltas[2].dtype == np.float32 and r.base_scores.dtype == np.float32


def test_cpu_batch_size_is_tuned_on_real_work_without_wasting_passes():
    import time

    from DiDALib.engine.devices import CPU_BATCH_CANDIDATES

    shape = (1, 26, 26)
    image = np.random.default_rng(5).random(shape, dtype=np.float32)
    model = LinearScorer(shape, classes=3)

    def slow_small_batches(x):  # a fixed cost per call makes the largest batch the fastest per image
        time.sleep(0.004)
        return model(x)

    grids = (3, 5, 7, 9, 11, 13)
    engine = DiDAEngine(slow_small_batches, device="cpu")
    r = engine.explain(image, grids=grids)
    assert engine.batch_size == max(CPU_BATCH_CANDIDATES)
    assert sum(model.calls) == 1 + sum(n * n for n in grids)  # every pass was a real one, none repeated
    assert set(CPU_BATCH_CANDIDATES) <= set(model.calls)
    ref = DiDAEngine(model, device="cpu", batch_size=7).explain(image, grids=grids)
    for n in grids:
        np.testing.assert_allclose(r.deltas[n], ref.deltas[n], atol=1e-6)
