"""Faithfulness: on phantom B-scans whose lesions are known pixel by pixel, DiDA's maps of the bundled demo model
point at the lesions.

(a) For every lesion class, most of the true class's positive (red) Mixed-Image mass lies on the lesion, although
    the lesion covers only a small part of the B-scan.
(b) For ``normal``, the lesion carries net negative (blue) evidence, clearly more than the rest of the B-scan:
    "blue on normal means a lesion", as in the paper's worked examples.

A Mixed Image paints whole cells and cannot place evidence more finely than its finest cell, so the lesion mask is
dilated by one cell of the finest grid (12 rows and 18 columns of a 256 x 384 B-scan). Evidence "mass" is measured
with linear brightness (gamma 1, a = |d| / scale), so that it is proportional to the contributions d; the display
default (gamma 0.5) lifts faint cells for the eye and is reported alongside. Run with ``pytest -s`` to see the
figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from DiDALib.engine.core import DiDAEngine
from DiDALib.engine.grid import DEFAULT_GRIDS
from DiDALib.maps.mixing import mixed_image
from DiDALib.models.package import demo_model_path, load_model_package
from DiDALib.models.preprocess import preprocess_bscan
from DiDALib.phantom import CLASSES, make_bscan, make_dataset

SEED = 2027  # not used by train_demo_model.py (training and evaluation seeds are spawned from 1 and 2)
PER_CLASS = 2  # B-scans per lesion class: 8 full 8-grid DiDA runs, about half a minute on two CPU cores
LESIONS = CLASSES[1:]
DEPTH, WIDTH = 256, 384


@dataclass
class Case:
    mask: np.ndarray
    dilated: np.ndarray
    result: object


def dilate(mask: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Binary dilation by a (2 * rows + 1) x (2 * cols + 1) rectangle."""
    out = mask.copy()
    for axis, r in ((0, rows), (1, cols)):
        grown = out.copy()
        for s in range(1, r + 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(s, None), slice(None, -s)
            grown[tuple(lo)] |= out[tuple(hi)]
            grown[tuple(hi)] |= out[tuple(lo)]
        out = grown
    return out


def cell_allowance(grids=DEFAULT_GRIDS) -> tuple[int, int]:
    """One cell of the finest grid, in B-scan rows and columns."""
    n = max(grids)
    return int(round(DEPTH / n)), int(round(WIDTH / n))


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


@pytest.fixture(scope="module")
def cases() -> dict[str, list[Case]]:
    package = load_model_package(demo_model_path())
    spec = package.spec
    assert spec.demo and list(spec.classes) == list(CLASSES)
    rng = np.random.default_rng(SEED)
    chosen: list[tuple[str, np.ndarray, torch.Tensor]] = []
    region = None
    for label in LESIONS:
        found = 0
        for _ in range(10):  # the model is right on nearly every phantom; a few spare draws suffice
            image, mask = make_bscan(label, rng, DEPTH, WIDTH)
            x, region = preprocess_bscan(image, spec)
            with torch.inference_mode():
                predicted = CLASSES[int(package.model(x[None]).argmax())]
            if predicted == label:
                chosen.append((label, mask, x))
                found += 1
                if found == PER_CLASS:
                    break
        assert found == PER_CLASS, f"the demo model misclassified too many {label} phantoms of seed {SEED}"
    engine = DiDAEngine(package.model, device="cpu", score=spec.score, fill=spec.fill_value(0.0),
                        class_names=spec.classes)
    results = list(engine.explain_volume([c[2] for c in chosen], grids=DEFAULT_GRIDS, region=region))
    rows, cols = cell_allowance()
    out: dict[str, list[Case]] = {label: [] for label in LESIONS}
    for (label, mask, _), result in zip(chosen, results):
        assert mask.any(), f"a {label} phantom came without a lesion mask"
        out[label].append(Case(mask, dilate(mask, rows, cols), result))
    return out


@pytest.mark.parametrize("label", LESIONS)
def test_true_class_evidence_lies_on_the_lesion(cases, label):
    """(a) Most of the true class's red mass is on the (dilated) lesion, which covers a small part of the image."""
    fractions, display, coverages = [], [], []
    for case in cases[label]:
        for gamma, out in ((1.0, fractions), (None, display)):
            kwargs = {} if gamma is None else {"gamma": gamma}
            positive = mixed_image(case.result, label, shape=(DEPTH, WIDTH), **kwargs).positive
            total = float(positive.sum())
            assert total > 0, f"{label}: the true class has no positive evidence at all"
            out.append(float(positive[case.dilated].sum()) / total)
        coverages.append(float(case.dilated.mean()))
    rows, cols = cell_allowance()
    print(f"\n[faithfulness a] {label}: red mass on the lesion (mask dilated {rows} rows, {cols} cols) "
          + ", ".join(f"{f:.1%}" for f in fractions) + f" (mean {np.mean(fractions):.1%}; display gamma: "
          + ", ".join(f"{f:.1%}" for f in display) + "); the dilated mask covers "
          + ", ".join(f"{c:.1%}" for c in coverages) + " of the B-scan")
    assert np.mean(fractions) > 0.5, f"{label}: only {np.mean(fractions):.1%} of the red mass lies on the lesion"
    for f, c in zip(fractions, coverages):
        assert c < 0.2, f"{label}: the dilated lesion covers {c:.1%} of the B-scan, too much for a fair test"
        assert f > 3 * c, f"{label}: {f:.1%} of the red mass on a lesion covering {c:.1%} is no concentration"


@pytest.mark.parametrize("label", LESIONS)
def test_lesion_is_evidence_against_normal(cases, label):
    """(b) On a lesion B-scan, the lesion speaks against ``normal``: net blue there, far more than elsewhere."""
    for case in cases[label]:
        net = mixed_image(case.result, "normal", shape=(DEPTH, WIDTH)).net
        inside = float(net[case.mask].mean())
        outside = float(net[~case.dilated].mean())
        print(f"\n[faithfulness b] {label}: mean net 'normal' evidence on the lesion {inside:+.4f}, "
              f"away from it {outside:+.4f}")
        assert inside < 0, f"{label}: the lesion does not speak against normal (mean net {inside:+.4f})"
        assert outside - inside > 0.5 * abs(inside), (
            f"{label}: the lesion ({inside:+.4f}) is not clearly more against normal than the rest ({outside:+.4f})")
