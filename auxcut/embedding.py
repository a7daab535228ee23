"""What a trained CNN sees in an image: its pooled last-layer features, the input of its class layer (read by the
missing-feature heads and by fine-label discovery)."""

from __future__ import annotations

import numpy as np
import torch

from auxcut.models import ConvNet


@torch.no_grad()
def embed(model: ConvNet, images: np.ndarray, mean: np.ndarray, std: np.ndarray, *, batch_size: int,
          device: torch.device) -> np.ndarray:
    """(N, F) pooled last-layer features of uint8 images (N, C, H, W), normalised as in training."""
    model = model.to(device).eval()
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device).float().div_(255.0)
        out.append(model.features(model.view((x - mean_t) / std_t)).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))
