"""Render the score-mode figure (docs/maps.md): one overconfident model's DiDA View in each score mode, one row each,
and print the figures docs/maps.md quotes.

The overconfident model is the demo model with its last layer multiplied by ``--sharpen`` (logits times that
factor: the same ranking, margins in the tens, like the third-party Kermany classifier of issue 14).

    python Testing/make_score_figure.py [--sharpen 12] [--label drusen] [--seed 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from DiDALib.engine.scores import SCORE_MODES, choose_auto  # noqa: E402
from DiDALib.models.package import ModelPackage, load_model_package, phantom_model_path  # noqa: E402
from DiDALib.models.preprocess import preprocess_bscan  # noqa: E402
from DiDALib.phantom import make_bscan  # noqa: E402
from DiDALib.pipeline import ExplainSettings, VolumeExplainer  # noqa: E402
from DiDALib.maps.evidence import strongest_point  # noqa: E402
from DiDALib.reports.figures import dida_view_figure, load_font  # noqa: E402


def overconfident(package: ModelPackage, factor: float) -> ModelPackage:
    """The package's model with its classifier's weights and bias times ``factor``."""
    import torch

    model = copy.deepcopy(package.model)
    head = model.get_classifier()
    with torch.no_grad():
        head.weight.mul_(factor)
        head.bias.mul_(factor)
    return ModelPackage(package.spec, model, package.path)


def mirror(explanation, index: int) -> float:
    """Correlation of the net evidence of the B-scan's top two classes (-1: one map mirrors the other)."""
    top = explanation.results[index].top_classes(2)
    a, b = (explanation.mixed(index, k).net.ravel() for k in top)
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")


def main() -> None:
    import torch
    from PIL import Image, ImageDraw

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sharpen", type=float, default=12.0)
    parser.add_argument("--label", default="drusen")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--panel-width", type=int, default=260)
    parser.add_argument("--out", type=Path, default=ROOT / "Resources" / "Screenshots" / "score-modes.png")
    args = parser.parse_args()

    demo = load_model_package(phantom_model_path())
    package = overconfident(demo, args.sharpen)
    bscan, _ = make_bscan(args.label, np.random.default_rng(args.seed))
    rows, font = [], load_font(16)
    for name, pkg in (("demo model", demo), (f"demo model x {args.sharpen:g}", package)):
        with torch.inference_mode():
            logits = pkg.model(preprocess_bscan(bscan, pkg.spec)[0][None])
        print(f"{name}: logits {np.round(logits[0].numpy(), 2).tolist()}; {choose_auto(logits)[1]}")
    explanations = {}
    for mode in SCORE_MODES:
        explainer = VolumeExplainer(package, ExplainSettings(device="cpu", score=mode))
        explanations[mode] = explainer.explain_all(bscan[None])
    odds = explanations["log-odds"]
    top = list(odds.results[0].top_classes(3))
    point = strongest_point([odds.evidence(0, top[0])])  # one square, the same in every row
    for mode, explanation in explanations.items():
        result = explanation.results[0]
        strong = max(float(np.abs(d).max()) for d in result.deltas.values())
        finest = result.deltas[max(result.grids)]
        graded = float((np.abs(finest) > 0.05 * strong).mean())
        at = ", ".join(f"{package.spec.classes[k]} {explanation.mixed(0, k).net[point]:+.2f}" for k in top)
        print(f"{mode:13s} scores {np.round(result.base_scores, 4).tolist()}  peak |d| {strong:.4g}  cells of the "
              f"finest grid above 5% of it: {100 * graded:.0f}%  top-two map correlation {mirror(explanation, 0):+.2f}"
              f"  net evidence at {point}: {at}")
        figure = dida_view_figure(bscan, explanation, 0, classes=top, point=point, truth=args.label,
                                  panel_width=args.panel_width)
        band = Image.new("RGB", (figure.width, 26), (24, 24, 24))
        ImageDraw.Draw(band).text((6, 13), f"score: {mode}", font=font, fill=(255, 255, 255), anchor="lm")
        rows.extend([band, figure])
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=128, dither=Image.Dither.FLOYDSTEINBERG).save(args.out, optimize=True)  # a small file
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} kB)")


if __name__ == "__main__":
    main()
