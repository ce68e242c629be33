"""Checks of DiDA in a scene, shared by the CI tests (``slicer-core``) and ``DiDATest`` (inside Slicer).

Each ``check_*`` function raises ``AssertionError`` with a message saying what is wrong. Most work on a
``Fixture``: a finished run on a small volume, shown in the DiDA View, in an *environment* (see ``fixtures``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import vtk

from ...io.volume import OCTVolume
from ...maps.labels import LEVELS, label_color
from ..layout import (
    BSCAN_VIEW,
    CLASS_VIEWS,
    ENFACE_VIEW,
    PLOT_VIEW,
    VIEW_GROUP,
    VIEW_NAMES,
    VIEW_TEXT,
    composite_node,
    crosshair_node,
    layout_id,
    score_text,
    shows_dida_layout,
    view_node,
    view_rgba,
)
from ..overlays import ROLE, dida_volume_ids, display_mode, find_color_table, input_candidates, mode_entries
from ..results import BSCAN_COLUMN, find_runs, plot_series, read_scores, scene_hierarchy
from ..views import DiDAViews, ViewLabels
from ..volumes import (
    add_oct_volume,
    oct_from_volume_node,
    remove_node,
    same_geometry,
    show_bscan,
    show_volume,
    volume_array,
)
from .fixtures import Fixture


def check_volume_round_trip(env) -> None:
    """An OCTVolume becomes a volume node with the B-scan geometry, and comes back the same."""
    rng = np.random.default_rng(0)
    vol = OCTVolume(rng.random((3, 10, 12), dtype=np.float32), (0.01, 0.004, 0.2), laterality="OD", source="x.vol",
                    format="heyex-vol")
    node = add_oct_volume(env.scene, vol)
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    diag = [m.GetElement(i, i) for i in range(3)]
    assert np.allclose(diag, [-0.01, -0.004, 0.2]), f"IJK to RAS diagonal {diag}: expected (-lateral, -axial, distance)"
    back = oct_from_volume_node(node)
    assert np.array_equal(back.bscans, vol.bscans), "B-scans changed on the way through the scene"
    assert np.allclose(back.spacing, vol.spacing) and back.laterality == "OD" and back.format == "heyex-vol"
    remove_node(env.scene, node)


def check_overlay_colours(fx: Fixture) -> None:
    """In a class view, evidence for the class (d > 0 on every grid) is red, against (d < 0) blue, and the
    B-scan shows unchanged where there is none."""
    k = fx.views.bscan
    assert k is not None and k in fx.run.finished, f"the views show B-scan {k}, which has no result"
    bscan_rgba = view_rgba(fx.env.slice_logic(BSCAN_VIEW))
    counts = {"red": 0, "blue": 0, "plain": 0}
    for rank, name in enumerate(CLASS_VIEWS):
        overlay = fx.run.overlays[rank]
        logic = fx.env.slice_logic(name)
        rgba = view_rgba(logic).astype(int)
        labels, inside = _labels_under_pixels(fx, logic, overlay)
        mixed = fx.session.explanation.mixed(k, overlay.class_index)
        assert np.array_equal(overlay.bscan_labels(k), _encode(mixed)), "the labelmap is not the Mixed Image"
        p, q = labels // LEVELS, labels % LEVELS
        for_class = inside & (p >= 3) & (q == 0)
        against = inside & (q >= 3) & (p == 0)
        plain = inside & (p == 0) & (q == 0)
        r, g, b = rgba[..., 0], rgba[..., 1], rgba[..., 2]
        assert np.all(r[for_class] > b[for_class] + 20), f"{overlay.class_name}: pixels with d > 0 are not red"
        assert np.all(b[against] > r[against] + 20), f"{overlay.class_name}: pixels with d < 0 are not blue"
        assert np.array_equal(rgba[plain][:, :3], bscan_rgba[plain][:, :3].astype(int)), \
            f"{overlay.class_name}: without evidence the B-scan must show unchanged"
        # Over the B-scan, not instead of it: where the evidence is partial the grey still shows through.
        partial = for_class & (p < LEVELS - 1) & (bscan_rgba[..., 1] > 40)
        if partial.any():
            assert np.all(g[partial] > 0), f"{overlay.class_name}: the overlay hides the B-scan"
        counts["red"] += int(for_class.sum())
        counts["blue"] += int(against.sum())
        counts["plain"] += int(plain.sum())
    assert counts["red"] > 0 and counts["blue"] > 0, f"too few pixels to judge the colours: {counts}"


def _encode(mixed) -> np.ndarray:
    from ...maps.labels import encode_labels

    return encode_labels(mixed.positive, mixed.negative)


def _labels_under_pixels(fx: Fixture, logic, overlay):
    """The overlay label under every view pixel (rows top first) and where that is unambiguous (inside the
    volume, away from label edges and the reslice's half-voxel rounding)."""
    node = logic.GetSliceNode()
    w, h, _ = node.GetDimensions()
    xs, ys = np.meshgrid(np.arange(w), np.arange(h)[::-1])  # row 0 of the returned image is the top (y = h-1)
    xy = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size), np.ones(xs.size)])
    xy_to_ras = _matrix(node.GetXYToRAS())
    ras_to_ijk = vtk.vtkMatrix4x4()
    fx.volume.GetRASToIJKMatrix(ras_to_ijk)
    ijk = (_matrix(ras_to_ijk) @ xy_to_ras @ xy)[:3].T.reshape(h, w, 3)
    labels_vol = volume_array(overlay.labels)
    n, depth, width = labels_vol.shape
    idx = np.floor(ijk + 0.5).astype(int)
    inside = (idx[..., 0] >= 1) & (idx[..., 0] < width - 1) & (idx[..., 1] >= 1) & (idx[..., 1] < depth - 1) \
        & (idx[..., 2] >= 0) & (idx[..., 2] < n)
    frac = np.abs(ijk[..., :2] - np.floor(ijk[..., :2]) - 0.5)
    inside &= np.all(frac > 0.1, axis=-1)
    i, j, kk = np.clip(idx[..., 0], 1, width - 2), np.clip(idx[..., 1], 1, depth - 2), np.clip(idx[..., 2], 0, n - 1)
    labels = labels_vol[kk, j, i].astype(int)
    for dj in (-1, 0, 1):
        for di in (-1, 0, 1):
            inside &= labels_vol[kk, j + dj, i + di] == labels
    return labels, inside


