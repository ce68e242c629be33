"""DiDA in a real Slicer scene (the slicer-core wheel): a real run on a small volume with a tiny model, then the
shared scenarios of DiDALib.mrml.scenarios, the same ones DiDATest runs inside Slicer."""

from __future__ import annotations

import pytest

from DiDALib.mrml import scenarios as scenarios


@pytest.fixture(scope="module")
def fx(mrml_package):
    with scenarios.HeadlessEnvironment() as env:
        fixture = scenarios.explain_volume(env, mrml_package)
        yield fixture
        fixture.views.detach()


def test_volume_round_trip(env):
    scenarios.check_volume_round_trip(env)


def test_overlay_colours_red_for_blue_against(fx):
    scenarios.check_overlay_colours(fx)


def test_overlays_share_the_input_geometry(fx):
    scenarios.check_overlay_geometry(fx)


def test_dida_view_layout_and_linked_scrolling(fx):
    scenarios.check_layout(fx)


def test_overlays_survive_slicer_view_linking(fx):
    scenarios.check_link_survival(fx)


def test_crosshair_follows_the_mouse_in_all_views(fx):
    scenarios.check_crosshair(fx)


def test_opacity_and_display_mode_apply_to_all_views(fx):
    scenarios.check_display_controls(fx)


def test_score_table_and_plot(fx):
    scenarios.check_scores_and_plot(fx)


def test_results_grouped_under_the_input_volume(fx):
    scenarios.check_hierarchy(fx)


def test_scene_saved_and_reloaded(fx, tmp_path):
    scenarios.check_save_reload(fx, tmp_path / "scene").close()


def test_one_bscan_coarse_preview_then_refined(env, mrml_package):
    scenarios.check_preview_then_refined(env, mrml_package)


def test_cancelled_run_keeps_finished_bscans(env, mrml_package):
    scenarios.check_cancel(env, mrml_package)
