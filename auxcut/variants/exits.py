"""Early exits, coarse -> fine (in the manner of Gran-HBN): a copy of the base CNN with small exit branches after
earlier conv layers that name a coarse group of classes (the sides of the tree of cuts, clusters of the classes the
base confuses with each other, or a given grouping), and the base's own final layer that names the class.

Where an exit can sit depends on the base's arch (`exit_points`): after each conv layer of a convnet (two per block),
after each of a ResNet's layer1..layer4, after each block of the `features` of a MobileNet or EfficientNet, after each
conv layer's activation in AlexNet's and VGG's `features`; exits.after counts those points, 1-based.

At inference each image stops at the first exit whose top probability reaches that exit's threshold, and is answered
there with a coarse group; an image no exit is sure of goes on to the fine answer. Sweeping the thresholds gives the
accuracy-compute curve (a coarse answer counts as right when the image's class is in the group it names), and the
accuracy-specificity trade-off (how many answers are coarse, and how many of those are right). FLOPs are counted by
`torch.utils.flop_counter` on the nets themselves (convolutions and matrix products; it leaves out element-wise work
such as batch norm and ReLU).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from auxcut import AuxcutError
from auxcut.nets import backbones, training
from auxcut.method.hierarchy import ClassTree
from auxcut.nets.models import ConvNet, count_parameters
from auxcut.variants.checks import check_groups, check_n_groups, prefix_groups

# The aim of issue 11, and the rule that picks the operating point on val: within this much of the full-depth fine
# accuracy, coarse answers right at least this often; the aim also asks for at most AIM_FLOPS of the full FLOPs.
AIM_ACCURACY_DROP = 0.01
AIM_COARSE_RIGHT = 0.90
AIM_FLOPS = 0.60


ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Tanh)


def layers(net: nn.Module) -> list[nn.Module]:
    """The net's layers from its view's output to its embedding, in the order its forward runs them: convnet's and
    pmnist_net's `features`; a torchvision net's children, `features` (or a RegNet's `trunk_output`) opened up,
    flattened after `avgpool`. ExitNet checks once that running them in turn gives the net's own embedding."""
    if not isinstance(net, backbones.TorchvisionNet):
        return list(net.features)
    out: list[nn.Module] = [net.features.channels]
    for name, child in net.features.net.named_children():
        out += list(child) if name in ("features", "trunk_output") else [child]
        if name == "avgpool":
            out.append(nn.Flatten())
    return out


def _after_convs(seq: list[nn.Module]) -> list[nn.Module]:
    """The first activation after each conv layer of a sequence of single layers."""
    out, conv = [], False
    for layer in seq:
        if isinstance(layer, ACTIVATIONS) and conv:
            out.append(layer)
        conv = isinstance(layer, nn.Conv2d) or (conv and not isinstance(layer, ACTIVATIONS))
    return out


def exit_points(net: nn.Module) -> list[int]:
    """The index in `layers(net)` after which an exit can sit, in order: the activation after each conv layer of
    convnet (two per block), pmnist_net and the single-layer `features` of AlexNet and VGG; a ResNet's layer1..layer4;
    the blocks of a `features` made of blocks (MobileNet, EfficientNet) or of a RegNet's trunk."""
    seq = layers(net)
    if not isinstance(net, backbones.TorchvisionNet):
        points = _after_convs(seq)
    else:
        children = dict(net.features.net.named_children())
        points = [children[n] for n in ("layer1", "layer2", "layer3", "layer4") if n in children]
        if not points:
            body = children.get("features", children.get("trunk_output"))
            blocks = list(body) if isinstance(body, nn.Sequential) else []
            points = _after_convs(blocks) if any(isinstance(b, nn.Conv2d) for b in blocks) else blocks
    index = {id(layer): i for i, layer in enumerate(seq)}
    return [index[id(point)] for point in points if id(point) in index]


class ExitBranch(nn.Sequential):
    """Pool to at most 8x8, one 3x3 conv, global pooling and a linear layer: cheap next to the backbone it taps."""

    def __init__(self, channels: int, width: int, n_groups: int, size: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(min(8, size)), nn.Conv2d(channels, width, 3, padding=1, bias=False),
                         nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, n_groups))