def _matrix(m) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def check_overlay_geometry(fx: Fixture) -> None:
    """Every overlay (labelmap and float map) has the input volume's voxel grid; the float map is the net."""
    k = fx.views.bscan
    for overlay in fx.run.overlays:
        for node in overlay.nodes:
            assert same_geometry(node, fx.volume), f"{node.GetName()} does not share the input volume's geometry"
        mixed = fx.session.explanation.mixed(k, overlay.class_index)
        assert np.allclose(volume_array(overlay.net)[k], mixed.positive - mixed.negative, atol=1e-6)
        color = overlay.labels.GetDisplayNode().GetColorNode()
        assert color is not None and color.GetAttribute(ROLE) == "colors", "the labelmap is not coloured by DiDA"
    lut = find_color_table(fx.env.scene).GetLookupTable()
    assert lut.GetTableValue(0)[3] == 0.0, "label 0 (no evidence) must be transparent"
    assert lut.GetTableValue((LEVELS - 1) * LEVELS)[:3] == (1.0, 0.0, 0.0), "full positive evidence must be red"
    assert lut.GetTableValue(LEVELS - 1)[:3] == (0.0, 0.0, 1.0), "full negative evidence must be blue"


def check_layout(fx: Fixture) -> None:
    """The DiDA View is registered with four slice views in one view group, showing the B-scan and the top
    three classes' overlays; moving one view's slice moves the others and relabels them."""
    layout_node = fx.env.layout_node
    registered = layout_id(layout_node)
    assert registered is not None and shows_dida_layout(layout_node), "the DiDA View layout is not registered"
    root = ET.fromstring(layout_node.GetLayoutDescription(registered))
    slice_views = [v.get("singletontag") for v in root.iter("view") if v.get("class") == "vtkMRMLSliceNode"]
    want_views = [*VIEW_NAMES, ENFACE_VIEW]
    assert slice_views == want_views, f"layout slice views {slice_views}, expected {want_views}"
    scene = fx.env.scene
    for i, name in enumerate(VIEW_NAMES):
        node = view_node(scene, name)
        assert node is not None and node.GetViewGroup() == VIEW_GROUP, f"view {name} missing or not in the group"
        comp = composite_node(scene, name)
        assert comp.GetBackgroundVolumeID() == fx.volume.GetID(), f"view {name} does not show the B-scans"
        want = fx.run.overlays[i - 1].labels.GetID() if i else None
        assert comp.GetLabelVolumeID() == want, f"view {name} shows label {comp.GetLabelVolumeID()}, expected {want}"
    plot_view = view_node(scene, PLOT_VIEW, "vtkMRMLPlotViewNode")
    assert plot_view is not None and plot_view.GetPlotChartNodeID() == fx.run.chart.GetID(), "no score plot"
    # Scroll in the last view: all four follow, the labels name the new B-scan and its scores.
    target = fx.run.finished[0] if fx.run.finished[0] != fx.views.bscan else fx.run.finished[-1]
    last = view_node(scene, CLASS_VIEWS[-1])
    show_bscan(last, fx.volume, target)
    offsets = [view_node(scene, name).GetSliceOffset() for name in VIEW_NAMES]
    assert np.allclose(offsets, offsets[-1]), f"slice offsets are not linked: {offsets}"
    assert fx.views.bscan == target, f"the views show B-scan {fx.views.bscan}, expected {target}"
    texts = {name: view_node(scene, name).GetAttribute(VIEW_TEXT) for name in VIEW_NAMES}
    assert texts[BSCAN_VIEW].startswith(f"B-scan {target}"), texts
    for rank, name in enumerate(CLASS_VIEWS):
        cls = fx.run.overlays[rank].class_name
        want = f"{cls}  {score_text(fx.run.score(cls, target), 'probabilities')}"
        assert texts[name] == want, f"view {name} is labelled {texts[name]!r}, expected {want!r}"


