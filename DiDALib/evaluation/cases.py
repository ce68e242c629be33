"""Phantom B-scans with known lesions as a model sees them: the cases a faithfulness measurement explains."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..models.package import ModelPackage
from ..models.preprocess import preprocess_bscan
from ..phantom import CLASSES, make_bscan

LESIONS: tuple[str, ...] = CLASSES[1:]


@dataclass
class Case:
    """One phantom: its class, the B-scan and lesion mask, and both on the model input's pixels."""

    label: str
    class_index: int
    bscan: np.ndarray  # (depth, width) in [0, 1]
    mask: np.ndarray  # (depth, width) bool
    image: torch.Tensor  # (C, H, W) model input
    region: tuple[int, int, int, int]
    input_mask: np.ndarray  # (region height, region width) bool: the lesion on the explained region


def input_mask(mask: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    """A B-scan's lesion mask on the model input's region: resized as the B-scan is (bilinear, antialiased), a
    pixel on the lesion where at least half of it is."""
    _, _, h, w = region
    t = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]
    return (F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0, 0] >= 0.5).numpy()


def phantom_cases(package: ModelPackage, seed: int, per_class: int, labels: Sequence[str] = LESIONS,
                  depth: int = 256, width: int = 384, correct_only: bool = True, max_draws: int = 10) -> list[Case]:
    """``per_class`` phantoms of each label from one seed, interleaved by class; with ``correct_only`` only those
    the model classifies right (a faithfulness measure explains the model's own decision), drawing at most
    ``max_draws`` per wanted phantom. Raises ``RuntimeError`` when the model gets too few right."""
    spec = package.spec
    rng = np.random.default_rng(seed)
    found: dict[str, list[Case]] = {label: [] for label in labels}
    for label in labels:
        for _ in range(per_class * max_draws):
            if len(found[label]) == per_class:
                break
            bscan, mask = make_bscan(label, rng, depth, width)
            x, region = preprocess_bscan(bscan, spec)
            if correct_only:
                with torch.inference_mode():
                    predicted = int(package.model(x[None]).argmax())
                if spec.classes[predicted] != label:
                    continue
            found[label].append(Case(label, spec.classes.index(label), bscan, mask, x, region,
                                     input_mask(mask, region)))
        if len(found[label]) < per_class:
            raise RuntimeError(f"the model classified only {len(found[label])} of {per_class * max_draws} {label} "
                               f"phantoms of seed {seed} right")
    return [found[label][i] for i in range(per_class) for label in labels]
