"""The en-face view of the DiDA View (issue 15), on slicer-core: its volumes lie on the OCT volume's plane of
A-scans and B-scans, its labelmap is the class of view 1's en-face evidence (maps.enface) in the overlays' encoding,
and a point in it moves the B-scan views to that B-scan and the crosshair to that A-scan."""

from __future__ import annotations

import numpy as np
import vtk

from DiDALib.io.results import load_results
from DiDALib.maps.enface import enface_map, enface_scale
from DiDALib.maps.labels import LEVELS, decode_labels
from DiDALib.mrml.controller import DiDAController
from DiDALib.mrml.enface import find_enface, jump_to, projection, show_enface
from DiDALib.mrml.layout import (
    ENFACE_GROUP,
    ENFACE_VIEW,
    VIEW_NAMES,
    composite_node,
    crosshair_node,
    layout_id,
    view_node,
)
from DiDALib.mrml.overlays import color_table, input_candidates
from DiDALib.mrml.selftest import fixtures
from DiDALib.mrml.session import ExplainSession
from DiDALib.mrml.volumes import bscan_shown, volume_array


def _ras(node, ijk) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array(m.MultiplyPoint((*map(float, ijk), 1.0))[:3])


def _ijk(node, ras) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetRASToIJKMatrix(m)
    return np.array(m.MultiplyPoint((*map(float, ras), 1.0))[:3])


def _shown_partial_run(env):
    """The stored result without B-scan 1, shown in the DiDA View through the controller the module drives."""
    explanation = load_results(fixtures.stored_results_path())
    del explanation.results[1]
    volume = fixtures.make_test_volume(env)
    session = ExplainSession(env.scene, volume, None, None, classes="top3", name="DiDA stored")
    assert session.replay(explanation) == "complete"
    controller = DiDAController(lambda: env.layout_node, lambda: (1.0, "both", True),
                                process_events=env.show_dida_layout)
    controller.session = session
    controller.show(session.run)
    return controller, volume, session


def test_the_layout_has_the_enface_view_in_a_group_of_its_own(env):
    controller, volume, session = _shown_partial_run(env)
    description = env.layout_node.GetLayoutDescription(layout_id(env.layout_node))
    assert f'singletontag="{ENFACE_VIEW}"' in description
    node = view_node(env.scene, ENFACE_VIEW)
    assert node is not None and node.GetViewGroup() == ENFACE_GROUP
    enface = find_enface(env.scene, volume)
    comp = composite_node(env.scene, ENFACE_VIEW)
    assert comp.GetBackgroundVolumeID() == enface.background.GetID()
    assert comp.GetLabelVolumeID() == enface.labels.GetID()
    assert enface.labels.GetDisplayNode().GetColorNodeID() == color_table(env.scene).GetID()
    assert volume in input_candidates(env.scene) and enface.background not in input_candidates(env.scene)
    # The view looks at the plane: its normal is the depth axis and its centre lies on the en-face slice.
    to_ras = node.GetSliceToRAS()
    normal = np.array([to_ras.GetElement(r, 2) for r in range(3)])
    depth_axis = _ras(volume, (0, 1, 0)) - _ras(volume, (0, 0, 0))
    assert abs(abs(normal @ depth_axis) / np.linalg.norm(depth_axis) - 1) < 1e-9
    centre = [to_ras.GetElement(r, 3) for r in range(3)]
    assert abs(_ijk(enface.background, centre)[2]) < 1e-6


def test_enface_labels_light_where_d_says(env):
    controller, volume, session = _shown_partial_run(env)
    explanation, run = session.explanation, session.run
    enface = find_enface(env.scene, volume)
    k = run.overlays[0].class_index
    assert enface.class_index == k
    n = volume.GetImageData().GetDimensions()[2]
    maps = [enface_map(explanation.results, o.class_index, n, explanation.bscan_shape, explanation.weights)
            for o in run.overlays]
    m, scale = maps[0], enface_scale(maps)
    labels = volume_array(enface.labels)[0]
    assert labels.shape == m.positive.shape == (n, volume.GetImageData().GetDimensions()[0])
    pos, neg = decode_labels(labels)
    rows = m.explained
    assert not rows[1] and rows.sum() == n - 1 and not labels[1].any(), "an unexplained B-scan must stay empty"
    step = 0.5 / (LEVELS - 1) + 1e-6
    assert np.abs(pos[rows] - np.sqrt(np.clip(m.positive[rows] / scale, 0, 1))).max() <= step
    assert np.abs(neg[rows] - np.sqrt(np.clip(m.negative[rows] / scale, 0, 1))).max() <= step
    assert labels[rows].any()
    # Where the evidence is, on the volume: en-face voxel (a, b) is the OCT volume's A-scan a of B-scan b.
    b, a = np.unravel_index(np.nanargmax(np.fmax(m.positive, m.negative)), m.positive.shape)
    assert labels[b, a] != 0
    depth = volume.GetImageData().GetDimensions()[1]
    assert np.allclose(_ras(enface.labels, (a, b, 0)), _ras(volume, (a, (depth - 1) / 2, b)))
    assert np.allclose(volume_array(enface.background)[0], projection(volume))
    assert np.allclose(projection(volume), volume_array(volume).mean(axis=1), atol=1e-6)
    # Another class in view 1 (Compare's A): the en-face labelmap follows it.
    a_name, b_name = run.overlays[1].class_name, run.overlays[0].class_name
    assert controller.compare(True, a_name, b_name) == ""
    assert find_enface(env.scene, volume).class_index == run.overlays[1].class_index
    assert controller.compare(False) == "" and find_enface(env.scene, volume).class_index == k


