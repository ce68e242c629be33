"""Augmentation for OCT B-scans: crops before the model's preprocessing, geometry and intensity after it.

Crops of different widths and heights are cut from the B-scan itself, so each one still becomes the model input
through ``preprocess_bscan`` (a narrower field of view, stretched as DiDA stretches any B-scan). The rest works on
a batch of model inputs in the raw intensity domain ([0, 1], before the normalisation): a left-right flip (an OCT
B-scan of the other eye), small rotations, shifts and zooms (head tilt, fixation), gamma, gain and offset (device
and export settings), multiplicative speckle and additive noise, and now and then blocks of DiDA's cell sizes
filled as DiDA fills a cell, so that a masked cell is a familiar sight rather than an artefact.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from DiDALib.engine.masks import gaussian_blur
from DiDALib.models.spec import ModelSpec


def crop_bscan(bscan: np.ndarray, rng: np.random.Generator, min_width: float = 0.6,
               min_height: float = 0.8) -> np.ndarray:
    """A random crop keeping at least ``min_width`` of the A-scans and ``min_height`` of the depth."""
    h, w = bscan.shape
    cw = int(round(w * rng.uniform(min_width, 1.0)))
    ch = int(round(h * rng.uniform(min_height, 1.0)))
    left = int(rng.integers(0, w - cw + 1))
    top = int(rng.integers(0, h - ch + 1))
    return bscan[top : top + ch, left : left + cw]


class Augmenter:
    """Random changes of a batch of model inputs (B, C, H, W), all drawn from one torch generator."""

    def __init__(self, spec: ModelSpec, generator: torch.Generator, degrees: float = 8.0, shift: float = 0.06,
                 zoom: float = 0.1, speckle: float = 0.25, noise: float = 0.03, blocks: int = 3):
        self.mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
        self.std = torch.tensor(spec.std).view(1, -1, 1, 1)
        self.g = generator
        self.degrees, self.shift, self.zoom = degrees, shift, zoom
        self.speckle, self.noise, self.blocks = speckle, noise, blocks

    def _u(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=self.g)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raw = x * self.std + self.mean
        b = raw.shape[0]
        flip = torch.rand(b, generator=self.g) < 0.5
        raw = torch.where(flip.view(-1, 1, 1, 1), raw.flip(-1), raw)
        raw = self._geometry(raw)
        gamma = torch.exp(self._u(b, math.log(0.7), math.log(1.4))).view(-1, 1, 1, 1)
        gain, offset = self._u(b, 0.85, 1.15).view(-1, 1, 1, 1), self._u(b, -0.04, 0.04).view(-1, 1, 1, 1)
        raw = raw.clamp(0.0, 1.0) ** gamma * gain + offset
        speckle = self._u(b, 0.0, self.speckle).view(-1, 1, 1, 1)
        raw = raw * (1.0 + speckle * torch.randn(raw.shape, generator=self.g))
        raw = raw + self._u(b, 0.0, self.noise).view(-1, 1, 1, 1) * torch.randn(raw.shape, generator=self.g)
        raw = self._blocks(raw.clamp(0.0, 1.0))
        return (raw - self.mean) / self.std

    def _geometry(self, raw: torch.Tensor) -> torch.Tensor:
        """Rotation, shift and zoom about the centre; what comes in from outside is black (raw 0)."""
        b = raw.shape[0]
        angle = self._u(b, -self.degrees, self.degrees) * math.pi / 180
        scale = self._u(b, 1 - self.zoom, 1 + self.zoom)
        tx, ty = self._u(b, -self.shift, self.shift) * 2, self._u(b, -self.shift, self.shift) * 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(raw.shape), align_corners=False)
        return F.grid_sample(raw, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _blocks(self, raw: torch.Tensor) -> torch.Tensor:
        """In half the images, up to ``blocks`` rectangles of 1/21 to 1/5 of a side, black or blurred."""
        b, _, h, w = raw.shape
        out = raw.clone()
        for i in range(b):
            if float(torch.rand(1, generator=self.g)) < 0.5:
                continue
            blurred = None
            for _ in range(int(torch.randint(1, self.blocks + 1, (1,), generator=self.g))):
                bh = int(torch.randint(h // 21, h // 5 + 1, (1,), generator=self.g))
                bw = int(torch.randint(w // 21, w // 5 + 1, (1,), generator=self.g))
                top = int(torch.randint(0, h - bh + 1, (1,), generator=self.g))
                left = int(torch.randint(0, w - bw + 1, (1,), generator=self.g))
                if float(torch.rand(1, generator=self.g)) < 0.5:
                    out[i, :, top : top + bh, left : left + bw] = 0.0
                else:
                    if blurred is None:
                        blurred = gaussian_blur(raw[i], sigma=max(1.0, min(h, w) / 20.0))
                    out[i, :, top : top + bh, left : left + bw] = blurred[:, top : top + bh, left : left + bw]
        return out
