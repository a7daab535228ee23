"""The aux: one small binary CNN per cut of the tree, trained on the images of the cut's classes (params.yaml
aux.mode separate, the seed method's aux), within a parameter budget of at least aux.min_ratio x fewer parameters than
the base (10 in the seed method), all auxes together; each cut's aux is scored on its own images, per split, and
against the base on test. The cuts are what aux.target names (auxcut.method.targets); aux.target classes trains one
multiclass aux over the classes instead (`train_classes`), within the same budget.

aux.mode head trains the same cuts as heads on the base's backbone instead (auxcut.variants.joint_training); all
return a Trained, which `summary` turns into metrics/train_aux.json.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from auxcut import AuxcutError
from auxcut.core import paths
from auxcut.data import prepared
from auxcut.method import objectives, targets
from auxcut.method.hierarchy import ClassTree
from auxcut.nets import backbones, distributed, inference, training
from auxcut.nets.models import ViewKind, count_parameters


class AuxSettings(training.TrainSettings, Protocol):
    """What training the aux reads of params.yaml `aux` (auxcut.pipeline.params.AuxParams)."""

    objective: objectives.ObjectiveKind
    strength: float
    view: ViewKind
    mode: str
    arch: str
    small_input: backbones.SmallInput
    target: targets.TargetKind
    min_ratio: float  # the base has at least this many times the parameters of all auxes together


def check_budget(in_shape: tuple[int, int, int], width: int, view: ViewKind, n_nets: int, base_parameters: int,
                 arch: str = backbones.CONVNET, small_input: backbones.SmallInput = "auto", *, min_ratio: float,
                 n_outputs: int = 1) -> int:
    """The auxes' parameters in all (`n_nets` nets of `n_outputs` outputs each); an AuxcutError naming the widest
    setting that fits when the base has fewer than `min_ratio` times as many: the widest aux.width of a convnet aux
    (whatever aux.arch was asked, as only convnet has a width to narrow)."""
    def total(name: str, w: int) -> int:
        return n_nets * count_parameters(backbones.make(name, in_shape, n_outputs, width=w, view=view,
                                                        small_input=small_input, param="aux.arch"))

    asked = total(arch, width)
    if base_parameters / asked >= min_ratio:
        return asked
    own = arch == backbones.CONVNET
    if own:
        fits = next((w for w in range(width - 1, 0, -1) if base_parameters / total(arch, w) >= min_ratio), None)
    else:  # aux.width is no bound on another arch: the widest convnet that fits, however wide
        fits = None
        while base_parameters / total(backbones.CONVNET, (fits or 0) + 1) >= min_ratio:
            fits = (fits or 0) + 1
    setting = "aux.width" if own else "aux.arch convnet with aux.width"
    hint = f"{setting} {fits} fits" if fits else f"no {setting} fits: lower maxcut.depth or widen the base"
    many = f"{n_nets} auxes (one per cut of the tree) of " if n_nets > 1 else ""
    ratio = math.floor(100 * base_parameters / asked) / 100  # rounded down: just under 10x never reads "10.00x"
    asking = f"aux.width={width}" if own else f"aux.arch={arch}"
    raise AuxcutError(f"{asking} gives {many}{asked // n_nets:,} parameters, "
                      f"{asked:,} in all: only {ratio:.2f}x fewer than the base's "
                      f"{base_parameters:,}; the aux must be at least {min_ratio:g}x smaller ({hint})")


class Trained(NamedTuple):
    """What either mode trained, as the outputs want it."""

    models: list[nn.Module]  # models/aux.pt: the auxes, or the one net carrying the cut heads
    aux_probs: np.ndarray  # (N, cuts) each cut's probability of side 1, or (N, K) the classes aux's class probabilities
    class_probs: np.ndarray  # (N, K) what the stacked set is built on: the base's, or the joint net's class head
    nodes: list[dict]  # per cut (or for the one classes aux), its metrics
    history: list[dict[str, float]]  # the root cut's (or the joint net's) training curve
    parameters: int  # the auxes' parameters, or those the heads add to the base
    predictor_nets: list[tuple[nn.Module, training.Task]]  # what the final predictor runs besides the base (separate)


def node_metrics(k: int, prob: np.ndarray, targets: np.ndarray, base_side: np.ndarray, ds: prepared.Dataset) -> dict:
    """One cut's aux (or cut head) scored on the images of its classes, per split, and against the base on test."""
    under = targets >= 0
    correct = (prob > 0.5) == (targets == 1)
    split_idx = {s: ds.indices(s)[under[ds.indices(s)]] for s in prepared.SPLITS}
    test = split_idx["test"]
    return {"node": k,
            "accuracy": {s: float(correct[i].mean()) if len(i) else None for s, i in split_idx.items()},
            "majority_rate": {s: float(max(targets[i].mean(), 1 - targets[i].mean())) if len(i) else None
                              for s, i in split_idx.items()},
            "test": objectives.side_agreement(prob[test], base_side[test], targets[test])}