def test_jump_to_moves_the_bscan_views_and_the_crosshair(env):
    controller, volume, session = _shown_partial_run(env)
    enface = find_enface(env.scene, volume)
    depth = volume.GetImageData().GetDimensions()[1]
    for b, a in ((3, 10), (0, 0), (4, 63)):
        point = _ras(enface.labels, (a + 0.3, b - 0.2, 0))  # anywhere inside the voxel
        assert jump_to(env.scene, volume, point) == (b, a)
        for name in VIEW_NAMES:
            node = view_node(env.scene, name)
            assert bscan_shown(volume, node) == b, name
            assert abs(node.GetSliceOffset() - _ras(volume, (0, 0, b))[2]) < 1e-6, name
        cross = np.array(crosshair_node(env.scene).GetCrosshairRAS())
        assert np.allclose(_ijk(volume, cross), (a, (depth - 1) / 2, b))
    assert controller.views.bscan == 4
    assert jump_to(env.scene, volume, _ras(enface.labels, (70, 2, 0))) is None  # beyond the last A-scan


def test_enface_geometry_follows_any_volume_orientation(env):
    """A volume whose B-scans are not axial slices (rotated, oblique): the en-face volumes and jump_to still put
    each (B-scan, A-scan) where it is in the volume."""
    volume = fixtures.make_test_volume(env, n_bscans=4)
    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    rotation = vtk.vtkTransform()
    rotation.RotateWXYZ(35, 0.3, 1.0, 0.2)
    rotation.Translate(5, -3, 2)
    out = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Multiply4x4(rotation.GetMatrix(), m, out)
    volume.SetIJKToRASMatrix(out)
    enface = show_enface(env.scene, volume, None, -1)
    depth = volume.GetImageData().GetDimensions()[1]
    assert not volume_array(enface.labels).any()  # no results: the projection alone
    for b, a in ((0, 0), (2, 17), (3, 63)):
        assert np.allclose(_ras(enface.background, (a, b, 0)), _ras(volume, (a, (depth - 1) / 2, b)))
        assert jump_to(env.scene, volume, _ras(enface.background, (a, b, 0))) == (b, a)


def test_the_controller_draws_the_enface_view_again_when_the_run_ends(env, worker, mrml_package):
    """Shown once its first B-scan arrives (as the module does), the run's en-face view holds every finished
    B-scan once the run ends; a click through the controller jumps there."""
    controller = DiDAController(lambda: env.layout_node, lambda: (1.0, "both", True), worker_factory=lambda: worker,
                                process_events=env.show_dida_layout)
    volume = fixtures.make_test_volume(env, n_bscans=3)
    controller.start(volume, mrml_package, fixtures.TEST_SETTINGS, [0, 1, 2])
    rows_when_shown = None
    while controller.poll():
        run = controller.newly_shown()
        if run is not None:
            controller.show(run)
            rows_when_shown = volume_array(find_enface(env.scene, volume).labels)[0].any(axis=1).sum()
    run = controller.newly_shown()
    if run is not None:  # every B-scan arrived in one poll
        controller.show(run)
    assert controller.session.state == "complete" and rows_when_shown in (None, 1, 2, 3)
    labels = np.array(volume_array(find_enface(env.scene, volume).labels)[0])
    k = controller.views.overlays[0].class_index
    ex = controller.session.explanation
    assert ex.indices == [0, 1, 2] and labels.any()
    fresh = show_enface(env.scene, volume, ex, k, [o.class_index for o in controller.views.overlays])
    assert np.array_equal(labels, volume_array(fresh.labels)[0]), "the en-face view misses B-scans of the run"
    enface = find_enface(env.scene, volume)
    assert controller.jump_to(_ras(enface.labels, (5, 2, 0))) == (2, 5)
    assert bscan_shown(volume, view_node(env.scene, VIEW_NAMES[0])) == 2
