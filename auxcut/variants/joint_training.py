"""Training the aux as cut heads (params.yaml aux.mode: head) on a copy of the base (auxcut.variants.joint), with the
same inputs and the same Trained outputs as the separate auxes of auxcut.method.auxiliary.train_separate.

Apart from auxcut.variants.joint, which the final predictor imports to run the net: training needs the aux's
objectives and metrics, which predicting does not.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from auxcut.data import prepared
from auxcut.method import objectives
from auxcut.method.auxiliary import AuxSettings, Trained, node_metrics
from auxcut.method.hierarchy import ClassTree
from auxcut.nets import training
from auxcut.nets.models import count_parameters
from auxcut.variants import joint


def train_heads(ds: prepared.Dataset, tree: ClassTree, relabeled: pd.DataFrame, base: nn.Module,
                base_probs: np.ndarray, node_probs: np.ndarray, mean: np.ndarray, std: np.ndarray, cfg: AuxSettings,
                seed: int, device: torch.device, is_main: bool, say: Callable[[str], None]) -> Trained | None:
    """One binary head per cut on a copy of the base, fine-tuned jointly with its class head; called as
    auxcut.method.auxiliary.train_separate is (`base_probs` unused: the class head's own probabilities replace them).
    None in torchrun's other processes, which train alongside rank 0 but leave predicting to it."""
    n_classes, n_cuts = len(ds.classes), len(tree.nodes)
    training.seed_everything(seed, device)  # the cut heads' initial weights are drawn here
    net = joint.from_base(base, n_cuts)
    cut_heads = joint.heads(n_classes, n_cuts)
    head_parameters = count_parameters(net) - count_parameters(base)
    say(f"{n_cuts} cut head(s) on the base's backbone, {head_parameters:,} parameters more than the base's "
        f"{count_parameters(base):,}")
    sides = relabeled[[f"node_{k}" for k in range(n_cuts)]].to_numpy()
    result = training.fit(net, ds.images, joint.targets(ds.samples["label"].to_numpy(), sides), ds.indices("train"),
                          ds.indices("val"), task=cut_heads, mean=mean, std=std, epochs=cfg.epochs,
                          batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay, patience=cfg.patience,
                          augment=cfg.augment, seed=seed, device=device, desc="train_aux heads")
    if not is_main:
        return None
    probs = training.predict_proba(result.model, ds.images, mean, std, task=cut_heads, batch_size=cfg.batch_size,
                                   device=device)
    class_probs, cut_probs = joint.split(probs, n_classes)
    nodes = [{**node_metrics(k, cut_probs[:, k], sides[:, k],
                             objectives.base_side_probability(node_probs, tree.class_sides(k)), ds),
              "classes": len(tree.nodes[k].classes), "parameters": head_parameters // n_cuts,
              "epochs_run": len(result.history), "best_epoch": result.best_epoch} for k in range(n_cuts)]
    return Trained([result.model], cut_probs, class_probs, nodes, result.history, head_parameters,
                   [(result.model, cut_heads)])
