"""train_exits: early exits, coarse -> fine, on a copy of the base CNN; the threshold sweep gives the accuracy-compute
curve (FLOPs counted by torch) and the accuracy-specificity trade-off, on val (to pick the operating point) and test."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from auxcut.data import prepared  # noqa: E402
from auxcut.method import confusion  # noqa: E402
from auxcut.variants import exits  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.nets import training  # noqa: E402
from auxcut.method.hierarchy import ClassTree  # noqa: E402
from auxcut.core.io import read_json, write_csv  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.exits
    stage.log_params(seed=p.seed, exits=cfg)
    ds = prepared.load(paths.PREPARED)
    labels = ds.samples["label"].to_numpy()
    tree = ClassTree.from_json(read_json(paths.CUT), str(paths.CUT))
    base_probs, val = np.load(paths.BASE_PROBS), ds.indices("val")
    weights = confusion.confusion_weights(confusion.confusion_counts(labels[val], base_probs[val]))
    groups = exits.resolve_groups(cfg.groups, ds.classes, tree, len(cfg.after), weights, cfg.n_groups, p.seed)
    [base], state = training.load_checkpoint(paths.BASE_MODEL)
    mean, std = np.asarray(state["mean"]), np.asarray(state["std"])
    device = training.pick_device()
    training.seed_everything(p.seed, device)
    net = exits.from_base(base, cfg.after, [int(g.max()) + 1 for g in groups], cfg.width, cfg.backbone == "frozen")
    heads = training.Heads(net.head_sizes)
    targets = np.column_stack([g[labels] for g in groups] + [labels])
    result = training.fit(net, ds.images, targets, ds.indices("train"), ds.indices("val"), task=heads, mean=mean,
                          std=std, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                          weight_decay=cfg.weight_decay, patience=cfg.patience, augment=cfg.augment, seed=p.seed,
                          device=device, desc="train_exits")
    if not stage.is_main:
        return
    probs = training.predict_proba(result.model, ds.images, mean, std, task=heads, batch_size=cfg.batch_size,
                                   device=device)
    outputs = exits.ExitOutputs.split(probs, heads.sizes)
    scored = exits.score(outputs, labels, {s: ds.indices(s) for s in ("val", "test")}, groups,
                         exits.flops_per_exit(result.model), exits.flops(base, tuple(base.arch["in_shape"])),
                         cfg.thresholds)
    grouping = cfg.groups if isinstance(cfg.groups, str) else "given"
    stage.save_plot(paths.PLOTS / "exits" / "groups.png", exits.plot_groups(
        weights, groups, ds.classes, cfg.after, f"early exits' {grouping} groups on the base's val confusion graph"))
    write_csv(paths.PLOTS / "exits" / "curve.csv", scored.table())
    stage.save_plot(paths.PLOTS / "exits" / "curve.png", exits.plot_curve(
        scored.curves["test"], scored.point, scored.full["test"], f"early exits ({grouping} groups), test"))
    training.save_checkpoint(paths.EXITS_MODEL, result.model, mean=mean.tolist(), std=std.tolist(), classes=ds.classes)
    stage.log_history(result.history, paths.PLOTS / "exits" / "history.csv")
    stage.write_metrics({"groups": grouping, "backbone": cfg.backbone, "after": cfg.after,
                         **exits.summary(scored, outputs, labels, ds.indices("test"), groups, ds.classes, cfg.after,
                                         result, base, base_probs)})


if __name__ == "__main__":
    run_stage("train_exits", main)
