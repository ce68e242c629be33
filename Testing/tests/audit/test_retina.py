"""The retina band in closed form on the phantoms, whose layer boundaries are drawn and so known (``phantom.
render_layers``): the ILM and the RPE found where they were drawn, the retina (ILM to Bruch's membrane) and the
findings inside the band, little else inside it; a white padding wedge (a rotated export) changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from DiDALib.audit.retina import find_retina_band
from DiDALib.phantom import CLASSES, render_layers, sample_anatomy


def phantom(label: str, seed: int):
    rng = np.random.default_rng(1000 * seed + CLASSES.index(label))
    return render_layers(label, sample_anatomy(rng, 256, 384), rng)


def inside_share(band_mask: np.ndarray, region: np.ndarray) -> float:
    return float((band_mask & region).sum() / max(1, region.sum()))


@pytest.mark.parametrize("label", CLASSES)
def test_the_band_runs_from_the_drawn_ilm_to_just_below_the_drawn_rpe(label):
    for seed in range(2):
        image, lesion, layers = phantom(label, seed)
        band = find_retina_band(image)
        assert band is not None
        ilm_error = np.abs(band.top - layers["ilm"])
        assert np.median(ilm_error) <= 1.0 and np.percentile(ilm_error, 95) <= 2.5, (label, seed)
        # The RPE found is its lower edge, blurred: within the drawn RPE layer or a few rows under it; where atrophy
        # destroyed it there is none to find (the band's floor is checked below), and a detachment's steep sides
        # tilt it.
        inside_rpe = (band.rpe >= layers["rpe_top"] - 1) & (band.rpe <= layers["rpe_bottom"] + 5)
        kept = ~lesion.any(axis=0) if label == "geographic_atrophy" else np.ones(image.shape[1], bool)
        assert inside_rpe[kept].mean() >= (0.85 if label == "wet_amd" else 0.97), (label, seed)
        mask = band.mask()
        rows = np.arange(image.shape[0])[:, None] + 0.5
        retina = (rows >= layers["ilm"]) & (rows < layers["bruch"])
        assert inside_share(mask, retina) >= 0.97, (label, seed)
        assert (mask & ~retina).sum() / mask.sum() <= 0.2, (label, seed)  # the band is the retina, not the image
        above_bruch = lesion & (rows < layers["bruch"] + 1)
        if label in ("drusen", "wet_amd", "macular_oedema"):
            assert inside_share(mask, lesion) >= 0.8, (label, seed)
        elif label == "geographic_atrophy":  # its mask reaches into the choroid on purpose; the retina part is inside
            assert inside_share(mask, above_bruch) >= 0.95, (label, seed)


def test_a_white_padding_wedge_and_stripe_do_not_move_the_band():
    image, _, layers = phantom("drusen", 3)
    padded = image.copy()
    rows, cols = np.indices(image.shape)
    padded[rows > 200 + cols * 0.2] = 1.0  # the white wedge of a rotated export, bottom left
    padded[:3] = 1.0  # and a white line along the top
    a, b = find_retina_band(image), find_retina_band(padded)
    np.testing.assert_allclose(b.top, a.top, atol=1.0)
    assert np.median(np.abs(b.top - layers["ilm"])) <= 1.0
    assert np.median(np.abs(b.bottom - a.bottom)) <= 1.0


def test_a_flat_image_has_no_band_and_resampling_keeps_the_band():
    assert find_retina_band(np.full((64, 64), 0.3, np.float32)) is None
    image, _, _ = phantom("normal", 0)
    band = find_retina_band(image)
    half = band.resampled((128, 192))
    np.testing.assert_allclose(half.top, band.top[1::2] / 2, atol=1e-9)
    assert half.mask().shape == (128, 192)
    assert abs(half.mask().mean() - band.mask().mean()) < 0.01
