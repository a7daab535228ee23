"""auxcut's own CNN family (arch `convnet`), sized to the input, and the views a net can take of its image; every arch
by name, this one included, is built and rebuilt by auxcut.nets.backbones."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

ViewKind = Literal["full", "gray", "low", "center"]
VIEWS: tuple[str, ...] = ("full", "gray", "low", "center")


class View(nn.Module):
    """What a network sees of its (normalised) input image. The base sees it all; an aux given another view learns
    other features than the base's, so that its errors are less likely to be the base's:
    - full: the image as it is;
    - gray: the mean of the channels (shape and texture without colour);
    - low: half the resolution (2x2 average pooling: the coarse layout);
    - center: the central half of each side (a crop of the middle of the face, at full resolution).
    Images are at least 4x4 (params.yaml data.image_size), so every view keeps at least 2x2 pixels. The view has
    no parameters, so a checkpoint's weights do not depend on it; it is part of the model's arch."""

    def __init__(self, kind: ViewKind = "full") -> None:
        super().__init__()
        if kind not in VIEWS:
            raise ValueError(f"view: expected one of {', '.join(VIEWS)}, got {kind!r}")
        self.kind = kind

    def out_shape(self, in_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        channels, height, width = in_shape
        if self.kind == "gray":
            return 1, height, width
        if self.kind in ("low", "center"):
            return channels, height // 2, width // 2
        return in_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "gray":
            return x.mean(1, keepdim=True)
        if self.kind == "low":
            return F.avg_pool2d(x, 2)
        if self.kind == "center":
            height, width = x.shape[2:]
            h, w = height // 2, width // 2
            top, left = (height - h) // 2, (width - w) // 2
            return x[:, :, top:top + h, left:left + w]
        return x


class Backbone(nn.Module):
    """What every arch of auxcut.nets.backbones is: `view`, `features` (the view's output to the pooled embedding),
    `classifier`. With `frozen_features` set, `features` stays in eval mode when the net trains (batch-norm statistics
    kept as loaded) and its weights take no gradient: linear probing of a loaded backbone (params.yaml base.freeze)."""

    frozen_features = False

    def freeze_features(self) -> None:
        self.frozen_features = True
        self.features.requires_grad_(False)

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        if self.frozen_features:
            self.features.eval()
        return self


class ConvNet(Backbone):
    """Blocks of two 3x3 conv + batch-norm + ReLU layers, each halving the resolution until about 4x4,
    then global average pooling and a linear layer. Width doubles per block (capped at 8x). The net is
    sized to what its view passes on."""

    def __init__(self, in_shape: tuple[int, int, int], n_outputs: int, width: int, view: ViewKind = "full") -> None:
        super().__init__()
        self.view = View(view)
        channels, height, wide = self.view.out_shape(tuple(in_shape))
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
        self.arch = {"in_shape": list(in_shape), "n_outputs": n_outputs, "width": width, "view": view}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.view(x)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

