"""One backbone with a head per attribute, trained with a masked loss, against one CNN per attribute.

Attributes are the data's group columns (UTKFace: age bucket, race, gender), the top cut's side and the class. A
seeded fraction of each attribute's train labels is hidden, each attribute on its own (the same random draw for every
fraction, so the labels hidden at 50% are among those hidden at 90%). The shared net's loss skips a hidden label
(training.Heads); each separate net trains on the images whose label of its attribute is known: both see exactly the
same labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from auxcut import AuxcutError
from auxcut.nets import inference, training
from auxcut.nets.backbones import flops_per_image
from auxcut.nets.models import ConvNet, ViewKind, count_parameters
from auxcut.variants.checks import check_attributes


@dataclass(frozen=True)
class Attributes:
    names: list[str]
    values: list[list[str]]  # per attribute, its values in code order
    codes: np.ndarray  # (N, A) each image's value code per attribute

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.values)


def table(samples: pd.DataFrame, relabeled: pd.DataFrame, classes: list[str], names: list[str]) -> Attributes:
    """The attributes' codes for every image; `names` [] takes every group attribute of the data and the cut."""
    groups = [c.removeprefix("group_") for c in samples.columns if c.startswith("group_")]
    check_attributes(names, groups)
    names = names or [*groups, "cut"]
    values, codes = [], []
    for name in names:
        if name == "cut":
            column = relabeled["node_0"].to_numpy()
            names_of = ["side 0", "side 1"]
        elif name == "class":
            column = samples["label"].to_numpy()
            names_of = list(classes)
        else:
            names_of = sorted(samples[f"group_{name}"].astype(str).unique())
            column = samples[f"group_{name}"].astype(str).map({v: i for i, v in enumerate(names_of)}).to_numpy()
        if len(set(column.tolist())) < 2:
            raise AuxcutError(f"attributes.names: {name} has a single value in this data; nothing to learn")
        values.append(names_of)
        codes.append(column.astype(np.int64))
    return Attributes(names, values, np.column_stack(codes))


def hide(codes: np.ndarray, train_idx: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The codes with `fraction` of each attribute's train labels set to training.MISSING (val and test keep theirs)."""
    draw = np.random.default_rng(seed).random(codes.shape)
    out = codes.copy()
    in_train = np.zeros(len(codes), dtype=bool)
    in_train[train_idx] = True
    out[(draw < fraction) & in_train[:, None]] = training.MISSING
    return out


def paired_difference(a_right: np.ndarray, b_right: np.ndarray, z: float = 1.96) -> dict[str, float]:
    """Mean of a - b over the same images (right = 1), with a normal-approximation 95% interval of the paired means."""
    d = a_right.astype(np.float64) - b_right.astype(np.float64)
    half = z * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "low": float(d.mean() - half), "high": float(d.mean() + half)}


def compare(images: np.ndarray, attrs: Attributes, train: np.ndarray, val: np.ndarray, test: np.ndarray,
            fraction: float, cfg: training.TrainSettings, view: ViewKind, seed: int, mean: np.ndarray, std: np.ndarray,
            device: torch.device, is_main: bool, say: Callable[[str], None]) -> tuple[ConvNet, dict] | None:
    """With `fraction` of each attribute's train labels hidden: the shared net (a head per attribute) and one net per
    attribute, on the same known labels, scored on test: accuracy, their paired difference, the majority rate,
    parameters and speed. The shared net and the row of metrics/train_attributes.json's by_fraction; None in torchrun's
    other processes, which train alongside rank 0 but leave the scoring to it."""
    in_shape = tuple(images.shape[1:])
    fit = dict(mean=mean, std=std, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
               weight_decay=cfg.weight_decay, patience=cfg.patience, augment=cfg.augment, seed=seed, device=device)
    heads = training.Heads(attrs.sizes)
    test_images = images[test]  # only the test split is scored
    targets = hide(attrs.codes, train, fraction, seed)
    training.seed_everything(seed, device)
    shared = training.fit(ConvNet(in_shape, sum(attrs.sizes), cfg.width, view), images, targets, train, val,
                          task=heads, desc=f"train_attributes shared, {fraction:.0%} hidden", **fit).model
    shared_probs = heads.split_probs(training.predict_proba(shared, test_images, mean, std, task=heads, batch_size=256,
                                                            device=device))
    separate, row = [], {"hidden": fraction, "shared": {"accuracy": {}}, "separate": {"accuracy": {}},
                         "difference": {}, "majority": {}, "known_train_labels": {}}
    for a, name in enumerate(attrs.names):
        known = train[targets[train, a] != training.MISSING]
        training.seed_everything(seed + 1 + a, device)
        net = training.fit(ConvNet(in_shape, attrs.sizes[a], cfg.width, view), images, attrs.codes[:, a],
                           known, val, task="multiclass", desc=f"train_attributes {name}, {fraction:.0%} hidden",
                           **fit).model
        separate.append(net)
        probs = training.predict_proba(net, test_images, mean, std, task="multiclass", batch_size=256, device=device)
        truth = attrs.codes[test, a]
        shared_right, separate_right = shared_probs[a].argmax(1) == truth, probs.argmax(1) == truth
        row["shared"]["accuracy"][name] = float(shared_right.mean())
        row["separate"]["accuracy"][name] = float(separate_right.mean())
        row["difference"][name] = paired_difference(shared_right, separate_right)
        row["majority"][name] = float(np.bincount(truth).max() / len(truth))
        row["known_train_labels"][name] = int(len(known))
    if not is_main:
        return None
    row["shared"]["parameters"] = count_parameters(shared)
    row["separate"]["parameters"] = sum(count_parameters(net) for net in separate)
    # the cost claim as a count (one backbone pass against one per attribute), beside the measured rate below
    row["shared"]["flops_per_image"] = flops_per_image(shared)
    row["separate"]["flops_per_image"] = sum(flops_per_image(net) for net in separate)
    rates = inference.images_per_second({"shared": [(shared, heads)],
                                         "separate": [(net, "multiclass") for net in separate]},
                                        test_images, mean, std, device)
    for kind in ("shared", "separate"):
        row[kind]["images_per_second"] = rates[kind]
    say(f"{fraction:.0%} hidden: " + ", ".join(
        f"{n} {row['shared']['accuracy'][n]:.3f} shared / {row['separate']['accuracy'][n]:.3f} separate"
        for n in attrs.names))
    return shared, row


def plot_accuracy(by_fraction: list[dict], names: list[str], title: str):
    """Test accuracy per attribute against the fraction of labels hidden: shared heads (solid), separate nets (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    hidden = [100 * row["hidden"] for row in by_fraction]
    for i, name in enumerate(names):
        ax.plot(hidden, [100 * row["shared"]["accuracy"][name] for row in by_fraction], "-o", color=f"C{i}",
                label=f"{name}: shared heads")
        ax.plot(hidden, [100 * row["separate"]["accuracy"][name] for row in by_fraction], "--s", color=f"C{i}",
                label=f"{name}: separate nets")
    ax.set(xlabel="train labels hidden (% of each attribute's)", ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
