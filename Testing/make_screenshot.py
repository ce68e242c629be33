"""Render the DiDA View as Slicer draws it (the four slice views' blended vtkMRMLSliceLogic outputs, on the
slicer-core wheel) into Resources/Screenshots/DiDA-View.png, the extension's catalog screenshot.

The phantom model (``Resources/DemoModel``) explains a phantom volume; the view labels, the crosshair (drawn by Slicer's crosshair displayable
manager, which a headless render lacks) and the score plot are added from the same scene nodes Slicer shows.

    python Testing/make_screenshot.py [--model FOLDER] [--bscans 7] [--explain 2 3 4] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from DiDALib.io.volume import OCTVolume  # noqa: E402
from DiDALib.mrml.selftest.headless import HeadlessSlicer  # noqa: E402
from DiDALib.mrml.layout import VIEW_NAMES, crosshair_node, view_node, view_rgba  # noqa: E402
from DiDALib.mrml.results import SERIES_COLORS, read_scores  # noqa: E402
from DiDALib.mrml.session import ExplainSession  # noqa: E402
from DiDALib.mrml.views import DiDAViews  # noqa: E402
from DiDALib.mrml.volumes import add_oct_volume  # noqa: E402
from DiDALib.reports.figures import load_font  # noqa: E402
from DiDALib.worker.client import WorkerClient  # noqa: E402

SPECTRALIS_SPACING = (0.0114, 0.0039, 0.12)  # mm: lateral, axial, between B-scans (a typical macular cube)


def render(model: Path, out: Path, n_bscans: int, explain: list[int] | None, view_size: tuple[int, int],
           seed: int) -> Path:
    from PIL import Image, ImageDraw

    from DiDALib.phantom import make_volume

    bscans, labels, masks = make_volume(n_bscans=n_bscans, seed=seed)
    chosen = explain if explain else list(range(n_bscans))
    shown = next((i for i in chosen if labels[i] != "normal"), chosen[len(chosen) // 2])
    with HeadlessSlicer() as env, WorkerClient() as worker:  # DiDA runs in its worker process, as in Slicer
        volume = add_oct_volume(env.scene, OCTVolume(bscans, SPECTRALIS_SPACING, source="phantom-macula.vol",
                                                     format="phantom"))
        session = ExplainSession(env.scene, volume, worker, model, {"device": "auto"}, classes="top3")
        state = session.run_blocking(chosen)
        if state != "complete":
            raise RuntimeError(session.summary())
        env.show_dida_layout(view_size)
        views = DiDAViews(env.scene)
        views.set_opacity(1.0)
        views.show(session.run, bscan=shown)
        # The crosshair where a clinician points: over the lesion's centre in the B-scan shown.
        crosshair = crosshair_node(env.scene)
        over = view_node(env.scene, VIEW_NAMES[1])
        crosshair.SetCursorPositionXYZ(_lesion_xy(over, volume, shown, masks[shown]), over)
        panels = [Image.fromarray(view_rgba(env.slice_logic(name))[..., :3]) for name in VIEW_NAMES]
        texts = views.texts()
        ras = crosshair.GetCrosshairRAS()
        spots = [_ras_to_pixel(view_node(env.scene, name), ras) for name in VIEW_NAMES]
        indices, names, scores = read_scores(session.run.table)
        plotted = [o.class_name for o in session.run.overlays]
        views.detach()

    w, h = view_size
    gap, plot_h, legend_h = 4, (170 if len(indices) > 1 else 0), 30
    canvas = Image.new("RGB", (4 * w + 3 * gap, h + plot_h + legend_h), (12, 12, 14))
    draw = ImageDraw.Draw(canvas)
    font, small = load_font(17), load_font(13)
    for i, (name, panel) in enumerate(zip(VIEW_NAMES, panels)):
        x0 = i * (w + gap)
        canvas.paste(panel, (x0, 0))
        draw.text((x0 + 8, 6), texts[name], fill=(255, 255, 190), font=font, stroke_width=2, stroke_fill=(0, 0, 0))
        cx, cy = spots[i]
        for dx, dy in ((1, 0), (0, 1)):  # Slicer's small crosshair, at the same place in every view
            draw.line([(x0 + cx - 9 * dx, cy - 9 * dy), (x0 + cx + 9 * dx, cy + 9 * dy)], fill=(255, 220, 0), width=2)
    legend = ("red: evidence FOR the class    blue: evidence AGAINST it    "
              "(DiDA, the paper's grids 7-21; demo model on a phantom, not for clinical use)")
    draw.text((8, h + 7), legend, fill=(215, 215, 215), font=small)
    if plot_h:
        _plot(draw, (0, h + legend_h, canvas.width, plot_h), indices, names, scores, plotted, shown, small)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, optimize=True)
    return out


def _lesion_xy(slice_node, volume, k: int, mask: np.ndarray) -> list[float]:
    """View XY of the centre of the lesion of B-scan k (or of the B-scan when it has none)."""
    j, i = (np.argwhere(mask).mean(axis=0) if mask.any() else np.array(mask.shape) / 2.0)
    import vtk

    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    ras = m.MultiplyPoint((float(i), float(j), float(k), 1.0))
    x, y = _ras_to_pixel(slice_node, ras[:3], flip=False)
    return [x, y, 0.0]


def _ras_to_pixel(slice_node, ras, flip: bool = True) -> tuple[float, float]:
    m = slice_node.GetXYToRAS()
    xy_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    x, y, _, _ = np.linalg.inv(xy_to_ras) @ np.array([*ras, 1.0])
    height = slice_node.GetDimensions()[1]
    return (x, height - 1 - y) if flip else (x, y)  # image rows run top-down, view y bottom-up


def _plot(draw, box, indices, names, scores, plotted, shown, font) -> None:
    """The score plot view's content: each shown class's score across the explained B-scans."""
    x0, y0, width, height = box
    left, right, top, bottom = x0 + 60, x0 + width - 20, y0 + 12, y0 + height - 28
    draw.rectangle([left, top, right, bottom], outline=(90, 90, 90))
    lo, hi = min(indices), max(indices)
    span = max(hi - lo, 1)

    def px(k, v):
        return left + (k - lo) / span * (right - left), bottom - v * (bottom - top)

    for v in (0.0, 0.5, 1.0):
        draw.text((x0 + 12, px(lo, v)[1] - 7), f"{v:.1f}", fill=(170, 170, 170), font=font)
    for k in indices:
        draw.text((px(k, 0)[0] - 4, bottom + 6), str(k), fill=(170, 170, 170), font=font)
    sx = px(shown, 0)[0]
    draw.line([(sx, top), (sx, bottom)], fill=(255, 220, 0), width=1)
    for rank, name in enumerate(plotted):
        color = tuple(int(255 * c) for c in SERIES_COLORS[rank % len(SERIES_COLORS)])
        pts = [px(k, float(scores[r, names.index(name)])) for r, k in enumerate(indices)]
        draw.line(pts, fill=color, width=3)
        for x, y in pts:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=color)
        draw.text((right - 230, top + 6 + 17 * rank), f"- {name}", fill=color, font=font)
    draw.text(((left + right) / 2 - 30, y0 + height - 16), "B-scan", fill=(170, 170, 170), font=font)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model package (default: the phantom model)")
    parser.add_argument("--out", type=Path, default=ROOT / "Resources" / "Screenshots" / "DiDA-View.png")
    parser.add_argument("--bscans", type=int, default=7, help="B-scans in the phantom volume")
    parser.add_argument("--explain", type=int, nargs="*", default=None, help="B-scans to explain (default: all)")
    parser.add_argument("--view-size", type=int, nargs=2, default=(460, 250), metavar=("W", "H"))
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)
    model = args.model
    if model is None:
        from DiDALib.models.package import phantom_model_path
        from DiDALib.models.spec import ModelPackageError

        try:
            model = phantom_model_path()
        except ModelPackageError:
            from DiDALib.mrml.selftest.fixtures import make_test_package

            model = make_test_package(Path(tempfile.mkdtemp()) / "model")
            print(f"no demo model yet: using a tiny random test model ({model}); the picture is not meaningful")
    out = render(model, args.out, args.bscans, args.explain, tuple(args.view_size), args.seed)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
