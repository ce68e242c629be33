"""The maps DiDA is measured against: Grad-CAM (pytorch-grad-cam), RISE, single-scale sliding occlusion (captum),
Shapley value sampling over a grid's cells (captum), and three sanity maps (random, centre, oracle) that check the
metrics themselves.

Every perturbation baseline fills what it hides with the same fill image as DiDA, and reports the model passes it
used, so that explainers are compared at a known cost. Perturbation maps come back as (K, H, W) float32 arrays, one
per class from the same passes (Shapley values: one class's (H, W) map), on the model input's pixels. captum and
pytorch-grad-cam are test dependencies, imported only here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def occlusion_passes(height: int, width: int, window: int, stride: int) -> int:
    """Model passes of captum's ``Occlusion`` for a square window: the window positions plus the original."""
    per = [math.ceil((d - window) / stride) + 1 for d in (height, width)]
    return per[0] * per[1] + 1


def occlusion_map(score: ScoreFn, image: torch.Tensor, fill: torch.Tensor, window: int, stride: int,
                  batch_size: int = 64) -> tuple[np.ndarray, int]:
    """captum's ``Occlusion``: a ``window`` square slid at ``stride``, each pixel the mean score drop of the windows
    covering it, every class from one pass (``target=None``). Returns the (K, H, W) maps and the passes used."""
    from captum.attr import Occlusion

    c, h, w = image.shape
    x = image[None]
    baseline = fill.expand_as(image)[None].contiguous()
    with torch.no_grad():
        attr = Occlusion(score).attribute(x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
                                          baselines=baseline, target=None, perturbations_per_eval=batch_size)
    k = score(x).shape[1]
    maps = attr.reshape(k, c, h, w).sum(dim=1)  # channels share one window, so each carries the same value
    return maps.float().cpu().numpy() / c, occlusion_passes(h, w, window, stride)


def rise_masks(n: int, cells: int, height: int, width: int, p: float, rng: np.random.Generator) -> torch.Tensor:
    """RISE's masks (Petsiuk et al. 2018): random ``cells`` x ``cells`` binary grids kept with probability ``p``,
    bilinearly upsampled to one cell more than the image and cropped at a random shift. (n, H, W) float32."""
    ch, cw = math.ceil(height / cells), math.ceil(width / cells)
    grid = torch.from_numpy((rng.random((n, 1, cells, cells)) < p).astype(np.float32))
    up = F.interpolate(grid, size=((cells + 1) * ch, (cells + 1) * cw), mode="bilinear", align_corners=False)
    dy, dx = rng.integers(0, ch, n), rng.integers(0, cw, n)
    return torch.stack([up[i, 0, dy[i] : dy[i] + height, dx[i] : dx[i] + width] for i in range(n)])


def rise_map(score: ScoreFn, image: torch.Tensor, fill: torch.Tensor, n_masks: int = 2000, cells: int = 7,
             p: float = 0.5, seed: int = 0, batch_size: int = 64) -> tuple[np.ndarray, int]:
    """RISE saliency of every class: the mean score over random masks, each weighted by how much of a pixel it
    kept, ``sum_i P_k(x * m_i + fill * (1 - m_i)) m_i / (N p)``. Returns the (K, H, W) maps and the passes used."""
    _, h, w = image.shape
    rng = np.random.default_rng(seed)
    fill = fill.expand_as(image)
    total = None
    for start in range(0, n_masks, batch_size):  # masks made batch by batch: all 2,000 at once would be 200 MB
        m = rise_masks(min(batch_size, n_masks - start), cells, h, w, p, rng).to(image.device)[:, None]
        probs = score(image[None] * m + fill[None] * (1 - m)).float()  # (B, K)
        part = torch.einsum("bk,bhw->khw", probs, m[:, 0])
        total = part if total is None else total + part
    return (total / (n_masks * p)).cpu().numpy(), n_masks


