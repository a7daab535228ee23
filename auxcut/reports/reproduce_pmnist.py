"""The missing-feature paper on its own benchmark (issue 24): partial MNIST with the paper's net, 3 seeds, two
protocols, beside the published numbers; reports/reproduce-pmnist.md and .json.

    auxcut study pmnist --seeds 0 1 2                    # the full 60,000 / 10,000 images: about 5 minutes a seed
    auxcut study pmnist --seeds 0 1 --max-per-class 50 --epochs 2 --out /tmp/quick   # a smoke run

What is run, per seed, as Milošević & Racković (2019) and their script (github.com/nmilosev/negative-learning,
`mnist.py`, the PyTorch MNIST example's training) did:
- `plain`: pmnist_net (two 5x5 convs of 10 and 20 channels, 2x2 max pooling, fc 320 -> 50 -> 10) trained with SGD
  (lr 0.01, momentum 0.5, batch 64) for 10 epochs on the unmodified train images;
- its conv layers frozen, fresh fully connected layers (50 hidden units) trained the same way on its last conv map
  (20 x 4 x 4) as it is (`spatial_present`, the control the paper lacks), inverted (`spatial_missing`, the paper's
  model) or both (`spatial_both`): auxcut.variants.missing.SpatialMissingHead;
- for contrast, auxcut's default heads on the pooled 50-unit embedding (`pooled_*`: scikit-learn MLPs, early-stopped,
  so they have no epochs: both protocols read their one model).
Each is scored on the five test sets: the 10,000 test images unmodified and with the four cuts
(auxcut.variants.occlusion, the paper's sets pixel for pixel at 28 x 28).

Two protocols:
- `paper`: the slide's table reports the highest accuracy each test set reached over the epochs (optimistic: the
  epoch is chosen on the test set, per set);
- `honest`: one epoch per model, the one of lowest loss on a val split carved from train (stratified, seeded).
Both train on the same images: the 60,000 less the val split (a departure from the paper, which has no val split).

Departures from the paper and its script (measured where this command can vary them): ReLU maps are bounded by a
train quantile before inversion (`--activations` runs the paper's bounded sigmoid, ReLU6 and tanh as well); no dropout;
the whole conv stack frozen (biases too); the hidden layer uses the base's activation.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from auxcut import AuxcutError
from auxcut.core.io import atomic_path
from auxcut.data import mnist
from auxcut.nets import backbones, embedding, training
from auxcut.reports.pages import _cell, mean_interval
from auxcut.variants import missing, occlusion
from auxcut.variants.robustness import PUBLISHED_ACCURACY, PUBLISHED_DELTA

SETS = ("none", *occlusion.CUTS)  # unmodified, then the paper's four cuts
CUTS = tuple(occlusion.CUTS)
# The slide (the paper's table): the missing-feature model's best accuracy per test set (robustness's anchor), and its
# delta over the plain net, in points. The authors' repository log (mnist.txt: negative minus normal CNN) gives the
# other deltas, which robustness's aim uses.
SLIDE_ACCURACY = PUBLISHED_ACCURACY
SLIDE_DELTA = {"none": 0.31, "horizontal": 4.45, "vertical": 9.05, "diagonal": 6.36, "triple": 6.62}
LOG_DELTA = PUBLISHED_DELTA
WITHIN = 1.0  # the aim: unmodified accuracy within this many points of the slide's 98.55
PROTOCOLS = ("paper", "honest")


@dataclass
class Settings:
    """The paper's training (its script's, the PyTorch MNIST example's), and this reproduction's own choices."""

    epochs: int = 10  # the script's, for the net and for the heads
    lr: float = 0.01
    momentum: float = 0.5
    batch_size: int = 64
    hidden: int = 50  # the heads' hidden units: the net's fc 320 -> 50
    val_per_class: int = 500  # carved from train for the honest protocol (5,000 of the 60,000)
    max_per_class: int | None = None  # train images per digit (None: all), for quick runs
    test_images: int | None = None  # the first this many official test images (None: all 10,000), for quick runs
    cap_quantile: float = 0.99  # a ReLU map's bound per unit (auxcut's; the paper's bounded activations need none)
    pooled_max_iter: int = 200  # the pooled heads' most epochs (scikit-learn MLP, early-stopped)


@dataclass
class Curve:
    """One predictor's test accuracy per set after each epoch, and the epoch the honest protocol keeps."""

    accuracy: dict[str, list[float]] = field(default_factory=dict)  # set -> accuracy per epoch
    val_epoch: int = 1  # 1-based: the epoch of lowest val loss

    def score(self, protocol: str) -> dict[str, float]:
        if protocol == "paper":
            return {s: max(a) for s, a in self.accuracy.items()}
        return {s: a[self.val_epoch - 1] for s, a in self.accuracy.items()}


