"""Checks of the maps beyond the paper in the DiDA View (issue 15), shared by the CI tests (``slicer-core``) and
``DiDATest`` (inside Slicer) like ``checks``: Compare (A rather than B), the feature-scale readout and the en-face
view."""

from __future__ import annotations

import numpy as np

from ...maps.labels import LEVELS
from ...maps.mixing import cell_values
from ..compare import check_pair, compare
from ..layout import CLASS_VIEWS, VIEW_TEXT, composite_node, view_node, view_rgba
from .checks import _labels_under_pixels
from .fixtures import Fixture


def _signed_contrast(fx: Fixture, k: int, a: int, b: int) -> np.ndarray:
    """The weighted sum over the grids of d_A - d_B on B-scan k, per pixel, straight from the stored d."""
    result = fx.session.explanation.results[k]
    weights = fx.session.explanation.weights or [1.0] * len(result.grids)
    total = np.zeros(fx.session.explanation.bscan_shape, np.float64)
    for w, n in zip(weights, result.grids):
        d = (result.deltas[n][a].astype(np.float64) - result.deltas[n][b]).ravel()
        total += w * cell_values(result, n, d, fx.session.explanation.bscan_shape)
    return total


def check_compare(fx: Fixture) -> None:
    """Compare A and B: views 1 and 2 show A and B, view 3 the contrast, red where d_A - d_B > 0 and blue where it
    is < 0; turning it off gives the top three back and removes what it added; a bad pair is one sentence."""
    scene, run, explanation = fx.env.scene, fx.run, fx.session.explanation
    names = list(explanation.class_names)
    a = run.overlays[0].class_name
    b = next((n for n in names if n not in [o.class_name for o in run.overlays]), run.overlays[1].class_name)
    before = {node.GetID() for node in scene.GetNodesByClass("vtkMRMLVolumeNode")}
    comparison = compare(scene, run, explanation, a, b)
    fx.views.set_comparison(comparison)
    k = fx.views.bscan
    try:
        shown = [composite_node(scene, name).GetLabelVolumeID() for name in CLASS_VIEWS]
        assert shown == [o.labels.GetID() for o in comparison.overlays], f"views 1 to 3 show {shown}"
        assert [o.class_name for o in comparison.overlays[:2]] == [a, b], "views 1 and 2 are not A and B"
        text = view_node(scene, CLASS_VIEWS[2]).GetAttribute(VIEW_TEXT)
        assert text.startswith(f"{a} vs {b}"), f"view 3 is labelled {text!r}"
        logic = fx.env.slice_logic(CLASS_VIEWS[2])
        rgba = view_rgba(logic).astype(int)
        labels, inside = _labels_under_pixels(fx, logic, comparison.overlays[2])
        p, q = labels // LEVELS, labels % LEVELS
        red, blue = inside & (p >= 3) & (q == 0), inside & (q >= 3) & (p == 0)
        assert red.any() and blue.any(), f"too few pixels to judge the contrast: {int(red.sum())} red, {int(blue.sum())} blue"
        assert np.all(rgba[red][:, 0] > rgba[red][:, 2] + 20), "A-rather-than-B pixels are not red"
        assert np.all(rgba[blue][:, 2] > rgba[blue][:, 0] + 20), "B-rather-than-A pixels are not blue"
        # Where the view is red the stored d say A over B, where blue B over A (pixels found through the slice).
        signed = _signed_contrast(fx, k, names.index(a), names.index(b))
        ijk = _pixel_ijk(fx, logic)
        assert np.all(signed[ijk[1][red], ijk[0][red]] > 0), "red where d_A - d_B is not positive"
        assert np.all(signed[ijk[1][blue], ijk[0][blue]] < 0), "blue where d_A - d_B is not negative"
    finally:
        fx.views.set_comparison(None)
        comparison.remove(scene)
    shown = [composite_node(scene, name).GetLabelVolumeID() for name in CLASS_VIEWS]
    assert shown == [o.labels.GetID() for o in run.overlays[:3]], "turning Compare off did not restore the top three"
    after = {node.GetID() for node in scene.GetNodesByClass("vtkMRMLVolumeNode")}
    assert after == before, f"Compare left nodes behind: {sorted(after - before)}"
    for bad, words in (((a, a), "two different classes"), ((a, "no such class"), "is not a class of this run")):
        try:
            check_pair(names, *bad)
        except ValueError as exc:
            assert words in str(exc) and "\n" not in str(exc), str(exc)
        else:
            raise AssertionError(f"the pair {bad} was accepted")


