"""The maps beyond the paper in the Slicer module (issue 15), on slicer-core: Compare (A rather than B) through the
controller the module drives. The view checks themselves (colours in view 3, restoring the top three) run in every
scene scenario (``map_checks.check_compare`` in ``scenarios.FIXTURE_CHECKS``)."""

from __future__ import annotations

from DiDALib.mrml.controller import DiDAController
from DiDALib.mrml.layout import CLASS_VIEWS, VIEW_TEXT, composite_node, view_node
from DiDALib.mrml.selftest import fixtures


def _controller(env, fx) -> DiDAController:
    controller = DiDAController(lambda: env.layout_node, lambda: (1.0, "both", True))
    controller.session, controller.views = fx.session, fx.views  # the run shown, as after the module showed it
    return controller


def _labels(env) -> list:
    return [composite_node(env.scene, name).GetLabelVolumeID() for name in CLASS_VIEWS]


def test_compare_through_the_controller(env):
    fx = fixtures.stored_fixture(env)
    controller = _controller(env, fx)
    names = controller.class_names()
    assert names == list(fixtures.TEST_CLASSES)
    top = [o.labels.GetID() for o in fx.run.overlays]
    a, b = fx.run.overlays[1].class_name, fx.run.overlays[0].class_name
    assert controller.compare(True, a, b) == ""
    comparison = fx.views.comparison
    assert _labels(env) == [o.labels.GetID() for o in comparison.overlays] and _labels(env)[:2] == top[1::-1]
    assert view_node(env.scene, CLASS_VIEWS[2]).GetAttribute(VIEW_TEXT).startswith(f"{a} vs {b}  (red: {a} rather")
    assert controller.compare(True, a, b) == "" and fx.views.comparison is comparison, "the same pair was rebuilt"
    assert controller.compare(True, a, a) == f"Compare needs two different classes, not {a!r} twice: choose " \
        "another class B."
    assert _labels(env) == top, "a refused pair must leave the top three shown"
    assert "is not a class of this run" in controller.compare(True, a, "no such class")
    assert controller.compare(True, b, a) == "" and controller.compare(False) == ""
    assert _labels(env) == top and fx.views.comparison is None
    # A run shown again (another run, or the layout re-entered) drops the old comparison and applies the choice.
    controller.compare(True, a, b)
    old = fx.views.comparison
    fx.views.detach()
    controller.show(fx.run)
    assert controller.views is not fx.views and controller.views.comparison is not None
    assert env.scene.GetNodeByID(old.overlays[2].labels.GetID()) is None, "the old contrast overlay was left behind"
    assert controller.compare(False) == ""


def test_compare_needs_a_run_with_its_results(env):
    fx = fixtures.stored_fixture(env)
    controller = DiDAController(lambda: env.layout_node, lambda: (1.0, "both", True))
    assert controller.compare(True, "normal", "drusen") == "Compare shows in the DiDA View: show a run there first."
    assert controller.compare(False) == "" and controller.class_names() == []
    controller.views = fx.views  # a run read back with a scene has no d in this session
    assert controller.compare(True, "normal", "drusen").startswith("Compare needs the run's results")


def test_feature_scale_readout_under_the_cursor(env):
    import numpy as np
    import vtk

    from DiDALib.maps.scale import feature_scale
    from DiDALib.mrml.layout import crosshair_node

    fx = fixtures.stored_fixture(env)
    fx.views.explanation = fx.session.explanation
    k, overlay = fx.views.bscan, fx.run.overlays[0]
    scale = feature_scale(fx.session.explanation.results[k], overlay.class_index, fx.session.explanation.bscan_shape)
    rows, cols = np.nonzero(scale.grid)
    row, col = int(rows[len(rows) // 2]), int(cols[len(cols) // 2])
    n = int(scale.grid[row, col])
    m = vtk.vtkMatrix4x4()
    fx.volume.GetIJKToRASMatrix(m)
    ijk_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    ras = ijk_to_ras @ [col, row, k, 1.0]
    node = view_node(env.scene, CLASS_VIEWS[0])
    xy_to_ras = node.GetXYToRAS()
    xy = np.linalg.inv(np.array([[xy_to_ras.GetElement(r, c) for c in range(4)] for r in range(4)])) @ ras
    crosshair_node(env.scene).SetCursorPositionXYZ(list(xy[:3]), node)
    depth, width = fx.session.explanation.bscan_shape
    lateral, axial, _ = fx.volume.GetSpacing()
    want = f"strongest at {n} x {n}, cells of {width * lateral / n:.2g} x {depth * axial / n:.2g} mm (lateral x axial)"
    text = node.GetAttribute(VIEW_TEXT)
    assert text.startswith(overlay.class_name) and text.splitlines()[1].startswith(want), text
    assert "strongest" not in view_node(env.scene, CLASS_VIEWS[1]).GetAttribute(VIEW_TEXT)
    # Outside the B-scan (the view's corner lies beyond the fitted B-scan's sides): no readout.
    crosshair_node(env.scene).SetCursorPositionXYZ([0.0, 0.0, 0.0], node)
    assert "\n" not in node.GetAttribute(VIEW_TEXT)
