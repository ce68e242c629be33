"""What the training run reports: validation accuracy, recall, confusion, calibration, speed; and the model card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import timm
import torch

from DiDALib.engine.grid import passes_per_image
from DiDALib.engine.schedule import PAPER_GRIDS
from DiDALib.engine.scores import AUTO_SATURATION, choose_auto
from DiDALib.models.spec import ModelSpec

COMMAND = "python Resources/Models/kermany-oct/train.py /path/to/kermany2018"


def calibration(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> dict:
    """Expected calibration error over ``bins`` equal-width confidence bins, and how confident the model is."""
    top = probs.max(1)
    right = probs.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (top > lo) & (top <= hi)
        if inside.any():
            ece += inside.mean() * abs(right[inside].mean() - top[inside].mean())
    return {"ece": round(float(ece), 4), "mean_top_probability": round(float(top.mean()), 4),
            "median_top_probability": round(float(np.median(top)), 4), "max_top_probability": round(float(top.max()), 6),
            f"share_top_at_least_{AUTO_SATURATION}": round(float((top >= AUTO_SATURATION).mean()), 4),
            "mean_top_probability_when_wrong": round(float(top[~right].mean()), 4) if (~right).any() else None}


def validation_report(logits: torch.Tensor, y: torch.Tensor, classes: tuple[str, ...], paths: list[str]) -> dict:
    """Accuracy, per-class recall, the confusion matrix (rows true, columns predicted), calibration, and what
    ``--score auto`` chooses on one B-scan (its share of the validation set) and on all of them at once."""
    probs = torch.softmax(logits.float(), 1).numpy()
    yy, pred = y.numpy(), probs.argmax(1)
    k = len(classes)
    cm = np.bincount(yy * k + pred, minlength=k * k).reshape(k, k)
    per_image = [choose_auto(logits[i : i + 1])[0] for i in range(len(logits))]
    return {
        "accuracy": round(float((pred == yy).mean()), 4),
        "recall": {c: round(float(cm[i, i] / cm[i].sum()), 4) for i, c in enumerate(classes)},
        "precision": {c: round(float(cm[i, i] / max(1, cm[:, i].sum())), 4) for i, c in enumerate(classes)},
        "confusion": cm.tolist(),
        "calibration": calibration(probs, yy),
        "auto_per_image": {m: per_image.count(m) for m in sorted(set(per_image))},
        "auto_all": choose_auto(logits)[1],
        "predictions": [{"path": p, "true": classes[t], "predicted": classes[q],
                         "probabilities": [round(float(v), 4) for v in pr]}
                        for p, t, q, pr in zip(paths, yy, pred, probs)],
    }


def confusion_table(cm: list[list[int]], classes: tuple[str, ...]) -> str:
    lines = ["| true \\ predicted | " + " | ".join(classes) + " | recall |", "|---" * (len(classes) + 2) + "|"]
    for name, row in zip(classes, cm):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + f" | {row[classes.index(name)] / sum(row):.2f} |")
    return "\n".join(lines)


def write_model_card(path: Path, spec: ModelSpec, r: dict) -> None:
    """MODEL_CARD.md from the run's figures."""
    cal = r["calibration"]
    passes = passes_per_image(PAPER_GRIDS)
    sat = cal[f"share_top_at_least_{AUTO_SATURATION}"]
    args = r["args"]
    path.write_text(f"""# Kermany OCT demo classifier: model card

**Research demonstration. NOT for clinical use.** A small network trained in {r['cpu_s'] / 60:.0f} CPU-minutes from
{r['n_train']} B-scans; it exists so that DiDA can be shown on real OCT with a classifier that means something
there. It has not been validated for any clinical purpose and must not inform a diagnosis.

## What it is
- Classes: `CNV` (choroidal neovascularisation, wet AMD), `DME` (diabetic macular oedema), `DRUSEN` (early AMD),
  `NORMAL`.
- Architecture: `{spec.architecture}` with `{spec.architecture_args}` (timm's ResNet-10-T layout, narrowed;
  random initialisation, nothing downloaded; tested with timm {timm.__version__}), {r['params']:,} parameters,
  weights `{spec.weights}` ({r['weights_kb']:.0f} kB, safetensors). Global average pooling.
- Input: one grey channel, {spec.input_size[0]} x {spec.input_size[1]}, the B-scan stretched onto it (`resize:
  {spec.resize}`), normalised with mean {spec.mean[0]} and std {spec.std[0]} on display intensities in [0, 1]
  (`DiDALib.models.preprocess_bscan`, the path DiDA uses at inference, through which it was trained).
  Default score: `{spec.score}`.
- Speed: {r['ips']:.0f} images/s at batch 8 on one CPU thread (channels-last, float32, the model alone, best of
  10 short runs on a shared machine), i.e. about {passes / r['ips']:.0f} s of model time for DiDA's paper grids
  ({passes:,} forward passes) of one B-scan.

## Data, licence and credit
Trained on the Kermany 2018 OCT images: Kermany D, Zhang K, Goldbaum M (2018), "Labeled Optical Coherence
Tomography (OCT) and Chest X-Ray Images for Classification", Mendeley Data, doi:10.17632/rscbjbr9sj, described in
Kermany et al., Cell 172(5):1122-1131 (2018); licence **CC BY 4.0**. The weights are derived from those images
and carry the same credit. Used: 799 Spectralis B-scans of that data set's test part (CNV 200, DME 199,
DRUSEN 200, NORMAL 200).

**Split by patient** (`split.csv`: every file, its patient and its part): patients are shuffled (seed
{args['split_seed']}) and each goes to validation while its classes have room there (a quarter of each class), so
no patient has images on both sides; a patient number that appears under several classes is one patient.
{r['n_train']} B-scans train, {r['n_val']} validate.

## Training
`{COMMAND}` ({args['epochs']} epochs of AdamW, lr {args['lr']}, weight decay {args['weight_decay']}, one-cycle
schedule, label smoothing 0.1, batch {args['batch']}; the shipped weights are the exponential moving average of
the weights, decay {args['ema']} a step; {args['threads']} torch thread, seed {args['seed']}, deterministic
algorithms). Augmentation (`augment.py`): crops of 60-100 % of the width and 80-100 % of the depth
before the preprocessing, then left-right flips, rotations up to 8 degrees, shifts up to 6 %, zoom 0.9-1.1, gamma
0.7-1.4, gain and offset, multiplicative speckle and additive noise, and in half the images 1-3 blocks of DiDA's
cell sizes, black or blurred. The run took {r['wall_s']:.0f} s wall and {r['cpu_s']:.0f} CPU-s
({r['train_s']:.0f} s of training after {r['data_s']:.0f} s of reading) on a 2-core machine shared with other work
({r['load']}): the CPU time is the figure to compare. Other CPUs, thread counts or library versions can change the
last digits.

## Validation ({r['n_val']} B-scans of patients never trained on)
Accuracy **{100 * r['accuracy']:.1f} %**. Confusion matrix (rows: true, columns: predicted):

{confusion_table(r['confusion'], spec.classes)}

Calibration: expected calibration error {cal['ece']:.3f} (10 bins); mean top probability {cal['mean_top_probability']:.3f}
({cal['mean_top_probability_when_wrong']} when wrong); {100 * sat:.0f} % of the B-scans have a top probability
>= {AUTO_SATURATION} (highest {cal['max_top_probability']:.4f}). `--score auto` chooses
{', '.join(f'{m} on {n}' for m, n in r['auto_per_image'].items())} of the {r['n_val']} B-scans explained one
at a time. The label smoothing keeps the probabilities off 0 and 1: the model is under-confident (mean top
probability {cal['mean_top_probability']:.2f} against {100 * r['accuracy']:.1f} % accuracy) and rarely saturates, so
its probability maps keep their contrast; `auto` on all {r['n_val']} at once would choose log-odds (its rule looks at
the highest top probability of the run).

For scale: a published residual CNN trained on Kermany's 84,000 training images scored 91 % on other images of
this test split through DiDA's preprocessing (recall CNV 0.98, DME 0.98, DRUSEN 0.68, NORMAL 1.00).
`validation.json` holds every figure above and each validation B-scan's probabilities.

## Limits
- {r['n_train']} training images from one device (Heidelberg Spectralis) and one data set: expect it to fail on
  other devices, other scan protocols, other diseases (it knows four classes and calls everything one of them)
  and images unlike Kermany's exports.
- The validation set is small ({r['n_val']} B-scans): one B-scan is {100 / r['n_val']:.1f} points of accuracy.
- Kermany's labels are per image; no lesion masks exist, so DiDA's maps of this model are judged by deletion and
  insertion (README, "Faithfulness"), not against drawn lesions.
""", encoding="utf-8")