def _pixel_ijk(fx: Fixture, logic) -> tuple[np.ndarray, np.ndarray]:
    """(column, row) of the B-scan voxel under every view pixel (rows top first), as ``_labels_under_pixels``."""
    import vtk

    from .checks import _matrix

    node = logic.GetSliceNode()
    w, h, _ = node.GetDimensions()
    xs, ys = np.meshgrid(np.arange(w), np.arange(h)[::-1])
    xy = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size), np.ones(xs.size)])
    ras_to_ijk = vtk.vtkMatrix4x4()
    fx.volume.GetRASToIJKMatrix(ras_to_ijk)
    ijk = np.floor((_matrix(ras_to_ijk) @ _matrix(node.GetXYToRAS()) @ xy)[:3] + 0.5).astype(int)
    depth, width = fx.session.explanation.bscan_shape
    return np.clip(ijk[0], 0, width - 1).reshape(h, w), np.clip(ijk[1], 0, depth - 1).reshape(h, w)


def check_enface(fx: Fixture) -> None:
    """The en-face view: its labelmap is the en-face evidence of view 1's class (maps.enface), on the OCT volume's
    plane, and a point in it moves the B-scan views to that B-scan and the crosshair to that A-scan."""
    import vtk

    from ...maps.enface import enface_map
    from ...maps.labels import decode_labels
    from ..enface import find_enface, jump_to, show_enface
    from ..layout import VIEW_NAMES, crosshair_node
    from ..volumes import bscan_shown, volume_array

    scene, volume, explanation, run = fx.env.scene, fx.volume, fx.session.explanation, fx.run
    k = run.overlays[0].class_index
    had = find_enface(scene, volume) is not None
    enface = show_enface(scene, volume, explanation, k, [o.class_index for o in run.overlays])
    try:
        n = volume.GetImageData().GetDimensions()[2]
        m = enface_map(explanation.results, k, n, explanation.bscan_shape, explanation.weights)
        pos, neg = decode_labels(volume_array(enface.labels)[0])
        shown = (pos > 0) | (neg > 0)
        assert shown[m.explained].any() and not shown[~m.explained].any(), "en-face labels off the explained B-scans"
        b, a = np.unravel_index(np.nanargmax(np.fmax(m.positive, m.negative)), m.positive.shape)
        assert shown[b, a], f"the strongest en-face evidence (B-scan {b}, A-scan {a}) is not drawn"
        to_ras = vtk.vtkMatrix4x4()
        enface.labels.GetIJKToRASMatrix(to_ras)
        got = jump_to(scene, volume, to_ras.MultiplyPoint((float(a), float(b), 0.0, 1.0))[:3])
        assert got == (b, a), f"a click on B-scan {b}, A-scan {a} of the en-face view went to {got}"
        for name in VIEW_NAMES:
            assert bscan_shown(volume, view_node(scene, name)) == b, f"{name} did not move to B-scan {b}"
        ras_to_ijk = vtk.vtkMatrix4x4()
        volume.GetRASToIJKMatrix(ras_to_ijk)
        i, _, kk = ras_to_ijk.MultiplyPoint((*crosshair_node(scene).GetCrosshairRAS(), 1.0))[:3]
        assert (round(i), round(kk)) == (a, b), "the crosshair is not on that A-scan"
    finally:
        fx.views.show(run, fx.views.bscan)
        if not had:
            enface.remove(scene)
