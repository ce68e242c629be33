"""Train the Kermany OCT demonstration classifier (CNV, DME, DRUSEN, NORMAL) and write it as a DiDA model package.

    python Resources/Models/kermany-oct/train.py /path/to/kermany2018       # about 25 CPU-minutes

The data folder holds the Kermany 2018 B-scans in one folder per class and ``manifest.csv`` (CC BY 4.0: Kermany,
Zhang, Goldbaum 2018, doi:10.17632/rscbjbr9sj). ``split.csv`` beside this script lists every image with its
patient and its part (train or validation): patients, not images, are split, and a patient whose images carry
several classes stays on one side. ``--make-split`` writes that list afresh from the manifest (seeded).

Every training input is made by ``DiDALib.models.preprocess_bscan`` from a B-scan read by ``DiDALib.io.load_oct``:
exactly the path DiDA uses at inference. Augmentation (``augment.py``) works on the B-scan before that (crops of
different widths and heights) and on the model input in the raw intensity domain after it. Training runs on the
CPU with a fixed seed, a fixed thread count and deterministic algorithms. The result is a research demonstration,
NOT for clinical use.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
for p in (ROOT, HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from augment import Augmenter, crop_bscan  # noqa: E402
from report import validation_report, write_model_card  # noqa: E402

from DiDALib.io.registry import load_oct  # noqa: E402
from DiDALib.models.package import save_model_package  # noqa: E402
from DiDALib.models.preprocess import preprocess_bscan  # noqa: E402
from DiDALib.models.spec import ModelSpec  # noqa: E402
from DiDALib.models.speed import images_per_second  # noqa: E402
from DiDALib.models.timm_models import build_timm  # noqa: E402

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
SPLIT = HERE / "split.csv"
VALIDATION_SHARE = 0.25
NAME = "Kermany OCT demo classifier (CNV, DME, drusen, normal)"
DESCRIPTION = (
    "Research demonstration trained on 600 real Spectralis B-scans of the Kermany 2018 OCT data set (CC BY 4.0; "
    "Kermany, Zhang, Goldbaum, doi:10.17632/rscbjbr9sj). NOT for clinical use: see MODEL_CARD.md for its accuracy, "
    "its limits and the patient-disjoint split."
)


def patient_of(file_name: str) -> str:
    """The patient of a Kermany file ``CLASS-PATIENT-N.jpeg``: the number alone, since one patient's images can
    carry different classes (their manifest ids differ by the class prefix)."""
    return file_name.split("-")[1]


def make_split(data: Path, seed: int) -> list[dict]:
    """Patients in a seeded order, each sent to validation while every class it has images of is still under
    ``VALIDATION_SHARE`` of that class's images there, else to training."""
    with open(data / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_patient: dict[str, list[dict]] = {}
    for r in rows:
        by_patient.setdefault(patient_of(Path(r["path"]).name), []).append(r)
    total = {c: sum(r["class"] == c for r in rows) for c in CLASSES}
    taken = dict.fromkeys(CLASSES, 0)
    patients = sorted(by_patient)
    np.random.default_rng(seed).shuffle(patients)
    out = []
    for p in patients:
        images = by_patient[p]
        counts = {c: sum(r["class"] == c for r in images) for c in CLASSES}
        fits = all(taken[c] + n <= VALIDATION_SHARE * total[c] for c, n in counts.items() if n)
        part = "validation" if fits else "train"
        if fits:
            for c, n in counts.items():
                taken[c] += n
        out += [{"path": r["path"], "class": r["class"], "patient": p, "part": part} for r in images]
    return sorted(out, key=lambda r: r["path"])


def read_split(path: Path = SPLIT) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_split(rows: list[dict], path: Path = SPLIT) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["path", "class", "patient", "part"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def load_bscans(data: Path, rows: list[dict]) -> list[np.ndarray]:
    """Each B-scan as DiDA reads it (``load_oct``: grey, display intensities in [0, 1]), kept as the 8-bit values
    it came from (k / 255 exactly: the files are 8-bit), a quarter of the memory."""
    out = []
    for r in rows:
        b = load_oct(data / r["path"]).bscans[0]
        u = np.round(b * 255).astype(np.uint8)
        if not np.array_equal(u.astype(np.float32) / np.float32(255), b):
            raise SystemExit(f"{r['path']}: not an 8-bit image as expected")
        out.append(u)
    return out


def as_unit(u: np.ndarray) -> np.ndarray:
    return u.astype(np.float32) / np.float32(255)


def inputs(bscans: list[np.ndarray], spec: ModelSpec) -> torch.Tensor:
    """Model inputs (N, C, H, W) of whole B-scans, as at inference."""
    return torch.stack([preprocess_bscan(as_unit(b), spec)[0] for b in bscans])


def predict(model: torch.nn.Module, x: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Logits (N, K) in eval mode."""
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the Kermany 2018 folder (class folders and manifest.csv)")
    parser.add_argument("--out", type=Path, default=HERE, help="package folder (default: this folder)")
    parser.add_argument("--make-split", action="store_true", help="write split.csv afresh from the manifest")
    parser.add_argument("--split-seed", type=int, default=23)
    parser.add_argument("--architecture", default="timm:resnet10t")
    parser.add_argument("--channels", default="16,32,64,128", help="widths of the four ResNet stages")
    parser.add_argument("--size", default="224,224", help="model input height,width")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--ema", type=float, default=0.98, help="keep an exponential moving average of the weights "
                        "with this decay per step, and ship it (0: the last weights)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (fixed: results depend on it)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed (init, shuffling, augmentation)")
    parser.add_argument("--no-write", action="store_true", help="train and report, but write no package")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    cpu0, t0 = time.process_time(), time.perf_counter()

    if args.make_split:
        write_split(make_split(args.data, args.split_seed))
    rows = read_split()
    train_rows = [r for r in rows if r["part"] == "train"]
    val_rows = [r for r in rows if r["part"] == "validation"]
    if {r["patient"] for r in train_rows} & {r["patient"] for r in val_rows}:
        raise SystemExit("split.csv: a patient is on both sides")
    train_raw, val_raw = load_bscans(args.data, train_rows), load_bscans(args.data, val_rows)
    y_train = torch.tensor([CLASSES.index(r["class"]) for r in train_rows])
    y_val = torch.tensor([CLASSES.index(r["class"]) for r in val_rows])

    size = tuple(int(v) for v in args.size.split(","))
    stages = [int(v) for v in args.channels.split(",")]
    arch_args = {"channels": stages, "stem_width": stages[0] // 2}
    plain = ModelSpec(architecture=args.architecture, classes=CLASSES, input_size=size, mean=(0.0,), std=(1.0,))
    resized = inputs(train_raw, plain)
    mean, std = round(float(resized.mean()), 3), round(float(resized.std()), 3)
    del resized
    spec = ModelSpec(architecture=args.architecture, architecture_args=arch_args, classes=CLASSES, input_size=size,
                     channels=1, mean=(mean,), std=(std,), resize="stretch", score="probabilities", name=NAME,
                     demo=True, description=DESCRIPTION)
    x_val = inputs(val_raw, spec)
    data_s = time.perf_counter() - t0
    print(f"{len(train_rows)} training and {len(val_rows)} validation B-scans of "
          f"{len({r['patient'] for r in rows})} patients; mean {mean} std {std}; {data_s:.0f} s", flush=True)

    model = build_timm(spec)
    ema = None
    if args.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
    params = sum(p.numel() for p in model.parameters())
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = len(train_rows) // args.batch  # the last partial batch is dropped (BatchNorm needs company)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, pct_start=0.15,
                                                   total_steps=args.epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    augmenter = Augmenter(spec, g)
    t1 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_rows), generator=g).tolist()
        total = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * args.batch : (s + 1) * args.batch]
            xb = torch.stack([preprocess_bscan(crop_bscan(as_unit(train_raw[i]), rng), spec)[0] for i in idx])
            xb = augmenter(xb)
            loss = F.cross_entropy(model(xb), y_train[idx], label_smoothing=0.1)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            if ema is not None:
                ema.update_parameters(model)
            total += loss.item() * len(idx)
        if (epoch + 1) % 5 == 0 or epoch + 1 == args.epochs:
            acc = float((predict(model, x_val).argmax(1) == y_val).float().mean())
            acc_ema = f", EMA {100 * float((predict(ema.module, x_val).argmax(1) == y_val).float().mean()):.1f} %" \
                if ema is not None else ""
            print(f"epoch {epoch + 1:3d}/{args.epochs}: loss {total / (steps_per_epoch * args.batch):.3f}, "
                  f"validation accuracy {100 * acc:.1f} %{acc_ema} ({time.perf_counter() - t1:.0f} s, "
                  f"{time.process_time() - cpu0:.0f} CPU-s)", flush=True)
    train_s = time.perf_counter() - t1
    if ema is not None:
        model = ema.module

    logits = predict(model, x_val)
    report = validation_report(logits, y_val, CLASSES, [r["path"] for r in val_rows])
    report.update({"train_s": round(train_s, 1), "data_s": round(data_s, 1), "params": params,
                   "cpu_s": round(time.process_time() - cpu0, 1), "wall_s": round(time.perf_counter() - t0, 1),
                   "n_train": len(train_rows), "n_val": len(val_rows), "threads": args.threads,
                   "args": {k: str(v) for k, v in vars(args).items() if k not in ("data", "out", "no_write")}})
    print(json.dumps({k: v for k, v in report.items() if k != "predictions"}, indent=1))
    report["ips"] = round(images_per_second(model, spec, rounds=10, seconds=0.3), 1)
    report["load"] = "load average {:.1f} / {:.1f} / {:.1f} over 1 / 5 / 15 minutes at the end".format(*os.getloadavg())
    print(f"speed: {report['ips']:.0f} images/s at batch 8, {args.threads} thread(s)")
    if not args.no_write:
        out = save_model_package(args.out, spec, model)
        report["weights_kb"] = round((out / spec.weights).stat().st_size / 1024, 1)
        (out / "validation.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        write_model_card(out / "MODEL_CARD.md", spec, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
