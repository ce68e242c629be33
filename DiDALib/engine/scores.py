"""Score modes: the number DiDA compares between an image and its masked copies, one per class.

- ``probabilities``: softmax of the outputs (sigmoid for a single output). Bounded and easy to read, but a
  confident model saturates: near p = 1 a large change of evidence barely moves p (dp = p (1 - p) dz), so the
  maps go dark except where the decision flips, and the top class mirrors its runner-up (they sum to about 1).
- ``logits``: the raw outputs. Never saturate, but a change shared by all classes (which changes no
  probability) shows in every class's map, and their scale is the model's own.
- ``log-odds``: ``log(p_k / (1 - p_k)) = z_k - logsumexp_{j != k} z_j``, computed from the logits so it stays
  exact for any margin. Never saturates, ignores shifts shared by all classes (like probabilities), and is in
  one unit for every model (natural log-odds; +2.2 = ten times the odds). For a single output it is the logit.
- ``auto`` (resolved per run, by ``choose_auto``): probabilities unless the model is saturated on the explained
  images (top probability >= ``AUTO_SATURATION``), then log-odds.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads with the first score computed: the command line's parsers need only the names
    import torch

SCORE_MODES: tuple[str, ...] = ("probabilities", "logits", "log-odds")
AUTO = "auto"
#: ``auto`` picks log-odds when the top probability of any explained image reaches this: there dp/dz = p (1 - p)
#: is at most 0.0099, a 25th of its value at p = 0.5, so probability maps lose all but flipping evidence.
AUTO_SATURATION = 0.99
_UNITS = {"probabilities": "probability", "logits": "logit", "log-odds": "log-odds"}


def check_score_mode(mode: str, allow_auto: bool = False) -> str:
    """``mode`` if it is a known score mode (``auto`` only where ``allow_auto``), else a ValueError naming them."""
    known = SCORE_MODES + ((AUTO,) if allow_auto else ())
    if mode not in known:
        raise ValueError(f"score {mode!r} is not known: use {', '.join(repr(m) for m in known)}")
    return mode


def log_odds(outputs: torch.Tensor) -> torch.Tensor:
    """Log-odds of every class from (B, K) outputs: ``z_k - logsumexp_{j != k} z_j`` (the output itself for K = 1)."""
    import torch

    z = outputs.float()
    k = z.shape[1]
    if k == 1:
        return z
    others = z[:, None, :].expand(-1, k, -1).masked_fill(torch.eye(k, dtype=torch.bool, device=z.device), -math.inf)
    return z - torch.logsumexp(others, dim=2)


def transform_scores(outputs: torch.Tensor, mode: str) -> torch.Tensor:
    """The float32 (B, K) scores of a mode from the model's (B, K) outputs."""
    import torch

    z = outputs.float()
    if mode == "probabilities":
        return torch.softmax(z, dim=1) if z.shape[1] > 1 else torch.sigmoid(z)
    if mode == "log-odds":
        return log_odds(z)
    if mode == "logits":
        return z
    raise ValueError(f"score {mode!r} is not known: use {', '.join(repr(m) for m in SCORE_MODES)}")


def choose_auto(outputs: torch.Tensor) -> tuple[str, str]:
    """What ``auto`` means for images with these (B, K) model outputs: the mode, and a sentence saying why."""
    p = transform_scores(outputs, "probabilities")
    top = float(p.max()) if p.numel() else 0.0
    if top >= AUTO_SATURATION:
        return "log-odds", (f"auto: log-odds, because the model is saturated (top probability {top:.6g} >= "
                            f"{AUTO_SATURATION}), where probability maps lose all but flipping evidence")
    return "probabilities", f"auto: probabilities (top probability {top:.4g} < {AUTO_SATURATION}: not saturated)"


def score_unit(mode: str) -> str:
    """The unit of a score mode in words: probability, logit or log-odds."""
    return _UNITS.get(mode, mode)


def format_score(value: float, mode: str, digits: int = 2, signed: bool = False) -> str:
    """A score as shown beside a class name, in its mode's own terms: ``p = 0.93``, ``logit 2.10`` or
    ``log-odds 4.20`` (``signed``: a difference of two scores, ``p +0.12``, ``log-odds -1.30``)."""
    number = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    if mode == "probabilities":
        return f"p {number}" if signed else f"p = {number}"
    return f"{score_unit(mode)} {number}"