class ExitNet(nn.Module):
    """`base` (a full-view net of the base's arch, same layer names as the base so its weights load as they are) with a
    coarse exit after each exit point in `after` (`exit_points`). forward gives every exit's logits side by side, the
    fine class's last: the layout of training.Heads(self.head_sizes). With `frozen`, the base's weights and batch-norm
    statistics stay as loaded and only the exits learn, so the final exit is the base itself. `base_arch` is the arch
    record of a base other than convnet (None: a ConvNet of `width`)."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, width: int, after: list[int],
                 n_groups: list[int], exit_width: int, frozen: bool, base_arch: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.base = ConvNet(in_shape, n_classes, width) if base_arch is None else backbones.build(base_arch)
        if base_arch is not None:
            self._check_layers(tuple(in_shape))
        taps = exit_points(self.base)
        if not after or after[-1] >= len(taps) or after[0] < 1:
            raise AuxcutError(f"exits.after: {after} must name exit points 1..{len(taps) - 1} of this net "
                              f"({'conv layers' if base_arch is None else base_arch['name'] + ' blocks'})")
        self.taps = [taps[a - 1] for a in after]
        shapes = self._tap_shapes(tuple(in_shape))
        self.exits = nn.ModuleList(ExitBranch(c, exit_width, g, size) for (c, size), g in zip(shapes, n_groups))
        self.frozen = frozen
        if frozen:
            self.base.requires_grad_(False)
        self.head_sizes = (*n_groups, n_classes)
        self.arch = {"kind": "exits", "in_shape": list(in_shape), "n_classes": n_classes, "width": width,
                     "after": list(after), "n_groups": list(n_groups), "exit_width": exit_width, "frozen": frozen}
        if base_arch is not None:  # a convnet's record stays as it was, so its checkpoints do too
            self.arch["base"] = base_arch

    @torch.no_grad()
    def _check_layers(self, in_shape: tuple[int, int, int]) -> None:
        """One line when the base's forward is more than its layers in turn (DenseNet's closing ReLU, a transformer):
        the exits would tap maps the net never makes."""
        training_mode, x = self.base.training, torch.randn(2, *in_shape)
        self.base.eval()
        h = self.base.view(x)
        try:
            for layer in layers(self.base):
                h = layer(h)
            same = h.shape == self.base.features(self.base.view(x)).shape and torch.allclose(
                h, self.base.features(self.base.view(x)), atol=1e-5)
        except RuntimeError:
            same = False
        self.base.train(training_mode)
        if not same:
            raise AuxcutError(f"train_exits: early exits cannot attach to a {self.base.arch['name']} base (its forward "
                              f"is not its layers in turn); use a convnet, ResNet, MobileNet, EfficientNet, AlexNet or "
                              f"VGG base")

    @torch.no_grad()
    def _tap_shapes(self, in_shape: tuple[int, int, int]) -> list[tuple[int, int]]:
        # in eval mode: batch norm takes a single image there, and the base's statistics are loaded afterwards anyway
        training_mode, h, out = self.base.training, self.base.view(torch.zeros(1, *in_shape)), []
        self.base.eval()
        for i, layer in enumerate(layers(self.base)):
            h = layer(h)
            if i in self.taps:
                out.append((h.shape[1], h.shape[2]))
        self.base.train(training_mode)
        return out

    def train(self, mode: bool = True) -> "ExitNet":
        super().train(mode)
        if self.frozen:
            self.base.eval()  # batch norm keeps the base's statistics
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.forward_to(x, len(self.exits)), 1)

    def forward_to(self, x: torch.Tensor, stop: int) -> list[torch.Tensor]:
        """The logits of exits 0..stop (stop == number of exits: all of them and the final one): the work done for an
        image answered at exit `stop`, which passed every exit before it."""
        outs: list[torch.Tensor] = []
        h = self.base.view(x)
        for i, layer in enumerate(layers(self.base)):
            h = layer(h)
            if i in self.taps:
                outs.append(self.exits[self.taps.index(i)](h))
                if len(outs) > stop:
                    return outs
        outs.append(self.base.classifier(h))
        return outs


def build(arch: dict[str, Any]) -> ExitNet:
    """An empty ExitNet from a checkpoint's arch (training.load_checkpoint's builder)."""
    return ExitNet(tuple(arch["in_shape"]), int(arch["n_classes"]), int(arch["width"]), list(arch["after"]),
                   list(arch["n_groups"]), int(arch["exit_width"]), bool(arch["frozen"]), arch.get("base"))


def from_base(base: nn.Module, after: list[int], n_groups: list[int], exit_width: int, frozen: bool) -> ExitNet:
    other = "name" in base.arch  # only convnet's arch record has no name (auxcut.nets.backbones.build)
    net = ExitNet(tuple(base.arch["in_shape"]), int(base.arch["n_outputs"]), 0 if other else int(base.arch["width"]),
                  after, n_groups, exit_width, frozen, base.arch if other else None)
    net.base.load_state_dict(base.state_dict())
    return net


def confusion_clusters(weights: np.ndarray, n_groups: int, seed: int) -> list[list[int]]:
    """The classes in `n_groups` clusters of the confusion graph (symmetric weights, as confusion.confusion_weights):
    spectral clustering on the weights as the affinity, so the classes the base confuses with each other share a
    group and a coarse exit is left the confusions that are rare. Groups in order of their first class, so the same
    clusters give the same groups whatever numbers the clustering drew. A class the base never confuses with another
    joins whichever group the clustering gives it (scikit-learn warns then that the graph is not fully connected)."""
    from sklearn.cluster import SpectralClustering

    check_n_groups(n_groups, len(weights))
    labels = SpectralClustering(n_groups, affinity="precomputed", random_state=seed).fit_predict(weights)
    return [np.flatnonzero(labels == label).tolist() for label in dict.fromkeys(labels)]


def resolve_groups(spec: str | list[list[int]], classes: list[str], tree: ClassTree, n_exits: int,
                   weights: np.ndarray | None = None, n_groups: int | None = None, seed: int | None = None
                   ) -> list[np.ndarray]:
    """Per coarse exit, (K,) each class's group: the tree of cuts down to level i at exit i (capped at the tree's
    depth), the class-name prefix, `n_groups` confusion clusters (confusion_clusters of the val confusion `weights`,
    seeded), or the given partition. A grouping that does not cover the classes is an error."""
    if spec == "tree":
        if tree.names != list(classes):  # a cut over discovered fine labels (confusion.labels), or a stale one
            raise AuxcutError(f"exits.groups: tree needs data/cut.json over the data's {len(classes)} given classes, "
                              f"it splits {len(tree.names)} other nodes (confusion.labels, or re-run maxcut); "
                              f"use prefix or an explicit partition")
        return [tree.level_groups(i + 1) for i in range(n_exits)]
    if spec == "clusters":
        if weights is None or n_groups is None or seed is None:
            raise ValueError("exits.groups clusters needs the val confusion weights, n_groups and a seed")
        partition = confusion_clusters(weights, n_groups, seed)
    else:
        partition = prefix_groups(classes) if spec == "prefix" else spec
    check_groups(partition, classes, "exits.groups" + (f" {spec}" if isinstance(spec, str) else ""))
    group_of = np.empty(len(classes), dtype=np.int64)
    for g, members in enumerate(partition):
        group_of[members] = g
    return [group_of] * n_exits


def group_names(group_of: np.ndarray, classes: list[str]) -> list[str]:
    return ["+".join(classes[c] for c in np.flatnonzero(group_of == g)) for g in range(int(group_of.max()) + 1)]


@torch.no_grad()
def flops_per_exit(net: ExitNet) -> list[int]:
    """FLOPs to answer one image at each coarse exit, then at the final exit (every exit on the way included)."""
    net = net.eval()
    x = torch.zeros(1, *net.arch["in_shape"])
    out = []
    for stop in range(len(net.exits) + 1):
        counter = FlopCounterMode(display=False)
        with counter:
            net.forward_to(x, stop)
        out.append(int(counter.get_total_flops()))
    return out


@torch.no_grad()
def flops(net: nn.Module, in_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of one image (the plain base CNN: the full-depth cost every curve is relative to)."""
    counter = FlopCounterMode(display=False)
    with counter:
        net.eval()(torch.zeros(1, *in_shape))
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class ExitOutputs:
    """What the exits say about a set of images: each coarse exit's probabilities and the final fine ones."""

    coarse: list[np.ndarray]  # per exit, (N, groups)
    fine: np.ndarray  # (N, K)

    @classmethod
    def split(cls, probs: np.ndarray, head_sizes: tuple[int, ...]) -> "ExitOutputs":
        *coarse, fine = training.Heads(head_sizes).split_probs(probs)
        return cls(coarse, fine)

    def rows(self, index: np.ndarray) -> "ExitOutputs":
        return ExitOutputs([p[index] for p in self.coarse], self.fine[index])


