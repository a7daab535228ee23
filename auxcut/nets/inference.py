"""Inference speed of predictors made of one or several nets, measured, never estimated: images per second through
each predictor's forward passes over the same images, best of a few rounds (after a warm-up round that is not
counted). The predictors take turns within each round, so a machine busy with something else slows them alike."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from auxcut.nets import training

Nets = Sequence[tuple[nn.Module, training.Task]]  # a predictor's nets, each with its task


def images_per_second(predictors: dict[str, Nets], images: np.ndarray, mean: np.ndarray, std: np.ndarray,
                      device: torch.device, rounds: int = 3, max_images: int = 2048) -> dict[str, float]:
    """Per predictor, the images per second through every one of its nets."""
    sample = np.asarray(images[:max_images])

    def seconds(nets: Nets) -> float:
        started = time.perf_counter()
        for net, task in nets:
            training.predict_proba(net, sample, mean, std, task=task, batch_size=256, device=device)
        return time.perf_counter() - started

    best = {name: float("inf") for name in predictors}
    for round_ in range(rounds + 1):
        for name, nets in predictors.items():
            took = seconds(nets)
            if round_:  # round 0 warms up
                best[name] = min(best[name], took)
    return {name: len(sample) / took for name, took in best.items()}