def check_link_survival(fx: Fixture) -> None:
    """With Slicer's view linking on, a label layer changed in one DiDA view is copied to the other linked views
    by vtkMRMLSliceLinkLogic; DiDA puts their own overlays back, and keeps the user's change in the view itself."""
    scene = fx.env.scene
    comps = [composite_node(scene, name) for name in VIEW_NAMES]
    for c in comps:
        c.SetLinkedControl(True)
    try:
        source = fx.env.slice_logic(CLASS_VIEWS[0])
        chosen = fx.run.overlays[-1].labels.GetID()
        source.StartSliceCompositeNodeInteraction(comps[1].LabelVolumeFlag)
        comps[1].SetLabelVolumeID(chosen)
        source.EndSliceCompositeNodeInteraction()
        assert comps[1].GetLabelVolumeID() == chosen, "the user's change in the view itself was undone"
        for rank in (1, 2):
            want = fx.run.overlays[rank].labels.GetID()
            got = comps[rank + 1].GetLabelVolumeID()
            assert got == want, f"view {CLASS_VIEWS[rank]} lost its overlay to a linked change ({got} != {want})"
        assert comps[0].GetLabelVolumeID() is None, "the B-scan view received a linked overlay"
    finally:
        for c in comps:
            c.SetLinkedControl(False)
        fx.views.show(fx.run, bscan=fx.views.bscan)


