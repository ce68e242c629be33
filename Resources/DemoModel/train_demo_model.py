"""Train the bundled demo classifier on synthetic OCT phantoms and write it as a DiDA model package.

    python Resources/DemoModel/train_demo_model.py            # about 5 minutes on 2 CPU cores

Everything is reproducible: phantoms come from fixed seeds, the network starts from a seeded random init
(``pretrained=False``: nothing is downloaded), training runs on the CPU with deterministic algorithms and a fixed
thread count. Inputs are made by ``DiDALib.models.preprocess_bscan``, the function DiDA uses at inference, so the
model sees B-scans exactly as it will when explained. The result is a demonstration model, NOT for clinical use.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from DiDALib.engine.grid import DEFAULT_GRIDS, passes_per_image  # noqa: E402
from DiDALib.models.package import save_model_package  # noqa: E402
from DiDALib.models.preprocess import preprocess_bscan  # noqa: E402
from DiDALib.models.spec import ModelSpec  # noqa: E402
from DiDALib.models.speed import images_per_second  # noqa: E402
from DiDALib.models.timm_models import build_timm  # noqa: E402
from DiDALib.phantom import CLASS_TITLES, CLASSES, make_dataset  # noqa: E402

OUT = Path(__file__).resolve().parent
ARCHITECTURE = "timm:test_resnet"  # timm's tiny ResNet: fast on a CPU, learns the phantoms in a few epochs
# Global max pooling makes each score follow the strongest local finding, so masking healthy tissue barely moves
# it; with average pooling every cell nudges every score and DiDA's maps gain a diffuse floor.
ARCHITECTURE_ARGS = {"global_pool": "max"}
INPUT_SIZE = (160, 160)  # grid 21 still gives cells of 7-8 px
TRAIN_SEED = 1  # phantoms for training
EVAL_SEED = 2  # held-out phantoms; the faithfulness tests use yet another seed
CHUNK = 20  # phantoms per class per generation job (fixed, so the data do not depend on the worker count)
DESCRIPTION = (
    "Demonstration model trained on synthetic OCT phantoms (DiDALib.phantom), not on patient data. "
    "NOT for clinical use: it exists to show DiDA's explanations on a classifier whose lesions are known."
)


def _chunk(args: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_per_class, seed = args
    return make_dataset(n_per_class, seed)


def phantoms(n_per_class: int, seed: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw phantom B-scans and labels; chunk seeds are spawned from ``seed`` so any worker count gives the same set."""
    sizes = [CHUNK] * (n_per_class // CHUNK) + ([n_per_class % CHUNK] if n_per_class % CHUNK else [])
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(len(sizes))]
    jobs = list(zip(sizes, seeds))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_chunk, jobs))
    else:
        parts = [_chunk(j) for j in jobs]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def preprocess_all(images: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """Model inputs (N, C, H, W) made exactly as at inference."""
    return torch.stack([preprocess_bscan(b, spec)[0] for b in images])


def augment(x: torch.Tensor, spec: ModelSpec, g: torch.Generator, max_rects: int = 4) -> torch.Tensor:
    """Light augmentation in the raw intensity domain: left-right flip, gain and offset, a small vertical shift,
    and black rectangles the size of DiDA's cells (so a masked cell is a familiar sight, not an artefact)."""
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    raw = x * std + mean
    b, _, h, w = raw.shape
    flip = torch.rand(b, generator=g) < 0.5
    raw[flip] = raw[flip].flip(-1)
    gain = 0.85 + 0.3 * torch.rand(b, 1, 1, 1, generator=g)
    offset = -0.05 + 0.1 * torch.rand(b, 1, 1, 1, generator=g)
    raw = (raw * gain + offset).clamp(0.0, 1.0)
    shifts = torch.randint(-8, 9, (b,), generator=g).tolist()
    for i, s in enumerate(shifts):
        if s > 0:
            raw[i, :, s:] = raw[i, :, :-s].clone()
            raw[i, :, :s] = 0.0
        elif s < 0:
            raw[i, :, :s] = raw[i, :, -s:].clone()
            raw[i, :, s:] = 0.0
    for i in range(b):
        for _ in range(int(torch.randint(0, max_rects + 1, (1,), generator=g))):
            ch = int(torch.randint(h // 21, h // 7 + 1, (1,), generator=g))
            cw = int(torch.randint(w // 21, w // 7 + 1, (1,), generator=g))
            top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
            raw[i, :, top : top + ch, left : left + cw] = 0.0
    return (raw - mean) / std


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 64) -> tuple[float, np.ndarray]:
    """Accuracy and confusion matrix (rows: true class, columns: predicted)."""
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
    k = len(CLASSES)
    cm = np.bincount(y.numpy() * k + pred.numpy(), minlength=k * k).reshape(k, k)
    return float((pred == y).float().mean()), cm


def format_confusion(cm: np.ndarray) -> str:
    short = [c[:10] for c in CLASSES]
    lines = ["| true \\ predicted | " + " | ".join(short) + " |", "|---" * (len(CLASSES) + 1) + "|"]
    for name, row in zip(CLASSES, cm):
        lines.append(f"| {name} | " + " | ".join(str(int(v)) for v in row) + " |")
    return "\n".join(lines)


def write_model_card(path: Path, spec: ModelSpec, facts: dict) -> None:
    titles = "\n".join(f"  - `{c}`: {CLASS_TITLES[c]}" for c in CLASSES)
    passes = passes_per_image(DEFAULT_GRIDS)
    path.write_text(f"""# DiDA demo OCT classifier: model card

**Demonstration model. NOT for clinical use.** It was trained only on synthetic OCT phantoms and has never seen a
patient's image; its outputs on real B-scans mean nothing. It exists so that DiDA can be tried, and tested, on a
classifier whose lesions are known pixel by pixel.

## What it is
- Architecture: `{spec.architecture}` with `{spec.architecture_args}` (timm's tiny test ResNet, random init, no
  pretrained weights; needs a timm that defines it, tested with timm {facts['timm']}), {facts['params']:,} parameters, weights `{spec.weights}`
  ({facts['weights_kb']:.0f} kB). Global max pooling makes each score follow the strongest local finding.
- Input: one grey channel, {spec.input_size[0]} x {spec.input_size[1]}, the B-scan stretched onto it
  (`resize: {spec.resize}`), normalised with mean {spec.mean[0]} and std {spec.std[0]} on intensities in [0, 1]
  (`DiDALib.models.preprocess_bscan`). Scores: softmax probabilities.
- Classes:
{titles}
- Speed: {facts['ips']:.0f} images/s at batch 8 on {facts['threads']} CPU threads (channels-last, float32, the model
  alone), i.e. about {passes / facts['ips']:.1f} s of model time for full 8-grid DiDA ({passes:,} forward passes) of one
  B-scan; masking and bookkeeping add to that.

## Data
`DiDALib.phantom`: B-scans of {facts['depth']} x {facts['width']} pixels with retinal layers, speckle, curvature, tilt
and a foveal pit, and per-class findings (drusen; PED with sub-retinal fluid; intra-retinal cysts with thickening;
RPE loss with choroidal hyper-transmission) at random positions, sizes and counts.
- Training: {facts['n_train']} phantoms ({facts['n_train'] // len(CLASSES)} per class), seeds spawned from
  {TRAIN_SEED}.
- Held-out evaluation: {facts['n_eval']} phantoms ({facts['n_eval'] // len(CLASSES)} per class), seeds spawned from
  {EVAL_SEED}.
- Augmentation: left-right flip, gain and offset, vertical shift of up to 8 px, and 0-4 black rectangles of
  DiDA cell size (1/21 to 1/7 of a side) per image, so that DiDA's black cells are not out-of-distribution (without
  them, a black cell on healthy retina reads as a small cyst or RPE gap and every cell gains faint evidence).

## Training
`{facts['command']}` (CPU, {facts['threads']} threads, deterministic algorithms, seeds fixed):
{facts['epochs']} epochs of AdamW (lr {facts['lr']}, weight decay 0.05, one-cycle schedule, label smoothing 0.05),
batch {facts['batch']}; {facts['train_s']:.0f} s of training after {facts['data_s']:.0f} s of phantom generation.
Results can differ in the last digits on other CPUs or thread counts.

## Held-out results
Accuracy **{100 * facts['accuracy']:.1f} %** on {facts['n_eval']} held-out phantoms. Confusion matrix (rows: true,
columns: predicted):

{format_confusion(facts['confusion'])}

## Explanations
`Testing/tests/test_faithfulness.py` runs full 8-grid DiDA of this model on held-out phantoms (another seed) and
checks that the true class's red evidence lies mostly on the phantom's lesion mask and that the lesion is blue
for `normal`; `pytest -s` prints the measured fractions. With global max pooling, the model's score follows the
strongest finding, so when several drusen are alike DiDA shows evidence on few of them: no single cell removes it.

## Limits
Synthetic phantoms are far simpler than real OCT: the classes are cleanly separated and each B-scan shows one
finding. Good accuracy here says nothing about real eyes. Use the model for demonstrations and tests of DiDA only.
""", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="package folder (default: this folder)")
    parser.add_argument("--train-per-class", type=int, default=400)
    parser.add_argument("--eval-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="torch seed (init, shuffling, augmentation)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    device = torch.device("cpu")

    t0 = time.perf_counter()
    train_raw, train_y = phantoms(args.train_per_class, TRAIN_SEED, args.threads)
    eval_raw, eval_y = phantoms(args.eval_per_class, EVAL_SEED, args.threads)
    depth, width = train_raw.shape[1:]
    # Normalisation from the training set's resized intensities, rounded so model.json stays readable.
    plain = ModelSpec(architecture=ARCHITECTURE, classes=CLASSES, input_size=INPUT_SIZE, mean=(0.0,), std=(1.0,),
                      architecture_args=ARCHITECTURE_ARGS)
    resized = preprocess_all(train_raw[:200], plain)
    mean, std = round(float(resized.mean()), 3), round(float(resized.std()), 3)
    spec = ModelSpec(
        architecture=ARCHITECTURE, architecture_args=ARCHITECTURE_ARGS, classes=CLASSES, input_size=INPUT_SIZE,
        channels=1, mean=(mean,), std=(std,),
        resize="stretch", score="probabilities", name="DiDA demo OCT classifier (synthetic phantoms)", demo=True,
        description=DESCRIPTION,
    )
    x_train = preprocess_all(train_raw, spec)
    x_eval = preprocess_all(eval_raw, spec)
    y_train = torch.from_numpy(train_y)
    y_eval = torch.from_numpy(eval_y)
    del train_raw, eval_raw
    data_s = time.perf_counter() - t0
    print(f"phantoms: {len(x_train)} train, {len(x_eval)} held-out, {depth}x{width} -> {INPUT_SIZE}; "
          f"mean {mean} std {std}; {data_s:.0f} s", flush=True)

    model = build_timm(spec).to(device).to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    steps_per_epoch = (len(x_train) + args.batch - 1) // args.batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch,
                                                   pct_start=0.2)
    g = torch.Generator().manual_seed(args.seed)
    t1 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=g)
        total = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * args.batch : (s + 1) * args.batch]
            xb = augment(x_train[idx].clone(), spec, g).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(xb), y_train[idx], label_smoothing=0.05)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(idx)
        acc, _ = evaluate(model, x_eval, y_eval)
        print(f"epoch {epoch + 1:2d}/{args.epochs}: loss {total / len(x_train):.3f}, held-out accuracy {100 * acc:.1f} % "
              f"({time.perf_counter() - t1:.0f} s)", flush=True)
    train_s = time.perf_counter() - t1

    model = model.to(memory_format=torch.contiguous_format)
    accuracy, cm = evaluate(model, x_eval, y_eval)
    out = save_model_package(args.out, spec, model)
    ips = images_per_second(model, spec)
    weights_kb = (out / spec.weights).stat().st_size / 1024
    print(f"\nheld-out accuracy: {100 * accuracy:.1f} % ({int(np.trace(cm))}/{int(cm.sum())})")
    print("confusion matrix (rows true, columns predicted):", ", ".join(CLASSES))
    print(cm)
    print(f"inference: {ips:.0f} images/s at batch 8, {args.threads} threads, channels-last")
    print(f"weights: {out / spec.weights} ({weights_kb:.0f} kB); training {train_s:.0f} s")
    write_model_card(out / "MODEL_CARD.md", spec, {
        "params": params, "weights_kb": weights_kb, "ips": ips, "threads": args.threads, "depth": depth,
        "width": width, "n_train": len(x_train), "n_eval": len(x_eval), "epochs": args.epochs, "lr": args.lr,
        "batch": args.batch, "train_s": train_s, "data_s": data_s, "accuracy": accuracy, "confusion": cm,
        "command": "python Resources/DemoModel/train_demo_model.py", "timm": timm.__version__,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
