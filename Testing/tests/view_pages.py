"""Result folders for the page tests and the page benchmark: a real run of the phantom model on phantom B-scans, a
real run on the Spectralis line scan, and a synthetic result of any size (d values made up, with the demo's shapes)
written exactly as ``dida explain`` writes its files, so ``dida view`` reads it like any result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
REAL_VOL = ROOT / "Testing" / "Data" / "oct" / "spectralis_linescan_real.vol"
#: Few grids keep the runs to seconds; three sizes still give the page several atoms per cell and a feature scale.
GRIDS = (3, 5)


def demo_result(out: Path, n_bscans: int = 3) -> Path:
    """The phantom model on ``n_bscans`` phantom B-scans (with their diagnoses), every class shown, ``GRIDS``."""
    from DiDALib.cli.demo import demo_volume
    from DiDALib.cli.explain import run_explain
    from DiDALib.models.package import load_model_package, phantom_model_path
    from DiDALib.pipeline import ExplainSettings

    volume, truths = demo_volume(n_bscans)
    settings = ExplainSettings(grids=GRIDS, device="cpu", classes="all")
    run_explain(volume, load_model_package(phantom_model_path()), settings, list(range(n_bscans)), out, truths=truths,
                quiet=True)
    return out


def synthetic_result(out: Path, n_bscans: int = 128, seed: int = 0, grids=(7, 9, 11, 13, 15, 17, 19, 21)) -> Path:
    """A result folder of ``n_bscans`` phantom B-scans (256 x 384, the demo's) with made-up d for the demo's five
    classes on a 160 x 160 model input: each class's d is a few smooth blobs of evidence, for and against, seen
    through every grid's cells (a cell's d grows with the part of a blob it hides), plus noise. No model runs."""
    import SimpleITK as sitk

    from DiDALib.cli.demo import demo_volume
    from DiDALib.engine.result import DiDAResult
    from DiDALib.io.map_files import contrast_scale
    from DiDALib.io.output_dir import RUN_FILE, RUN_FORMAT
    from DiDALib.io.results import RESULTS_FILE, write_results
    from DiDALib.maps.contrast import default_pairs
    from DiDALib.phantom import CLASSES
    from DiDALib.pipeline import VolumeExplanation

    rng = np.random.default_rng(seed)
    volume, _ = demo_volume(n_bscans, seed)
    k = len(CLASSES)
    ex = VolumeExplanation(CLASSES, {}, volume.bscans.shape[1:], None)
    for i in range(n_bscans):
        logits = rng.normal(0, 2, k)
        base = np.exp(logits - logits.max())
        base /= base.sum()
        blobs = [(rng.uniform(0.1, 0.9, (3, 2)), rng.uniform(-0.3, 0.3, 3), rng.uniform(0.05, 0.2, 3))
                 for _ in range(k)]
        deltas = {}
        for n in grids:
            c = (np.arange(n) + 0.5) / n
            y, x = np.meshgrid(c, c, indexing="ij")
            d = np.zeros((k, n, n), np.float32)
            for kk, (centres, amp, width) in enumerate(blobs):
                for (cy, cx), a, w in zip(centres, amp, width):
                    d[kk] += a * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * w * w)) * (7.0 / n) ** 2
            deltas[n] = (d + rng.normal(0, 0.002, d.shape)).astype(np.float32)
        ex.results[i] = DiDAResult(base.astype(np.float32), deltas, (160, 160), (0, 0, 160, 160), "probabilities", i,
                                   CLASSES)
    out.mkdir(parents=True)
    sitk.WriteImage(volume.to_sitk(), str(out / "volume.nrrd"), useCompression=True)
    pairs = default_pairs(ex.scores().max(axis=0))
    run = {"format": RUN_FORMAT, "input": "synthetic result (Testing/tests/view_pages.py)", "input_format": "phantom",
           "model_name": "none (made-up d)", "demo_model": False, "score": "probabilities", "grids": list(grids),
           "bscans": list(range(n_bscans)), "classes_shown": list(CLASSES), "saturation_scale": ex.scale(),
           "spacing_mm": list(volume.spacing), "contrast_scale": contrast_scale(ex, pairs),
           "contrasts": [{"classes": [CLASSES[a], CLASSES[b]]} for a, b in pairs]}
    write_results(out / RESULTS_FILE, ex, run)
    run["files"] = sorted(p.name for p in out.iterdir())
    (out / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    return out
