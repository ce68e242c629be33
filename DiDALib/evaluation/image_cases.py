"""Labelled B-scan image files as a model sees them: the cases a faithfulness measurement on real data explains
(no lesion masks: deletion and insertion need none)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..io.registry import load_oct
from ..models.package import ModelPackage
from ..models.preprocess import preprocess_bscan


@dataclass
class ImageCase:
    """One labelled B-scan file: its class, the model input and the region the B-scan covers there."""

    label: str
    class_index: int
    path: Path
    image: torch.Tensor  # (C, H, W) model input
    region: tuple[int, int, int, int]


def image_cases(package: ModelPackage, files: Sequence[tuple[str | Path, str]], per_class: int,
                correct_only: bool = True) -> list[ImageCase]:
    """Up to ``per_class`` cases of each class from ``files`` (path, class name; the class must be one of the
    model's), taken in the order given and interleaved by class; with ``correct_only`` only B-scans the model
    ranks first as labelled (a faithfulness measure explains the model's own decision). Each file is read as
    ``dida explain`` reads it (``load_oct``; its first B-scan). Raises ``ValueError`` when a class falls short."""
    spec = package.spec
    found: dict[str, list[ImageCase]] = {}
    for path, label in files:
        if label not in spec.classes:
            raise ValueError(f"{path}: class {label!r} is not one of the model's classes {list(spec.classes)}")
        chosen = found.setdefault(label, [])
        if len(chosen) == per_class:
            continue
        x, region = preprocess_bscan(load_oct(path).bscans[0], spec)
        if correct_only:
            with torch.inference_mode():
                if int(package.model(x[None]).argmax()) != spec.classes.index(label):
                    continue
        chosen.append(ImageCase(label, spec.classes.index(label), Path(path), x, region))
    short = {label: len(c) for label, c in found.items() if len(c) < per_class}
    if short:
        raise ValueError(f"too few B-scans for {per_class} per class: {short}")
    labels = [c for c in spec.classes if c in found]
    return [found[label][i] for i in range(per_class) for label in labels]
