"""Two ways for a CNN to learn from discovered fine labels (auxcut.variants.discovery) and answer the coarse ones:
- pretrain_then_finetune: trained on the fine labels (the images that have one), then its class layer is replaced
  and the whole net fine-tuned on the coarse labels;
- multihead: a coarse and a fine head on one backbone, one masked loss (an image without a fine label teaches the
  coarse head only).
Both are the base's arch (any of auxcut.nets.backbones: its `arch` record, width and stem included), so the comparison
with the coarse-only base is at equal size."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from auxcut import AuxcutError
from auxcut.nets import backbones, training
from auxcut.variants.discovery import UNASSIGNED


def _history(*runs: list[dict[str, float]]) -> list[dict[str, float]]:
    """Training curves of consecutive phases as one, epochs numbered on."""
    out: list[dict[str, float]] = []
    for run in runs:
        out += [{**row, "epoch": len(out) + k + 1} for k, row in enumerate(run)]
    return out


def pretrain_then_finetune(base: nn.Module, n_coarse: int, images: np.ndarray, coarse: np.ndarray,
                           fine: np.ndarray, train: np.ndarray, val: np.ndarray, *, epochs: int,
                           finetune_epochs: int, seed: int, **fit: Any) -> tuple[nn.Module, list[dict[str, float]]]:
    labelled = train[fine[train] != UNASSIGNED]
    n_fine = int(fine.max()) + 1
    if n_fine < 2 or len(labelled) < 10:
        raise AuxcutError(f"train_fine: {n_fine} fine label(s) on {len(labelled)} train images; pretraining needs two "
                          "or more labels and at least 10 images (see metrics/discover.json)")
    # The fine labels exist on train only: a seeded tenth of the labelled images stands in for val while pretraining.
    held = np.random.default_rng(seed).permutation(labelled)
    cut = max(1, len(held) // 10)
    training.seed_everything(seed, fit["device"])
    pre = training.fit(backbones.like(base, n_fine), images, fine, np.sort(held[cut:]), np.sort(held[:cut]),
                       task="multiclass", epochs=epochs, seed=seed, desc="train_fine pretrain on fine labels", **fit)
    net = pre.model
    backbones.replace_classifier(net, n_coarse)
    tuned = training.fit(net, images, coarse, train, val, task="multiclass", epochs=finetune_epochs, seed=seed,
                         desc="train_fine fine-tune on coarse labels", **fit)
    return tuned.model, _history(pre.history, tuned.history)


def multihead(base: nn.Module, n_coarse: int, images: np.ndarray, coarse: np.ndarray,
              fine: np.ndarray, train: np.ndarray, val: np.ndarray, *, epochs: int, finetune_epochs: int,
              seed: int, **fit: Any) -> tuple[nn.Module, list[dict[str, float]]]:
    n_fine = int(fine.max()) + 1
    heads = training.Heads((n_coarse, max(2, n_fine)))
    targets = np.column_stack([coarse, np.where(fine == UNASSIGNED, training.MISSING, fine)])
    training.seed_everything(seed, fit["device"])
    # one phase as long as the other mode's two, so that both nets get the same epoch budget
    result = training.fit(backbones.like(base, sum(heads.sizes)), images, targets, train, val, task=heads,
                          epochs=epochs + finetune_epochs, seed=seed, desc="train_fine coarse + fine heads", **fit)
    return result.model, result.history


def coarse_probs(net: nn.Module, images: np.ndarray, n_coarse: int, mean: np.ndarray, std: np.ndarray,
                 device: torch.device) -> np.ndarray:
    """(N, n_coarse) coarse class probabilities of either kind of net."""
    extra = int(net.arch["n_outputs"]) - n_coarse
    if extra == 0:
        return training.predict_proba(net, images, mean, std, task="multiclass", batch_size=256, device=device)
    heads = training.Heads((n_coarse, extra))
    return training.predict_proba(net, images, mean, std, task=heads, batch_size=256, device=device)[:, :n_coarse]
