"""Render the figures (docs/maps.md) of the maps for a differential diagnosis from a ``dida demo`` result, without the
model (the result's ``dida_results.npz``, ``volume.nrrd`` and ``run.json`` hold every number): the contrast panels
and the feature-scale map of one B-scan, and the en-face evidence of the volume. Each PNG is kept small for the
repository (palette-quantised where the plain PNG would pass ``--max-kb``).

    dida demo --out dida-demo
    python Testing/make_map_figures.py dida-demo --bscan 4 [--out Resources/Screenshots]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from DiDALib.cli.demo import demo_volume  # noqa: E402
from DiDALib.io.map_files import contrast_scale, enface_maps, enface_scale  # noqa: E402
from DiDALib.io.results import load_results  # noqa: E402
from DiDALib.maps.contrast import default_pairs  # noqa: E402
from DiDALib.maps.scale import feature_scale  # noqa: E402
from DiDALib.reports.figures import bscan_header, contrast_view_figure  # noqa: E402
from DiDALib.reports.map_figures import enface_figure, scale_figure  # noqa: E402


def save_small(fig, path: Path, max_kb: int) -> int:
    """Save ``fig`` as an optimised PNG, palette-quantised (256 colours) if the plain one would pass ``max_kb``."""
    buf = io.BytesIO()
    fig.save(buf, format="PNG", optimize=True)
    if buf.tell() > max_kb * 1024:
        buf = io.BytesIO()
        fig.quantize(256, dither=0).save(buf, format="PNG", optimize=True)
    path.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result", type=Path, help="a dida demo (or dida explain) result folder")
    ap.add_argument("--bscan", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "Resources" / "Screenshots")
    ap.add_argument("--panel-width", type=int, default=300)
    ap.add_argument("--max-kb", type=int, default=145)
    args = ap.parse_args(argv)

    run = json.loads((args.result / "run.json").read_text())
    ex = load_results(args.result / "dida_results.npz")
    bscans = sitk.GetArrayFromImage(sitk.ReadImage(str(args.result / "volume.nrrd"))).astype(np.float32)
    lateral, axial, distance = run["spacing_mm"]
    truths = demo_volume(len(bscans))[1] if run.get("input_format") == "phantom" else None
    i, names = args.bscan, ex.class_names
    r = ex.results[i]
    truth = truths[i] if truths else None
    pairs = default_pairs(r.base_scores)
    written = {}

    fig = contrast_view_figure(bscans[i], ex, i, pairs, contrast_scale(ex, pairs), truth=truth,
                               panel_width=args.panel_width)
    written["DiDA-contrast.png"] = fig
    top = list(r.top_classes(3))
    scales = [(feature_scale(r, k, ex.bscan_shape), names[k]) for k in top]
    written["DiDA-scale.png"] = scale_figure(bscans[i], scales, (lateral, axial), "mm", bscan_header(i, truth),
                                             panel_width=args.panel_width)
    shown = [names.index(c) for c in run["classes_shown"]]
    ranked = sorted(shown, key=lambda k: -float(ex.scores()[:, k].max()))[:3]  # the 3 classes best scored anywhere
    maps = enface_maps(ex, ranked, len(bscans))
    written["DiDA-enface.png"] = enface_figure([(m, names[m.class_index]) for m in maps], (lateral, distance),
                                               enface_scale(maps), "mm", panel_width=args.panel_width)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, fig in written.items():
        size = save_small(fig, args.out / name, args.max_kb)
        print(f"{args.out / name}: {fig.width} x {fig.height}, {size / 1024:.0f} kB")
    print(f"B-scan {i}: scores " + ", ".join(f"{names[k]} {r.base_scores[k]:.3f}" for k in np.argsort(-r.base_scores)))
    print("contrast pairs: " + ", ".join(f"{names[a]} vs {names[b]}" for a, b in pairs)
          + f"; en-face classes: {', '.join(names[k] for k in ranked)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
