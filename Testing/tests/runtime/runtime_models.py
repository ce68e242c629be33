"""Small classifiers written the way people write them, for the runtime tests: a CNN with BatchNorm left in train
mode, an in-place ReLU and a flatten before its head (``.view`` there fails on main's channels-last CPU
batches: the memory-format issue fixes that); one with a custom op whose ONNX form differs from what it
computes; one with an ``if`` on its input's values."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, channels: int = 1, classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x):
        x = torch.relu_(self.bn(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


class _Swish(torch.autograd.Function):
    """x * sigmoid(x), exported to ONNX as a plain ReLU: an export that changes what the model computes."""

    @staticmethod
    def forward(ctx, x):
        return x * torch.sigmoid(x)

    @staticmethod
    def symbolic(g, x):
        return g.op("Relu", x)


class CustomOpCNN(SmallCNN):
    def forward(self, x):
        x = _Swish.apply(self.bn(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


class BranchingCNN(SmallCNN):
    """Takes another path when its input has dark pixels (a masked cell filled with black)."""

    def forward(self, x):
        if x.amin() < -1.5:
            x = x * 0.5
        return super().forward(x)


def trained(model: nn.Module, seed: int = 0) -> nn.Module:
    """Weights large enough that masking a cell moves the scores well above float32's rounding, and BatchNorm
    statistics that are not the identity (left in train mode: the engine must evaluate it)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.6 if p.ndim > 1 else 0.1))
        model.bn.running_mean.copy_(torch.randn(8, generator=g) * 0.1)
        model.bn.running_var.copy_(torch.rand(8, generator=g) + 0.5)
    return model.train()
