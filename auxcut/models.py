"""The CNNs: one family, sized to the input, used for both the base classifier and the small aux."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class ConvNet(nn.Module):
    """Blocks of two 3x3 conv + batch-norm + ReLU layers, each halving the resolution until about 4x4,
    then global average pooling and a linear layer. Width doubles per block (capped at 8x)."""

    def __init__(self, in_shape: tuple[int, int, int], n_outputs: int, width: int) -> None:
        super().__init__()
        channels, height, wide = in_shape
        n_blocks = max(1, int(math.log2(min(height, wide) / 4)))
        layers: list[nn.Module] = []
        c_in = channels
        for block in range(n_blocks):
            c_out = width * 2 ** min(block, 3)
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(c_in, n_outputs))
        self.arch = {"in_shape": list(in_shape), "n_outputs": n_outputs, "width": width}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(arch: dict[str, Any]) -> ConvNet:
    return ConvNet(tuple(arch["in_shape"]), int(arch["n_outputs"]), int(arch["width"]))