def answer(outputs: ExitOutputs, thresholds: tuple[float, ...]) -> np.ndarray:
    """(N,) the exit each image is answered at: the first whose top probability reaches its threshold, else the
    final one (index len(thresholds))."""
    taken = np.full(len(outputs.fine), len(thresholds))
    for e in reversed(range(len(thresholds))):
        taken[outputs.coarse[e].max(1) >= thresholds[e]] = e
    return taken


def sweep(outputs: ExitOutputs, labels: np.ndarray, groups: list[np.ndarray], exit_flops: list[int],
          full_flops: int, thresholds: list[float]) -> pd.DataFrame:
    """One row per combination of thresholds (each exit: one of `thresholds`, or never): the exits' thresholds,
    accuracy (a coarse answer is right when the class is in the group it names), the share of coarse answers and of
    those right, the fine answers' accuracy, the share of all images given their right class (what specificity
    costs: the full net's accuracy when no image leaves early), and the mean FLOPs per image relative to the plain
    base."""
    right = [groups[e][labels] == p.argmax(1) for e, p in enumerate(outputs.coarse)] + [outputs.fine.argmax(1) == labels]
    right = np.column_stack(right)
    cost = np.asarray(exit_flops, dtype=np.float64) / full_flops
    rows = []
    for combo in itertools.product([*thresholds, np.inf], repeat=len(outputs.coarse)):
        taken = answer(outputs, combo)
        is_right = right[np.arange(len(taken)), taken]
        coarse = taken < len(combo)
        rows.append({**{f"threshold_{e + 1}": (None if np.isinf(t) else float(t)) for e, t in enumerate(combo)},
                     "accuracy": float(is_right.mean()),
                     "coarse_share": float(coarse.mean()),
                     "coarse_right": float(is_right[coarse].mean()) if coarse.any() else None,
                     "fine_accuracy": float(is_right[~coarse].mean()) if (~coarse).any() else None,
                     "fine_right": float((is_right & ~coarse).mean()),  # images named by their class, and rightly
                     "flops": float(cost[taken].mean())})
    return pd.DataFrame(rows)