def gradcam_map(model: torch.nn.Module, image: torch.Tensor, class_index: int, layer: torch.nn.Module
                ) -> tuple[np.ndarray, int]:
    """Grad-CAM (pytorch-grad-cam) of one class at ``layer``: non-negative, scaled to [0, 1] by the library, at the
    input's size. Returns the (H, W) map and the passes used (one forward and backward pass)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=model, target_layers=[layer]) as cam:
        x = image[None].clone().requires_grad_(True)
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(class_index))])[0].astype(np.float32), 1


def shapley_cells_map(score: ScoreFn, image: torch.Tensor, fill: torch.Tensor, cells: np.ndarray, class_index: int,
                      n_samples: int, seed: int = 0, batch_size: int = 64) -> tuple[np.ndarray, int]:
    """captum's ``ShapleyValueSampling`` of one class over given cells (``cells``: the (H, W) cell number of every
    pixel, e.g. DiDA's 7 x 7 grid): each cell's sampled Shapley value, signed, painted on its pixels; a hidden cell
    shows ``fill``. ``n_samples`` permutations cost ``n_samples * cells + 1`` passes. Returns the (H, W) map and
    the passes used. The permutations come from a torch generator seeded with ``seed``, the caller's left as it was."""
    from captum.attr import ShapleyValueSampling

    c, h, w = image.shape
    mask = torch.from_numpy(np.asarray(cells, dtype=np.int64)).to(image.device)[None, None].expand(1, c, h, w)
    x = image[None]
    baseline = fill.expand_as(image)[None].contiguous()
    n_cells = int(np.unique(cells).size)
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # captum draws its permutations from torch's generator
        torch.manual_seed(seed)
        attr = ShapleyValueSampling(score).attribute(x, baselines=baseline, target=int(class_index), feature_mask=mask,
                                                     n_samples=n_samples, perturbations_per_eval=batch_size)
    return attr[0].sum(dim=0).float().cpu().numpy() / c, n_samples * n_cells + 1


def random_map(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Sanity map: independent uniform noise (knows nothing)."""
    return rng.random(shape).astype(np.float32)


def centre_map(shape: tuple[int, int]) -> np.ndarray:
    """Sanity map: a Gaussian centred on the image (knows only that findings sit near the fovea, mid-B-scan)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-0.5 * (((yy - (h - 1) / 2) / (h / 4)) ** 2 + ((xx - (w - 1) / 2) / (w / 4)) ** 2)).astype(np.float32)


def oracle_map(mask: np.ndarray) -> np.ndarray:
    """Sanity map: the lesion itself (1 on it, 0 elsewhere): what a perfect localiser would show."""
    return np.asarray(mask, dtype=np.float32)



def shapley_cells_map(score: ScoreFn, image: torch.Tensor, fill: torch.Tensor, cells: np.ndarray, class_index: int,
                      n_samples: int, seed: int = 0, batch_size: int = 64) -> tuple[np.ndarray, int]:
    """captum's ``ShapleyValueSampling`` of one class (captum's scorer returns one number per image, so a class per
    call) over ``cells``, the (H, W) cell number of every pixel (e.g. DiDA's 7 x 7 grid, ``cell_index_map``): each
    cell's sampled Shapley value painted on its pixels, a hidden cell showing ``fill``. ``n_samples`` permutations
    cost ``n_samples * cells + 1`` passes; they are drawn from torch's generator seeded with ``seed`` (the caller's
    generator is left as it was). Returns the (H, W) map and the passes used."""
    from captum.attr import ShapleyValueSampling

    c, h, w = image.shape
    cells_t = torch.from_numpy(np.asarray(cells, dtype=np.int64)).to(image.device)
    feature_mask = cells_t[None, None].expand(1, c, h, w).contiguous()  # captum flattens it with .view
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        attr = ShapleyValueSampling(score).attribute(
            image[None], baselines=fill.expand_as(image)[None].contiguous(), target=int(class_index),
            feature_mask=feature_mask, n_samples=n_samples, perturbations_per_eval=batch_size)
    return attr[0].sum(dim=0).float().cpu().numpy() / c, n_samples * int(np.unique(cells).size) + 1