def check_crosshair(fx: Fixture) -> None:
    """Moving the mouse over a DiDA view puts the crosshair there, at the same place in all four views."""
    scene = fx.env.scene
    crosshair = crosshair_node(scene)
    assert crosshair is not None, "no crosshair node"
    over = view_node(scene, CLASS_VIEWS[1])
    w, h, _ = over.GetDimensions()
    crosshair.SetCursorPositionXYZ([w * 0.3, h * 0.6, 0.0], over)
    cursor = [0.0, 0.0, 0.0]
    assert crosshair.GetCursorPositionRAS(cursor)
    assert np.allclose(crosshair.GetCrosshairRAS(), cursor), "the crosshair does not follow the mouse"
    spots = []
    for name in VIEW_NAMES:
        to_xy = np.linalg.inv(_matrix(view_node(scene, name).GetXYToRAS()))
        spots.append((to_xy @ np.array([*crosshair.GetCrosshairRAS(), 1.0]))[:3])
    assert np.allclose(spots, spots[0], atol=1e-6), f"the crosshair is drawn at different places: {spots}"
    assert crosshair.GetCrosshairMode() != crosshair.NoCrosshair, "the crosshair is hidden"


def check_display_controls(fx: Fixture) -> None:
    """Opacity and positive/negative/both apply to every DiDA class view at once."""
    scene = fx.env.scene
    fx.views.set_opacity(0.35)
    assert all(composite_node(scene, n).GetLabelOpacity() == 0.35 for n in CLASS_VIEWS)
    table = find_color_table(scene)
    for mode in ("positive", "negative", "both"):
        fx.views.set_display_mode(mode)
        assert display_mode(scene) == mode
        lut = table.GetLookupTable()
        got = np.array([lut.GetTableValue(i) for i in range(LEVELS * LEVELS)])
        want = np.array([rgba for _, _, rgba in mode_entries(mode)])
        assert np.allclose(got, want, atol=0.5 / 255), f"colour table for {mode!r} is wrong"  # stored as bytes
        both = (LEVELS - 1) * LEVELS + (LEVELS - 1)  # full evidence for and against
        assert tuple(got[both][:3]) == {"positive": (1, 0, 0), "negative": (0, 0, 1), "both": (1, 0, 1)}[mode]
    fx.views.set_opacity(1.0)
    assert label_color(0)[3] == 0.0
    # B-scan proportions: square voxels (as OCT devices show them) or true millimetres, in all views alike.
    lateral, axial, _ = fx.volume.GetSpacing()
    for square, stretch in ((False, 1.0), (True, lateral / axial)):
        fx.views.set_square_voxels(square)
        for name in VIEW_NAMES:
            node = view_node(scene, name)
            (fov_x, fov_y, _), (w, h, _) = node.GetFieldOfView(), node.GetDimensions()
            assert np.isclose(fov_x / w, fov_y / h * stretch), f"{name}: depth not drawn {stretch:.2f}x"
    assert fx.views.bscan in fx.run.finished, "fitting moved the views off the B-scan"


def check_scores_and_plot(fx: Fixture) -> None:
    """The score table holds every finished B-scan's scores for every class; the plot draws the shown classes."""
    indices, names, scores = read_scores(fx.run.table)
    exp = fx.session.explanation
    assert indices == exp.indices and names == list(exp.class_names), (indices, names)
    assert np.allclose(scores, exp.scores(), atol=1e-9), "score table values differ from the model's scores"
    series = plot_series(fx.run.chart)
    assert [s.GetYColumnName() for s in series] == [o.class_name for o in fx.run.overlays]
    for s in series:
        assert s.GetXColumnName() == BSCAN_COLUMN and s.GetTableNode() is fx.run.table


def check_hierarchy(fx: Fixture) -> None:
    """All of a run's nodes sit in one folder under the input volume in the subject hierarchy."""
    sh = scene_hierarchy(fx.env.scene)
    volume_item = sh.GetItemByDataNode(fx.volume)
    folders = set()
    for node in [fx.run.table, fx.run.chart] + [n for o in fx.run.overlays for n in o.nodes]:
        item = sh.GetItemByDataNode(node)
        assert item, f"{node.GetName()} is not in the subject hierarchy"
        folders.add(sh.GetItemParent(item))
    assert len(folders) == 1, "the run's nodes are spread over several folders"
    assert sh.GetItemParent(folders.pop()) == volume_item, "the run's folder is not under the input volume"


