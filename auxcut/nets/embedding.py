"""What a trained net sees in an image: its pooled embedding, the input of its classifier (read by the missing-feature
heads and by fine-label discovery). Every arch of auxcut.nets.backbones has it as `features` after its `view`:
ConvNet's pooled last block, a torchvision model's input to its classification layer (a ResNet's 512 pooled channels),
pmnist_net's 50 hidden units. Also the last conv map before that pooling, flattened (`last_map`: the spatial
missing-feature heads read it)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from auxcut.nets import backbones, training


@torch.no_grad()
def embed(model: nn.Module, images: np.ndarray, mean: np.ndarray, std: np.ndarray, *, batch_size: int,
          device: torch.device) -> np.ndarray:
    """(N, F) embeddings of uint8 images (N, C, H, W), normalised as in training."""
    model = model.to(device).eval()
    out = [model.features(model.view(x.to(device))).float().cpu().numpy()
           for x in training.normalised_batches(images, mean, std, batch_size)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))


@torch.no_grad()
def last_map(model: nn.Module, images: np.ndarray, mean: np.ndarray, std: np.ndarray, *, batch_size: int,
             device: torch.device) -> np.ndarray:
    """(N, C * H * W) float32: the last conv map of uint8 images (N, C, H, W), flattened channel by channel
    (auxcut.nets.backbones.last_map; float32, as a convnet's map at 28 px has thousands of units per image)."""
    model = model.to(device).eval()
    layers = backbones.last_map(model)[0]
    out = [layers(model.view(x.to(device))).flatten(1).float().cpu().numpy()
           for x in training.normalised_batches(images, mean, std, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
