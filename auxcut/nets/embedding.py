"""What a trained CNN sees in an image: its pooled last-layer features, the input of its class layer (read by the
missing-feature heads and by fine-label discovery)."""

from __future__ import annotations

import numpy as np
import torch

from auxcut.nets import training
from auxcut.nets.models import ConvNet


@torch.no_grad()
def embed(model: ConvNet, images: np.ndarray, mean: np.ndarray, std: np.ndarray, *, batch_size: int,
          device: torch.device) -> np.ndarray:
    """(N, F) pooled last-layer features of uint8 images (N, C, H, W), normalised as in training."""
    model = model.to(device).eval()
    out = [model.features(model.view(x.to(device))).float().cpu().numpy()
           for x in training.normalised_batches(images, mean, std, batch_size)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))