def check_save_reload(fx: Fixture, folder: str | Path):
    """The scene written to disk and read back keeps the run: overlays, colour table, scores and status."""
    before = {o.class_name: o.bscan_labels(fx.views.bscan) for o in fx.run.overlays}
    colors = [find_color_table(fx.env.scene).GetLookupTable().GetTableValue(i) for i in range(LEVELS * LEVELS)]
    status = (fx.run.status, fx.run.finished)
    env2 = fx.env.save_and_reload(folder)
    runs = find_runs(env2.scene)
    assert len(runs) == 1, f"found {len(runs)} DiDA runs after reloading"
    run = runs[0]
    assert [o.class_name for o in run.overlays] == list(before), "overlays lost or reordered"
    for o in run.overlays:
        assert same_geometry(o.labels, run.volume), "a reloaded overlay lost the input geometry"
        assert np.array_equal(o.bscan_labels(fx.views.bscan), before[o.class_name]), "overlay voxels changed"
        color = o.labels.GetDisplayNode().GetColorNode()
        assert color is not None and color.GetAttribute(ROLE) == "colors", "the overlay lost its DiDA colours"
    table = find_color_table(env2.scene)
    reloaded = [table.GetLookupTable().GetTableValue(i) for i in range(LEVELS * LEVELS)]
    assert np.allclose(reloaded, colors, atol=1.0 / 255), "the colour table changed"
    assert (run.status, run.finished) == status
    indices, _, scores = read_scores(run.table)
    assert indices == fx.session.explanation.indices and np.allclose(scores, fx.session.explanation.scores(), atol=1e-6)
    sh = scene_hierarchy(env2.scene)
    folder_item = sh.GetItemParent(sh.GetItemByDataNode(run.overlays[0].labels))
    assert sh.GetItemParent(folder_item) == sh.GetItemByDataNode(run.volume), "the run left the input's folder"
    # The reloaded run shows in the DiDA View as before.
    env2.show_dida_layout()
    views = DiDAViews(env2.scene)
    views.show(run, bscan=fx.run.finished[0])
    cls = run.overlays[0].class_name
    assert views.texts()[CLASS_VIEWS[0]] == f"{cls}  {score_text(run.score(cls, fx.run.finished[0]), 'probabilities')}"
    assert composite_node(env2.scene, CLASS_VIEWS[0]).GetLabelVolumeID() == run.overlays[0].labels.GetID()
    views.detach()
    return env2


def check_resize_keeps_proportions(fx: Fixture) -> None:
    """Square B-scan pixels survive a view resize (Slicer's ResizeSliceNode makes them square in millimetres)."""
    lateral, axial, _ = fx.volume.GetSpacing()
    stretch = lateral / axial if fx.views.square_voxels else 1.0
    shown = fx.views.bscan
    logic = fx.env.slice_logic(CLASS_VIEWS[0])
    node = logic.GetSliceNode()
    width, height, _ = node.GetDimensions()
    try:
        logic.ResizeSliceNode(width + 57, height - 31)
        for name in VIEW_NAMES:
            view = view_node(fx.env.scene, name)
            (fov_x, fov_y, _), (w, h, _) = view.GetFieldOfView(), view.GetDimensions()
            assert np.isclose(fov_x / w, fov_y / h * stretch), f"{name}: resized, depth is not {stretch:.2f}x"
        assert fx.views.bscan == shown, "a resize moved the views off the B-scan"
    finally:
        logic.ResizeSliceNode(width, height)


def check_input_candidates(fx: Fixture) -> None:
    """DiDA's own maps (overlays and float maps) are never offered as volumes to explain."""
    ours = set(dida_volume_ids(fx.env.scene))
    made = {n.GetID() for o in fx.run.overlays for n in o.nodes}
    assert made <= ours, f"DiDA's maps {sorted(made - ours)} are not recognised as DiDA's"
    candidates = {n.GetID() for n in input_candidates(fx.env.scene)}
    assert fx.volume.GetID() in candidates and not candidates & ours, (sorted(candidates), sorted(ours))


