"""The aux as a head (params.yaml aux.mode: head): one binary head per cut of the tree, on a copy of the base CNN
whose class head stays beside them, fine-tuned jointly. One forward pass gives the class probabilities and every cut
side's probability, where the separate aux takes a pass of its own per cut.

The net is the base's arch (any of auxcut.nets.backbones) whose last linear layer has K + 2 x cuts outputs: the class
logits, then two per cut (training.Heads((K, 2, 2, ...))). A cut head's label is missing (skipped by the loss) for
images whose class the cut does not split, as in data/relabeled.csv.
"""

from __future__ import annotations

import numpy as np
import torch

from torch import nn

from auxcut.nets import backbones, training


def heads(n_classes: int, n_cuts: int) -> training.Heads:
    return training.Heads((n_classes, *([2] * n_cuts)))


def from_base(base: nn.Module, n_cuts: int) -> nn.Module:
    """A copy of the base with `n_cuts` new binary heads; its backbone and class head start as the base's."""
    n_classes = int(base.arch["n_outputs"])
    net = backbones.like(base, n_classes + 2 * n_cuts)
    state = base.state_dict()
    own = net.state_dict()
    with torch.no_grad():
        for name, value in state.items():
            # every arch's last layer is its `classifier`: the class head's rows; the cut heads' keep their fresh init
            if name.startswith("classifier."):
                own[name][:n_classes] = value
            else:
                own[name].copy_(value)
    net.load_state_dict(own)
    return net


def targets(labels: np.ndarray, node_sides: np.ndarray) -> np.ndarray:
    """(N, 1 + cuts): the class, then each cut's side (-1, training.MISSING, where the cut does not split the class)."""
    return np.column_stack([labels, np.where(node_sides < 0, training.MISSING, node_sides)]).astype(np.int64)


def split(probs: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Heads' probabilities side by side -> (N, K) class probabilities and (N, cuts) probabilities of side 1."""
    return probs[:, :n_classes], probs[:, n_classes + 1::2]  # each cut head is (side 0, side 1)
