"""DiDA's MRML helpers one by one on slicer-core: volumes, colour table, overlays, score table and plot, views."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

from DiDALib.io.volume import OCTVolume
from DiDALib.maps.labels import LEVELS, encode_labels
from DiDALib.maps.mixing import MixedImage
from DiDALib.mrml.layout import (
    BSCAN_VIEW,
    LAYOUT_ID,
    VIEW_NAMES,
    VIEW_TEXT,
    composite_node,
    crosshair_node,
    layout_id,
    layout_xml,
    register_layout,
    show_layout,
    shows_dida_layout,
    view_node,
)
from DiDALib.mrml.overlays import (
    add_class_overlay,
    color_table,
    display_mode,
    find_color_table,
    mode_entries,
    overlay_bytes,
    set_display_mode,
)
from DiDALib.mrml.results import (
    DiDARun,
    find_runs,
    plot_series,
    read_scores,
    scene_hierarchy,
    set_plot_classes,
    write_scores,
)
from DiDALib.mrml.views import DiDAViews, ViewLabels
from DiDALib.mrml.volumes import (
    add_oct_volume,
    add_volume,
    add_volume_like,
    bscan_shown,
    bscans_from_volume_node,
    ijk_to_ras,
    same_geometry,
    show_bscan,
    volume_array,
)


@pytest.fixture
def volume(env):
    rng = np.random.default_rng(1)
    return add_oct_volume(env.scene, OCTVolume(rng.random((4, 20, 30), dtype=np.float32), (0.01, 0.004, 0.1)), "eye")


def test_mode_entries_hide_one_side():
    both, pos, neg = mode_entries("both"), mode_entries("positive"), mode_entries("negative")
    full = (LEVELS - 1) * LEVELS + (LEVELS - 1)
    assert both[full][2][:3] == (1.0, 0.0, 1.0)
    assert pos[full][2][:3] == (1.0, 0.0, 0.0) and neg[full][2][:3] == (0.0, 0.0, 1.0)
    assert pos[LEVELS - 1][2][3] == 0.0, "pure negative evidence must vanish in positive-only mode"
    assert neg[(LEVELS - 1) * LEVELS][2][3] == 0.0, "pure positive evidence must vanish in negative-only mode"
    assert all(e[2][3] == 0.0 for e in (both[0], pos[0], neg[0]))
    with pytest.raises(ValueError, match="display mode"):
        mode_entries("red")


def test_one_colour_table_per_scene(env):
    assert find_color_table(env.scene) is None
    table = color_table(env.scene)
    assert color_table(env.scene) is table and table.GetNumberOfColors() == LEVELS * LEVELS
    assert not table.GetHideFromEditors(), "a hidden colour table would not be saved with the scene"
    set_display_mode(env.scene, "negative")
    assert display_mode(env.scene) == "negative"


def test_bscans_of_any_volume_are_display_intensities(env):
    raw = (np.arange(2 * 5 * 6, dtype=np.uint16).reshape(2, 5, 6) * 1000)
    node = add_volume(env.scene, raw, ijk_to_ras((1, 1, 1)), "raw")
    bscans, how = bscans_from_volume_node(node)
    assert bscans.dtype == np.float32 and bscans.max() <= 1.0 and np.allclose(bscans, raw / 65535.0)
    assert "uint16" in how
    with pytest.raises(ValueError, match="no input volume"):
        bscans_from_volume_node(None)


def test_overlay_pair_shares_geometry_and_writes_one_bscan(env, volume):
    overlay = add_class_overlay(env.scene, volume, "drusen", 1)
    assert same_geometry(overlay.labels, volume) and same_geometry(overlay.net, volume)
    assert overlay.class_name == "drusen" and overlay.class_index == 1
    pos = np.zeros((20, 30), np.float32)
    neg = np.zeros((20, 30), np.float32)
    pos[:10] = 1.0
    neg[10:] = 0.5
    overlay.write(2, MixedImage(pos, neg, 1, 1.0, np.ones(1)))
    assert np.array_equal(overlay.bscan_labels(2), encode_labels(pos, neg))
    assert not overlay.bscan_labels(1).any()
    assert np.allclose(volume_array(overlay.net)[2], pos - neg)
    overlay.write(2, None)
    assert not overlay.bscan_labels(2).any()
    other = add_volume_like(env.scene, volume, "other")
    other.SetSpacing(0.02, 0.004, 0.1)
    assert not same_geometry(other, volume)
    assert overlay_bytes(volume, 3) == 4 * 20 * 30 * 5 * 3  # uint8 labels + float32 net per voxel and class


def test_score_table_round_trip_and_plot_series(env, volume):
    run = DiDARun.create(env.scene, volume, ["a", "b", "c"], {"Score": "probabilities"}, "DiDA eye")
    write_scores(run.table, ["a", "b", "c"], [3, 1], np.array([[0.1, 0.2, 0.7], [0.5, 0.4, 0.1]]))
    indices, names, scores = read_scores(run.table)
    assert indices == [3, 1] and names == ["a", "b", "c"] and np.allclose(scores[1], [0.5, 0.4, 0.1])
    assert run.score("c", 3) == pytest.approx(0.7) and run.score("c", 0) is None
    set_plot_classes(env.scene, run.chart, run.table, ["c", "a"])
    first = {s.GetYColumnName(): s for s in plot_series(run.chart)}
    set_plot_classes(env.scene, run.chart, run.table, ["a", "b"])
    series = plot_series(run.chart)
    assert [s.GetYColumnName() for s in series] == ["a", "b"]
    assert series[0] is first["a"], "a series that stays is reused"
    assert first["c"].GetScene() is None, "a series that goes is removed from the scene"
    assert [r.table for r in find_runs(env.scene, volume)] == [run.table]
    with pytest.raises(ValueError, match="status"):
        run.set_status("paused", [], [])


def test_views_need_the_layout(env):
    with pytest.raises(ValueError, match="show the DiDA View layout first"):
        DiDAViews(env.scene)


def test_views_restore_the_crosshair_and_detach_on_scene_close(env, volume):
    env.show_dida_layout()
    crosshair = crosshair_node(env.scene)
    crosshair.SetCrosshairMode(crosshair.ShowBasic)  # the user's own mode, which the DiDA views must give back
    views = DiDAViews(env.scene)
    assert views.attached and crosshair.GetCrosshairMode() == crosshair.ShowSmallBasic
    views.detach()
    assert not views.attached and crosshair.GetCrosshairMode() == crosshair.ShowBasic
    views = DiDAViews(env.scene)
    assert views.attached
    env.scene.Clear(0)
    assert not views.attached, "closing the scene must stop the views' observers"


def test_views_show_a_run_and_follow_its_classes(env, volume):
    env.show_dida_layout()
    run = DiDARun.create(env.scene, volume, ["a", "b"], {"Score": "logits"}, "DiDA eye")
    views = DiDAViews(env.scene)
    views.show(run, bscan=1)
    assert bscan_shown(volume, view_node(env.scene, BSCAN_VIEW)) == 1
    assert view_node(env.scene, BSCAN_VIEW).GetAttribute(VIEW_TEXT) == "B-scan 1 (not explained)"
    first = add_class_overlay(env.scene, volume, "a", 0)
    run.set_overlays(env.scene, [first])
    overlays = [add_class_overlay(env.scene, volume, name, k) for k, name in enumerate(["b", "a"])]
    run.set_overlays(env.scene, overlays)  # the run's classes change: the views follow, the old overlay goes
    sh = scene_hierarchy(env.scene)
    assert first.labels.GetScene() is None and not sh.GetItemByDataNode(first.labels)
    children = vtk.vtkIdList()
    sh.GetItemChildren(run.folder, children)
    assert all(sh.GetItemDataNode(children.GetId(i)) is not None for i in range(children.GetNumberOfIds())), \
        "a removed overlay left an empty subject hierarchy item"
    assert composite_node(env.scene, VIEW_NAMES[1]).GetLabelVolumeID() == overlays[0].labels.GetID()
    assert composite_node(env.scene, VIEW_NAMES[3]).GetLabelVolumeID() is None
    write_scores(run.table, ["a", "b"], [1], np.array([[2.5, -1.0]]))
    run.set_status("complete", [1], [])
    assert view_node(env.scene, VIEW_NAMES[1]).GetAttribute(VIEW_TEXT) == "b  logit -1.00"
    show_bscan(view_node(env.scene, VIEW_NAMES[2]), volume, 3)
    assert views.bscan == 3
    assert view_node(env.scene, VIEW_NAMES[1]).GetAttribute(VIEW_TEXT) == "b  (not explained)"
    run.set_status("cancelled", [1], [3])
    assert view_node(env.scene, BSCAN_VIEW).GetAttribute(VIEW_TEXT) == "B-scan 3 (cancelled)"
    views.detach()


def test_layout_xml_is_four_slice_views_then_the_enface_view_and_a_plot():
    import xml.etree.ElementTree as ET

    from DiDALib.mrml.layout import ENFACE_VIEW

    views = [(v.get("class"), v.get("singletontag")) for v in ET.fromstring(layout_xml()).iter("view")]
    assert views[:4] == [("vtkMRMLSliceNode", n) for n in VIEW_NAMES]
    assert views[4] == ("vtkMRMLSliceNode", ENFACE_VIEW) and views[5][0] == "vtkMRMLPlotViewNode"


def test_another_extensions_layout_at_dida_s_id_is_kept():
    import slicer

    node = slicer.vtkMRMLLayoutNode()
    foreign = '<layout type="horizontal"><item><view class="vtkMRMLSliceNode" singletontag="Red"/></item></layout>'
    node.AddLayoutDescription(LAYOUT_ID, foreign)
    chosen = register_layout(node)
    assert chosen == LAYOUT_ID + 1 and node.GetLayoutDescription(LAYOUT_ID) == foreign
    assert register_layout(node) == chosen == layout_id(node), "registering again must find DiDA's own id"
    node.SetLayoutDescription(chosen, layout_xml().replace('splitSize="700"', 'splitSize="600"'))  # an older DiDA's
    assert register_layout(node) == chosen and node.GetLayoutDescription(chosen) == layout_xml()
    assert show_layout(node) == chosen and shows_dida_layout(node)
    node.SetViewArrangement(LAYOUT_ID)
    assert not shows_dida_layout(node)


def test_view_labels_are_drawn_and_removed_with_the_scene(env, volume):
    env.show_dida_layout()
    run = DiDARun.create(env.scene, volume, ["a", "b"], {"Score": "logits"}, "DiDA eye")
    labels = ViewLabels(env.renderer)
    views = DiDAViews(env.scene, labels=labels)
    views.show(run, bscan=2)
    actor = labels.actors[BSCAN_VIEW][1]
    assert actor.GetInput() == "B-scan 2 (not explained)" and env.renderer(BSCAN_VIEW).HasViewProp(actor)
    env.scene.Clear(0)
    assert not labels.actors and not env.renderer(BSCAN_VIEW).HasViewProp(actor), "labels outlived the scene"


def test_view_labels_say_each_score_mode_in_its_own_terms():
    from DiDALib.mrml.layout import score_text

    assert score_text(0.456, "probabilities") == "p = 0.46"
    assert score_text(-1.5, "logits") == "logit -1.50"
    assert score_text(2.2, "log-odds") == "log-odds +2.20"
    assert score_text(None, "logits") == "not explained"