def frontier(curve: pd.DataFrame) -> pd.DataFrame:
    """The rows no cheaper row beats on accuracy: the accuracy-compute curve."""
    ordered = curve.sort_values(["flops", "accuracy"], ascending=[True, False])
    best = ordered["accuracy"].cummax()
    keep = ordered["accuracy"] >= best.shift(fill_value=-1.0) + 1e-12
    return ordered[keep.to_numpy()].reset_index(drop=True)


def operating_point(val_curve: pd.DataFrame, full_accuracy: float) -> int:
    """The row (same order as the sweep) picked on val: the cheapest whose accuracy is within AIM_ACCURACY_DROP of the
    full-depth fine accuracy and whose coarse answers are right at least AIM_COARSE_RIGHT of the time (none coarse:
    the full net itself always qualifies)."""
    ok = (val_curve["accuracy"] >= full_accuracy - AIM_ACCURACY_DROP - 1e-12) & (
        val_curve["coarse_right"].isna() | (val_curve["coarse_right"].fillna(0) >= AIM_COARSE_RIGHT))
    candidates = val_curve[ok]
    return int(candidates.sort_values(["flops", "accuracy"], ascending=[True, False]).index[0])


def plot_curve(test_curve: pd.DataFrame, point: int, full_accuracy: float, title: str):
    """Accuracy against mean FLOPs (every threshold combination, the frontier, the point picked on val), and the
    accuracy-specificity trade-off along the frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = frontier(test_curve)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.scatter(100 * test_curve["flops"], 100 * test_curve["accuracy"], s=8, color="0.75", label="threshold combinations")
    ax.plot(100 * best["flops"], 100 * best["accuracy"], "-o", ms=3, color="C0", label="frontier (test)")
    ax.axhline(100 * full_accuracy, color="C2", lw=1, label="full-depth fine accuracy")
    ax.axhline(100 * (full_accuracy - AIM_ACCURACY_DROP), color="C2", lw=1, ls="--", label="-1 point")
    ax.axvline(100 * AIM_FLOPS, color="C3", lw=1, ls=":", label=f"{AIM_FLOPS:.0%} of the FLOPs")
    row = test_curve.loc[point]
    ax.plot(100 * row["flops"], 100 * row["accuracy"], "*", ms=14, color="C1", label="picked on val")
    ax.set(xlabel="mean FLOPs per image (% of the base)", ylabel="accuracy (%; coarse right counts)", title=title)
    ax.legend(fontsize=7, loc="lower right")
    share = 100 * best["coarse_share"]
    bx.plot(share, 100 * best["coarse_right"].astype(float), "-o", ms=3, color="C1", label="coarse answers right")
    bx.plot(share, 100 * best["accuracy"], "-o", ms=3, color="C0", label="all answers right")
    bx.axhline(100 * AIM_COARSE_RIGHT, color="C3", lw=1, ls=":", label=f"{AIM_COARSE_RIGHT:.0%}")
    bx.set(xlabel="coarse answers (% of images)", ylabel="%", title="accuracy-specificity trade-off (frontier)")
    bx.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def between_groups(weights: np.ndarray, group_of: np.ndarray) -> float:
    """The share of the confusion weight between classes of different groups: the confusions a coarse exit is left
    to tell apart (a max-cut makes it as large as it can, confusion clusters as small)."""
    total = float(np.triu(weights, 1).sum())
    return float(np.triu(weights * (group_of[:, None] != group_of[None, :]), 1).sum()) / total if total else 0.0


def plot_groups(weights: np.ndarray, groups: list[np.ndarray], classes: list[str], after: list[int], title: str):
    """Each coarse exit's groups drawn on the val confusion graph (auxcut.method.maxcut.plot's drawing of a cut),
    with the share of the confusion weight left between groups."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from auxcut.method.maxcut.plot import draw_groups

    fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 7), squeeze=False)
    for ax, a, group_of in zip(axes[0], after, groups):
        draw_groups(ax, weights, group_of, classes, f"exit after layer {a}: {int(group_of.max()) + 1} groups, "
                                                    f"{between_groups(weights, group_of):.0%} of the confusion between")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def aim(point: dict[str, Any], full_accuracy: float) -> dict[str, Any]:
    """Issue 11's aim at an operating point, on test: within a point of the full-depth fine accuracy, at most 60% of
    its FLOPs, coarse answers right at least 90% of the time."""
    coarse_right = point["coarse_right"]
    checks = {"accuracy_within_1_point": point["accuracy"] >= full_accuracy - AIM_ACCURACY_DROP,
              "flops_at_most_60_percent": point["flops"] <= AIM_FLOPS,
              "coarse_right_at_least_90_percent": coarse_right is None or not np.isfinite(coarse_right)
              or coarse_right >= AIM_COARSE_RIGHT}
    return {**{k: bool(v) for k, v in checks.items()}, "met": bool(all(checks.values()))}