def class_metrics(prob: np.ndarray, labels: np.ndarray, base_probs: np.ndarray, ds: prepared.Dataset) -> dict:
    """The classes aux scored as a cut's aux is: its accuracy and the most common class's share per split, and on test
    each one's accuracy beside the base's and the correlation of their errors (1: wrong on the same images)."""
    correct, base_correct = prob.argmax(1) == labels, base_probs.argmax(1) == labels
    split_idx = {s: ds.indices(s) for s in prepared.SPLITS}
    test = split_idx["test"]
    errors = (~correct[test]).astype(np.float64), (~base_correct[test]).astype(np.float64)
    constant = len(test) < 2 or errors[0].std() == 0 or errors[1].std() == 0
    return {"node": 0,
            "accuracy": {s: float(correct[i].mean()) if len(i) else None for s, i in split_idx.items()},
            "majority_rate": {s: float(np.bincount(labels[i]).max() / len(i)) if len(i) else None
                              for s, i in split_idx.items()},
            "test": {"aux_accuracy": float(correct[test].mean()), "base_accuracy": float(base_correct[test].mean()),
                     "error_correlation": 0.0 if constant else float(np.corrcoef(*errors)[0, 1])}}


def train_classes(ds: prepared.Dataset, base: nn.Module, base_probs: np.ndarray, mean: np.ndarray, std: np.ndarray,
                  cfg: AuxSettings, seed: int, device: torch.device, is_main: bool,
                  say: Callable[[str], None]) -> Trained | None:
    """aux.target classes: one small multiclass CNN over all K classes, on every image, within the same budget and with
    the same training as a cut's aux; its K probabilities are stacked. None in torchrun's other processes."""
    in_shape, n_classes = tuple(ds.images.shape[1:]), len(ds.classes)
    base_parameters = count_parameters(base)
    aux_parameters = check_budget(in_shape, cfg.width, cfg.view, 1, base_parameters, cfg.arch, cfg.small_input,
                                  min_ratio=cfg.min_ratio, n_outputs=n_classes)
    say(f"base {base_parameters:,} parameters, a classes aux {aux_parameters:,} "
        f"({base_parameters / aux_parameters:.1f}x fewer) over {n_classes} classes; view {cfg.view}")
    labels = ds.samples["label"].to_numpy()
    training.seed_everything(seed, device)  # weight init, as for the root cut's aux
    model = backbones.make(cfg.arch, in_shape, n_classes, width=cfg.width, view=cfg.view, small_input=cfg.small_input,
                           param="aux.arch")
    result = training.fit(model, ds.images, labels, ds.indices("train"), ds.indices("val"), task="multiclass",
                          mean=mean, std=std, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                          weight_decay=cfg.weight_decay, patience=cfg.patience, augment=cfg.augment, seed=seed,
                          device=device, desc="train_aux classes")
    if not is_main:
        return None
    prob = training.predict_proba(result.model, ds.images, mean, std, task="multiclass", batch_size=cfg.batch_size,
                                  device=device)
    node = {**class_metrics(prob, labels, base_probs, ds), "classes": n_classes,
            "parameters": count_parameters(result.model), "epochs_run": len(result.history),
            "best_epoch": result.best_epoch}
    return Trained([result.model], prob, base_probs, [node], result.history, aux_parameters,
                   [(result.model, "multiclass")])


