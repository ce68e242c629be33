"""DiDA in a real Slicer scene (the slicer-core wheel): a real run in the worker process on a small volume with a
tiny model, then the shared checks of DiDALib.mrml.selftest.checks, the same ones DiDATest runs inside Slicer; and
the same checks on the stored result that DiDATest shows where torch is absent."""

from __future__ import annotations

import numpy as np
import pytest

from DiDALib.io.results import load_results
from DiDALib.mrml.selftest import checks, fixtures, headless, scenarios


@pytest.fixture(scope="module")
def fx(mrml_package, worker):
    with headless.HeadlessEnvironment() as env:
        fixture = fixtures.explain_volume(env, worker, mrml_package)
        yield fixture
        fixture.views.detach()


def test_volume_round_trip(env):
    checks.check_volume_round_trip(env)


def test_a_loaded_volume_is_shown_as_add_data_shows_it(env):
    checks.check_show_volume(env)


def test_overlay_colours_red_for_blue_against(fx):
    checks.check_overlay_colours(fx)


def test_overlays_share_the_input_geometry(fx):
    checks.check_overlay_geometry(fx)


def test_dida_view_layout_and_linked_scrolling(fx):
    checks.check_layout(fx)


def test_overlays_survive_slicer_view_linking(fx):
    checks.check_link_survival(fx)


def test_crosshair_follows_the_mouse_in_all_views(fx):
    checks.check_crosshair(fx)


def test_opacity_and_display_mode_apply_to_all_views(fx):
    checks.check_display_controls(fx)


def test_square_bscan_pixels_survive_a_view_resize(fx):
    checks.check_resize_keeps_proportions(fx)


def test_score_table_and_plot(fx):
    checks.check_scores_and_plot(fx)


def test_results_grouped_under_the_input_volume(fx):
    checks.check_hierarchy(fx)


def test_dida_maps_are_not_offered_as_input(fx):
    checks.check_input_candidates(fx)


def test_leaving_the_dida_view_restores_the_crosshair_and_removes_labels(fx):
    checks.check_leaving_the_layout(fx)


def test_scene_saved_and_reloaded(fx, tmp_path):
    checks.check_save_reload(fx, tmp_path / "scene").close()


def test_every_scene_check_on_the_stored_result(tmp_path):
    """What DiDATest runs where torch is absent: the stored result through the session's own event path."""
    scenarios.run_stored(headless.HeadlessEnvironment, tmp_path / "scene", log=lambda message: None)


def test_the_stored_result_is_the_test_model_on_the_test_volume():
    stored = load_results(fixtures.stored_results_path())
    assert stored.class_names == fixtures.TEST_CLASSES
    assert stored.indices == list(range(5)) and stored.bscan_shape == (48, 64)
    for k in stored.indices:
        result = stored.results[k]
        assert result.grids == fixtures.TEST_GRIDS and result.image_shape == (32, 32)
        assert np.allclose(result.base_scores.sum(), 1.0, atol=1e-5), "scores are not the model's probabilities"
    assert fixtures.stored_results_path().stat().st_size < 20_000