def split(labels: np.ndarray, val_per_class: int, max_per_class: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and val rows of the official train part: `val_per_class` of each digit to val, drawn with the seed; of
    the rest, at most `max_per_class` per digit to train."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        if len(rows) <= val_per_class:
            raise AuxcutError(f"--val-per-class {val_per_class}: digit {digit} has only {len(rows)} train images")
        val.append(rows[:val_per_class])
        train.append(rows[val_per_class:][:max_per_class])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def test_sets(images: np.ndarray) -> dict[str, np.ndarray]:
    """The five partial-MNIST test sets: unmodified and each cut (uint8, N x 1 x 28 x 28)."""
    side = images.shape[-1]
    return {"none": images, **{name: occlusion.occlude(images, cut(side, side)) for name, cut in occlusion.CUTS.items()}}


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    return iter(torch.randperm(n, generator=generator).split(batch_size))


def _normalised(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """All of `images` as one float tensor, normalised as training normalises each batch (held for every epoch)."""
    return torch.cat(list(training.normalised_batches(images, mean, std, batch_size=8192)))


@torch.no_grad()
def _accuracy_and_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    net.eval()
    logits = torch.cat([net(part) for part in x.split(2048)])
    return float((logits.argmax(1) == y).float().mean()), float(nn.functional.cross_entropy(logits, y))


def train_plain(net: nn.Module, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                settings: Settings, seed: int, on_epoch: Callable[[int, nn.Module], None]) -> tuple[nn.Module, list[dict]]:
    """The script's training: SGD with momentum on the cross-entropy, a fixed number of epochs, every epoch handed to
    `on_epoch`. Returns the net with the weights of the epoch of lowest val loss, and each epoch's val loss and
    accuracy."""
    optimizer = torch.optim.SGD(net.parameters(), lr=settings.lr, momentum=settings.momentum)
    order = torch.Generator().manual_seed(seed)
    history, best = [], (math.inf, None)
    for epoch in range(1, settings.epochs + 1):
        net.train()
        for rows in _batches(len(y), settings.batch_size, order):
            loss = nn.functional.cross_entropy(net(x[rows]), y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        val_acc, val_loss = _accuracy_and_loss(net, x_val, y_val)
        if not math.isfinite(val_loss):
            raise AuxcutError(f"pmnist reproduction: the plain net diverged at epoch {epoch}")
        history.append({"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc})
        if val_loss < best[0]:
            best = (val_loss, {k: v.clone() for k, v in net.state_dict().items()})
        on_epoch(epoch, net)
    net.load_state_dict(best[1])
    return net, history


@dataclass
class Mnist:
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    @classmethod
    def read(cls, folder: Path, test_images: int | None = None) -> "Mnist":
        """The official parts; the first `test_images` of the test part (None: all)."""
        images, labels = mnist.read(folder, "t10k")
        return cls(*mnist.read(folder, "train"), images[:test_images], labels[:test_images])


def run_seed(data: Mnist, seed: int, activation: str, settings: Settings,
             say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every predictor of one seed: its per-epoch test accuracy on each set and its val-chosen epoch."""
    train_images, train_labels = data.train_images, data.train_labels
    test_images, test_labels = data.test_images, data.test_labels
    train, val = split(train_labels, settings.val_per_class, settings.max_per_class, seed)
    mean, std = training.channel_stats(train_images, train)
    sets = test_sets(test_images)
    y_test = torch.as_tensor(test_labels)
    x, y = _normalised(train_images[train], mean, std), torch.as_tensor(train_labels[train])
    x_val, y_val = _normalised(train_images[val], mean, std), torch.as_tensor(train_labels[val])
    x_sets = {name: _normalised(images, mean, std) for name, images in sets.items()}
    name = next(n for n, a in backbones.PMNIST_NAMES.items() if a == activation)
    torch.manual_seed(seed)
    net = backbones.make(name, (1, 28, 28), 10, width=0)
    curves: dict[str, Curve] = {"plain": Curve({s: [] for s in SETS})}

    def score_plain(epoch: int, model: nn.Module) -> None:
        for s in SETS:
            curves["plain"].accuracy[s].append(_accuracy_and_loss(model, x_sets[s], y_test)[0])

    started = time.perf_counter()
    net, history = train_plain(net, x, y, x_val, y_val, settings, seed, score_plain)
    curves["plain"].val_epoch = 1 + int(np.argmin([h["val_loss"] for h in history]))
    say(f"seed {seed} {name}: plain net trained in {time.perf_counter() - started:.0f} s, val epoch "
        f"{curves['plain'].val_epoch}, unmodified test {curves['plain'].score('honest')['none']:.4f}")
    device = torch.device("cpu")
    maps = {key: embedding.last_map(net, images, mean, std, batch_size=1024, device=device)
            for key, images in (("train", train_images[train]), ("val", train_images[val]), *sets.items())}
    for kind in missing.KINDS:
        curve = curves[f"spatial_{kind}"] = Curve({s: [] for s in SETS})
        head = missing.SpatialMissingHead(kind, activation, 10, settings.hidden, settings.lr, settings.momentum, 0.0,
                                          settings.epochs, settings.batch_size, settings.cap_quantile, seed)

        def score_head(epoch: int, fitted: missing.SpatialMissingHead, curve: Curve = curve) -> None:
            for s in SETS:
                curve.accuracy[s].append(float((fitted.predict_proba(maps[s]).argmax(1) == test_labels).mean()))

        head.fit(maps["train"], train_labels[train], maps["val"], train_labels[val], on_epoch=score_head)
        curve.val_epoch = head.best_epoch
    pooled = {key: embedding.embed(net, images, mean, std, batch_size=1024, device=device)
              for key, images in (("train", train_images[train]), *sets.items())}
    for kind in missing.KINDS:
        head = missing.MissingFeatureHead(kind, 10, settings.hidden, 1e-4, settings.pooled_max_iter,
                                          settings.cap_quantile, seed).fit(pooled["train"], train_labels[train])
        curves[f"pooled_{kind}"] = Curve({s: [float((head.predict_proba(pooled[s]).argmax(1) == test_labels).mean())]
                                          for s in SETS})
    say(f"seed {seed} {name}: every head trained, {time.perf_counter() - started:.0f} s in all")
    return {"seed": seed, "activation": activation, "arch": name, "train_images": int(len(train)),
            "val_images": int(len(val)), "test_images": int(len(test_labels)), "plain_history": history,
            "curves": {k: asdict(c) for k, c in curves.items()}, "seconds": round(time.perf_counter() - started, 1)}


def _curves(run: dict[str, Any]) -> dict[str, Curve]:
    return {k: Curve(**c) for k, c in run["curves"].items()}


def _points(value: dict[str, Any]) -> dict[str, Any]:
    """A mean_interval of fractions in points."""
    return {"mean": None if value["mean"] is None else 100 * value["mean"],
            "ci": None if value["ci"] is None else [100 * v for v in value["ci"]], "n": value["n"]}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per activation and protocol: each predictor's accuracy per set, its delta over the plain net, and
    spatial missing minus spatial present, each as a mean with a t-interval over the seeds, in points; and the aims."""
    out: dict[str, Any] = {}
    for activation in sorted({r["activation"] for r in runs}):
        mine = [_curves(r) for r in runs if r["activation"] == activation]
        block: dict[str, Any] = {"seeds": sorted(r["seed"] for r in runs if r["activation"] == activation)}
        for protocol in PROTOCOLS:
            scores = [{p: c.score(protocol) for p, c in curves.items()} for curves in mine]
            predictors = list(scores[0])
            block[protocol] = {
                "accuracy": {p: {s: _points(mean_interval([r[p][s] for r in scores])) for s in SETS} for p in predictors},
                "delta_over_plain": {p: {s: _points(mean_interval([r[p][s] - r["plain"][s] for r in scores]))
                                         for s in SETS} for p in predictors if p != "plain"},
                "missing_minus_present": {s: _points(mean_interval(
                    [r["spatial_missing"][s] - r["spatial_present"][s] for r in scores])) for s in SETS},
            }
        block["aim"] = aims(block)
        out[activation] = block
    return out


def _above(value: dict[str, Any], sign: float) -> bool:
    """The interval excludes zero on the side of `sign`."""
    return value["ci"] is not None and (value["ci"][0] > 0 if sign > 0 else value["ci"][1] < 0)


def aims(block: dict[str, Any]) -> dict[str, Any]:
    """The issue's aims for the paper's model (spatial_missing): its unmodified accuracy within WITHIN points of the
    slide's; on each cut the slide's delta sign, with an interval that excludes zero, under the paper's protocol; and
    whether that survives the honest protocol."""
    unmodified = block["paper"]["accuracy"]["spatial_missing"]["none"]["mean"]
    per_cut = {}
    for cut in CUTS:
        sign = math.copysign(1.0, SLIDE_DELTA[cut])
        per_cut[cut] = {protocol: _above(block[protocol]["delta_over_plain"]["spatial_missing"][cut], sign)
                        for protocol in PROTOCOLS}
    return {"unmodified": {"measured": unmodified, "published": SLIDE_ACCURACY["none"],
                           "met": abs(unmodified - SLIDE_ACCURACY["none"]) <= WITHIN},
            "cuts_paper_protocol": {c: v["paper"] for c, v in per_cut.items()},
            "cuts_honest_protocol": {c: v["honest"] for c, v in per_cut.items()},
            "met": abs(unmodified - SLIDE_ACCURACY["none"]) <= WITHIN and all(v["paper"] for v in per_cut.values()),
            "survives_honest": all(v["honest"] for v in per_cut.values())}


def _points_cell(value: dict[str, Any], signed: bool = False) -> str:
    """A mean [interval] already in points, to two decimals, as the study's pages write cells."""
    return _cell(value, signed, scale=1, digits=2)


def _yes(flag: bool) -> str:
    return "met" if flag else "not met"


def render(summary: dict[str, Any], settings: Settings, runs: list[dict[str, Any]], command: str) -> str:
    """reports/reproduce-pmnist.md from the summary."""
    first = runs[0]
    lines = [
        "# Reproducing the missing-feature paper on partial MNIST",
        "",
        f"Generated by `{command}` (auxcut.reports.reproduce_pmnist); every number below is a mean over the seeds "
        f"with a 95% t-interval, in accuracy points, on {first['test_images']:,} of the official 10,000 MNIST test "
        "images, unmodified (`none`) and with the paper's four cuts.",
        "",
        f"- Train: {first['train_images']:,} of the official 60,000 train images; val: {first['val_images']:,} carved "
        "from them per seed (stratified) for the honest protocol. Training as the authors' script: SGD, lr "
        f"{settings.lr}, momentum {settings.momentum}, batch {settings.batch_size}, {settings.epochs} epochs, for the "
        f"net and for the heads ({settings.hidden} hidden units).",
        "- Predictors: `plain` (pmnist_net); `spatial_missing`, the paper's model (frozen convs, fresh fully "
        "connected layers on the inverted last conv map, 20 x 4 x 4); `spatial_present`, the control the paper "
        "lacks (the same without the inversion); `spatial_both`; and auxcut's `pooled_*` heads on the 50-unit "
        "embedding, for contrast (early-stopped scikit-learn MLPs: one model, the same under both protocols).",
        "- Protocols: **paper** = the highest accuracy each test set reached over the epochs, as the slide's table "
        "reports (optimistic: chosen on the test set); **honest** = the epoch of lowest val loss, one per model.",
        "- Published: the slide gives the missing-feature model's accuracy "
        + " / ".join(f"{SLIDE_ACCURACY[s]:.2f}" for s in SETS)
        + " and its delta over the plain net " + " / ".join(f"{SLIDE_DELTA[s]:+.2f}" for s in SETS)
        + "; the authors' repository log (mnist.txt, negative minus normal CNN) gives "
        + " / ".join(f"{LOG_DELTA[c]:+.2f}" for c in CUTS) + " on the cuts. **The aim uses the slide's**, the paper's "
        "table: the slide's sign on every cut (all positive) with an interval that excludes zero.",
        "",
    ]
    for activation, block in summary.items():
        aim = block["aim"]
        lines += [f"## pmnist_net, {activation} ({len(block['seeds'])} seeds: {', '.join(map(str, block['seeds']))})",
                  ""]
        if activation == "relu":
            lines += ["A ReLU map has no upper bound: auxcut bounds each unit by its train "
                      f"{settings.cap_quantile} quantile before the inversion (the script inverts the raw map).", ""]
        for protocol in PROTOCOLS:
            acc, delta = block[protocol]["accuracy"], block[protocol]["delta_over_plain"]
            lines += [f"### {protocol} protocol", "", "| predictor | " + " | ".join(SETS) + " |",
                      "|---|" + "---|" * len(SETS)]
            for predictor, row in acc.items():
                lines.append(f"| {predictor} | " + " | ".join(_points_cell(row[s]) for s in SETS) + " |")
            lines.append("| slide (missing-feature model) | " + " | ".join(f"{SLIDE_ACCURACY[s]:.2f}" for s in SETS)
                         + " |")
            lines += ["", "Delta over the plain net, and the paper's model against its control:", "",
                      "| | " + " | ".join(SETS) + " |", "|---|" + "---|" * len(SETS)]
            for predictor, row in delta.items():
                lines.append(f"| {predictor} - plain | " + " | ".join(_points_cell(row[s], True) for s in SETS) + " |")
            lines.append("| spatial_missing - spatial_present | "
                         + " | ".join(_points_cell(block[protocol]["missing_minus_present"][s], True) for s in SETS)
                         + " |")
            lines.append("| slide: missing - plain | " + " | ".join(f"{SLIDE_DELTA[s]:+.2f}" for s in SETS) + " |")
            lines.append("| authors' log: missing - plain | - | " + " | ".join(f"{LOG_DELTA[c]:+.2f}" for c in CUTS)
                         + " |")
            lines.append("")
        u = aim["unmodified"]
        paper_cuts = [c for c, ok in aim["cuts_paper_protocol"].items() if ok]
        honest_cuts = [c for c, ok in aim["cuts_honest_protocol"].items() if ok]
        gains = block["paper"]["delta_over_plain"]
        owner = []
        for cut in CUTS:  # paper protocol, the one the published gain was measured under
            verdict = ("the missing features'" if _above(block["paper"]["missing_minus_present"][cut], 1.0) else
                       "the retraining's (present gains too; missing adds nothing over it)"
                       if _above(gains["spatial_present"][cut], 1.0) else "no gain to attribute")
            owner.append(f"{cut}: {verdict}")
        lines += [
            "### Aim",
            "",
            f"- Unmodified accuracy of the paper's model within {WITHIN:.0f} point of {u['published']:.2f} (paper "
            f"protocol): {u['measured']:.2f}, **{_yes(u['met'])}**.",
            f"- The slide's positive delta on each cut with an interval above zero, paper protocol: "
            f"{len(paper_cuts)} of {len(CUTS)} ({', '.join(paper_cuts) or 'none'}): **{_yes(aim['met'])}**.",
            f"- Under the honest protocol: {len(honest_cuts)} of {len(CUTS)} ({', '.join(honest_cuts) or 'none'}): "
            f"the result **{'survives' if aim['survives_honest'] else 'does not survive'}**.",
            "- Whose gain it is, cut by cut (spatial_missing - spatial_present above zero: the missing features'; "
            "else, spatial_present - plain above zero: the retraining's): " + "; ".join(owner) + ".",
            "",
        ]
    lines += ["Per seed: " + "; ".join(f"{r['activation']} seed {r['seed']}: {r['seconds']:.0f} s, plain val epoch "
                                        f"{r['curves']['plain']['val_epoch']}" for r in runs) + ".", ""]
    return "\n".join(lines)


def reproduce(folder: Path, seeds: list[int], activations: list[str], settings: Settings, out: Path, command: str,
              say: Callable[[str], None] = print) -> Path:
    """Run every (activation, seed), then write out/reproduce-pmnist.md and .json; returns the .md's path."""
    for activation in activations:
        if activation not in backbones.PMNIST_ACTIVATIONS:
            raise AuxcutError(f"--activations: unknown {activation!r}; expected some of "
                              f"{', '.join(backbones.PMNIST_ACTIVATIONS)}")
    if not folder.is_dir():
        raise AuxcutError(f"--mnist {folder}: not a folder; expected the one with the official MNIST idx files "
                          f"({', '.join(mnist.FILES)})")
    data = Mnist.read(folder, settings.test_images)
    runs = [run_seed(data, seed, activation, settings, say) for activation in activations for seed in seeds]
    summary = summarise(runs)
    with atomic_path(out / "reproduce-pmnist.json") as tmp:
        tmp.write_text(json.dumps({"command": command, "settings": asdict(settings),
                                   "published": {"slide_accuracy": SLIDE_ACCURACY, "slide_delta": SLIDE_DELTA,
                                                 "log_delta": LOG_DELTA},
                                   "summary": summary, "runs": runs}, indent=1) + "\n")
    page = out / "reproduce-pmnist.md"
    with atomic_path(page) as tmp:
        tmp.write_text(render(summary, settings, runs, command))
    return page