@dataclass(frozen=True)
class Scored:
    """The threshold sweep on val and on test, the final exit alone on each, and the row picked on val."""

    curves: dict[str, pd.DataFrame]  # "val", "test": sweep's rows
    full: dict[str, float]  # the final exit's fine accuracy (the base itself with a frozen backbone)
    point: int  # operating_point on val, a row of both curves
    exit_flops: list[int]  # flops_per_exit
    full_flops: int  # the plain base's

    @property
    def picked(self) -> dict[str, Any]:
        return self.curves["test"].loc[self.point].to_dict()

    def table(self) -> pd.DataFrame:
        """plots/exits/curve.csv: the test curve beside the val columns the point was picked on."""
        return self.curves["test"].join(self.curves["val"][["accuracy", "coarse_right", "flops"]].add_prefix("val_"))


def score(outputs: ExitOutputs, labels: np.ndarray, splits: dict[str, np.ndarray], groups: list[np.ndarray],
          exit_flops: list[int], full_flops: int, thresholds: list[float]) -> Scored:
    """Sweep the thresholds on the val and test rows (`splits`), and pick the operating point on val."""
    curves, full = {}, {}
    for split in ("val", "test"):
        rows = splits[split]
        curves[split] = sweep(outputs.rows(rows), labels[rows], groups, exit_flops, full_flops, thresholds)
        full[split] = float((outputs.fine[rows].argmax(1) == labels[rows]).mean())
    return Scored(curves, full, operating_point(curves["val"], full["val"]), exit_flops, full_flops)