def train_separate(ds: prepared.Dataset, tree: ClassTree, relabeled: pd.DataFrame, base: nn.Module,
                   base_probs: np.ndarray, node_probs: np.ndarray, mean: np.ndarray, std: np.ndarray,
                   cfg: AuxSettings, seed: int, device: torch.device, is_main: bool,
                   say: Callable[[str], None]) -> Trained | None:
    """One small CNN per cut, on the images of the cut's classes: the seed method's aux. None in torchrun's other
    processes, which train alongside rank 0 but leave predicting to it."""
    in_shape = tuple(ds.images.shape[1:])
    base_parameters = count_parameters(base)
    aux_parameters = check_budget(in_shape, cfg.width, cfg.view, len(tree.nodes), base_parameters, cfg.arch,
                                  cfg.small_input, min_ratio=cfg.min_ratio)
    say(f"base {base_parameters:,} parameters, {len(tree.nodes)} aux(es) {aux_parameters:,} "
        f"({base_parameters / aux_parameters:.1f}x fewer); objective {cfg.objective}, view {cfg.view}")
    train_all, val_all = ds.indices("train"), ds.indices("val")
    models, probs, nodes, histories = [], [], [], []  # per cut
    for k in range(len(tree.nodes)):
        targets = relabeled[f"node_{k}"].to_numpy()
        under = targets >= 0  # the images of this cut's classes: the only ones it trains and is scored on
        sides = np.maximum(targets, 0)  # the -1 of other cuts' images never reach the loss: they are not in train_idx
        train_idx, val_idx = train_all[under[train_all]], val_all[under[val_all]]
        if len(train_idx) == 0 or len(val_idx) == 0:
            raise AuxcutError(f"{paths.RELABELED}: cut {k} has no train or val images; use fewer levels (maxcut.depth)")
        base_side = objectives.base_side_probability(node_probs, tree.class_sides(k))
        objective = objectives.make_objective(cfg.objective, cfg.strength, sides, base_side, train_idx)
        training.seed_everything(seed + k, device)  # weight init is random too; the root is seeded as before trees
        model = backbones.make(cfg.arch, in_shape, 1, width=cfg.width, view=cfg.view, small_input=cfg.small_input,
                               param="aux.arch")
        desc = "train_aux" if len(tree.nodes) == 1 else f"train_aux node {k}"
        result = training.fit(model, ds.images, sides, train_idx, val_idx, task="binary", mean=mean,
                              std=std, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                              weight_decay=cfg.weight_decay, patience=cfg.patience, augment=cfg.augment, seed=seed + k,
                              device=device, desc=desc, objective=objective)
        if not is_main:
            continue
        prob = training.predict_proba(result.model, ds.images, mean, std, task="binary", batch_size=cfg.batch_size,
                                      device=device)
        models.append(result.model)
        probs.append(prob)
        histories.append(result)
        nodes.append({**node_metrics(k, prob, targets, base_side, ds), "classes": len(tree.nodes[k].classes),
                      "parameters": count_parameters(result.model), "epochs_run": len(result.history),
                      "best_epoch": result.best_epoch})
    if not is_main:
        return None
    return Trained(models, np.column_stack(probs), base_probs, nodes, histories[0].history, aux_parameters,
                   [(m, "binary") for m in models])


def summary(out: Trained, cfg: AuxSettings, ds: prepared.Dataset, base: nn.Module, base_probs: np.ndarray,
            mean: np.ndarray, std: np.ndarray, device: torch.device) -> dict:
    """metrics/train_aux.json: the budget, the class accuracy the stacked set is built on, the predictor's inference
    speed against the base alone (measured here on the same test images), the root cut's aux and every cut's (or the
    classes aux's, beside the base in `class_agreement`); the target and the ratio the budget asked for."""
    base_parameters = count_parameters(base)
    nets = out.predictor_nets if cfg.mode == "head" else [(base, "multiclass"), *out.predictor_nets]
    test = ds.indices("test")
    rates = inference.images_per_second({"predictor": nets, "base": [(base, "multiclass")]}, ds.images[test], mean,
                                        std, device)
    labels = ds.samples["label"].to_numpy()[test]
    root = out.nodes[0]
    return {
        "mode": cfg.mode,
        "target": cfg.target,
        "min_ratio": cfg.min_ratio,  # below 10: the seed method's rule was lowered
        "objective": cfg.objective,
        "strength": cfg.strength,
        "view": cfg.view,
        "auxes": len(out.nodes),
        "parameters": out.parameters,
        "base_parameters": base_parameters,
        "base_over_aux_parameters": base_parameters / out.parameters,
        "processes": distributed.world().size,
        # the class probabilities the stacked set is built on: the base's, or the joint net's class head
        "class_accuracy": {"base": float((base_probs[test].argmax(1) == labels).mean()),
                           "stacked_on": float((out.class_probs[test].argmax(1) == labels).mean())},
        "inference": {"predictor_images_per_second": rates["predictor"], "base_images_per_second": rates["base"],
                      "forward_passes": len(nets)},
        # the root cut's aux, the seed method's one aux
        "epochs_run": root["epochs_run"],
        "best_epoch": root["best_epoch"],
        "accuracy": root["accuracy"],
        "majority_rate": root["majority_rate"],
        # on test beside the base: on the root cut's sides, or (classes) on the classes
        "class_agreement" if cfg.target == "classes" else "base_agreement": root["test"],
        "nodes": out.nodes,
    }