def check_show_volume(env) -> None:
    """A volume read by DiDA's file reader is shown as the Volumes reader shows one: in the slice views, fitted."""
    rng = np.random.default_rng(5)
    node = add_oct_volume(env.scene, OCTVolume(rng.random((3, 16, 20), dtype=np.float32), (0.01, 0.004, 0.2)))
    env.layout_node.SetViewArrangement(env.layout_node.SlicerLayoutOneUpRedSliceView)
    logic = env.slice_logic("Red")
    show_volume(env.app_logic, node)
    assert logic.GetSliceCompositeNode().GetBackgroundVolumeID() == node.GetID(), "the loaded volume is not shown"
    bounds = [0.0] * 6
    logic.GetLowestVolumeSliceBounds(bounds)
    fov = logic.GetSliceNode().GetFieldOfView()
    assert fov[0] >= bounds[1] - bounds[0] - 1e-6 and fov[1] >= bounds[3] - bounds[2] - 1e-6, "not fitted to the view"
    remove_node(env.scene, node)


def check_leaving_the_layout(fx: Fixture) -> None:
    """Leaving the DiDA View gives the crosshair its mode back and removes DiDA's view labels; coming back shows
    the run again."""
    scene, crosshair = fx.env.scene, crosshair_node(fx.env.scene)
    fx.views.detach()
    crosshair.SetCrosshairMode(crosshair.ShowBasic)  # the user's choice
    labels = ViewLabels(fx.env.renderer)
    views = DiDAViews(scene, labels=labels)
    views.show(fx.run, bscan=fx.run.finished[0])
    assert crosshair.GetCrosshairMode() == crosshair.ShowSmallBasic
    assert sorted(labels.actors) == sorted(VIEW_NAMES), f"view labels drawn in {sorted(labels.actors)}"
    for name in VIEW_NAMES:
        renderer, actor = labels.actors[name]
        assert renderer.HasViewProp(actor) and actor.GetInput() == views.texts()[name], f"{name} label not drawn"
    held = list(labels.actors.values())
    fx.env.layout_node.SetViewArrangement(fx.env.layout_node.SlicerLayoutOneUpRedSliceView)
    assert not views.attached, "the DiDA views still link after the DiDA View was left"
    assert crosshair.GetCrosshairMode() == crosshair.ShowBasic, "the crosshair mode was not given back"
    assert not labels.actors and not any(r.HasViewProp(a) for r, a in held), "DiDA's view labels are still drawn"
    fx.env.show_dida_layout()
    fx.views = DiDAViews(scene)
    fx.views.set_opacity(1.0)
    fx.views.show(fx.run, bscan=fx.run.finished[0])


def check_export(fx: Fixture) -> None:
    """Export results: the run's folder as dida explain writes it; a foreign folder refused and left as it was."""
    import json
    import tempfile

    from ..export import export_session

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "export"
        assert export_session(target, fx.session) == target
        files = json.loads((target / "run.json").read_text())["files"]
        listed = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
        assert sorted([*files, "run.json"]) == listed, f"run.json lists {files}, the folder holds {listed}"
        for name in ("dida_results.npz", "scores.csv", "report.html", "volume.nrrd"):
            assert name in files, f"the export lacks {name}"
        foreign = Path(tmp) / "notes"
        foreign.mkdir()
        (foreign / "mine.txt").write_text("keep me")
        try:
            export_session(foreign, fx.session, force=True)
        except ValueError as exc:
            assert "not a DiDA result" in str(exc) and "\n" not in str(exc), str(exc)
        else:
            raise AssertionError("a folder of other files was replaced by the export")
        assert [p.name for p in foreign.iterdir()] == ["mine.txt"], "the refused folder was changed"