def summary(scored: Scored, outputs: ExitOutputs, labels: np.ndarray, test: np.ndarray, groups: list[np.ndarray],
            classes: list[str], after: list[int], fitted: training.FitResult, base: nn.Module,
            base_probs: np.ndarray) -> dict[str, Any]:
    """metrics/train_exits.json past its params: each exit's groups, cost and accuracy on test, the net's training,
    the base's and the final exit's accuracy, the operating point picked on val with its test columns, the aim there,
    and the test frontier."""
    picked, exit_flops, full_flops = scored.picked, scored.exit_flops, scored.full_flops
    return {
        "exits": [{"after_layer": a, "groups": group_names(g, classes),
                   "flops": exit_flops[e], "flops_ratio": exit_flops[e] / full_flops,
                   "test_accuracy": float((outputs.coarse[e][test].argmax(1) == g[labels[test]]).mean())}
                  for e, (a, g) in enumerate(zip(after, groups))],
        "full_flops": full_flops,
        "final_flops_ratio": exit_flops[-1] / full_flops,  # every exit is passed on the way to the fine answer
        "exit_parameters": count_parameters(fitted.model.exits),
        "base_parameters": count_parameters(base),
        "epochs_run": len(fitted.history),
        "best_epoch": fitted.best_epoch,
        "base_accuracy": float((base_probs[test].argmax(1) == labels[test]).mean()),
        "full_accuracy": scored.full,  # the final exit alone (the base itself with a frozen backbone)
        "operating_point": {**{k: v for k, v in picked.items() if k.startswith("threshold_")}, "picked_on": "val",
                            "test": {k: picked[k] for k in ("accuracy", "coarse_share", "coarse_right",
                                                            "fine_accuracy", "fine_right", "flops")}},
        "aim": aim(picked, scored.full["test"]),
        "frontier": frontier(scored.curves["test"]).to_dict(orient="records"),
    }
