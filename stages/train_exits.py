"""train_exits: early exits, coarse -> fine, on a copy of the base CNN; the threshold sweep gives the accuracy-compute
curve (FLOPs counted by torch) and the accuracy-specificity trade-off, on val (to pick the operating point) and test."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from auxcut.data import prepared  # noqa: E402
from auxcut.variants import exits  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.nets import training  # noqa: E402
from auxcut.method.hierarchy import ClassTree  # noqa: E402
from auxcut.core.io import read_json, write_csv  # noqa: E402
from auxcut.nets.models import count_parameters  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.exits
    stage.log_params(seed=p.seed, exits=cfg)
    ds = prepared.load(paths.PREPARED)
    labels = ds.samples["label"].to_numpy()
    tree = ClassTree.from_json(read_json(paths.CUT), str(paths.CUT))
    groups = exits.resolve_groups(cfg.groups, ds.classes, tree, len(cfg.after))
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
    outputs = exits.ExitOutputs.split(training.predict_proba(result.model, ds.images, mean, std, task=heads,
                                                             batch_size=cfg.batch_size, device=device), heads.sizes)
    exit_flops, full_flops = exits.flops_per_exit(result.model), exits.flops(base, tuple(base.arch["in_shape"]))
    curves, full = {}, {}
    for split in ("val", "test"):
        rows = ds.indices(split)
        curves[split] = exits.sweep(outputs.rows(rows), labels[rows], groups, exit_flops, full_flops, cfg.thresholds)
        full[split] = float((outputs.fine[rows].argmax(1) == labels[rows]).mean())
    point = exits.operating_point(curves["val"], full["val"])
    picked = curves["test"].loc[point].to_dict()
    curve = curves["test"].join(curves["val"][["accuracy", "coarse_right", "flops"]].add_prefix("val_"))
    write_csv(paths.PLOTS / "exits" / "curve.csv", curve)
    stage.save_plot(paths.PLOTS / "exits" / "curve.png",
                    exits.plot_curve(curves["test"], point, full["test"], f"early exits ({cfg.groups if isinstance(cfg.groups, str) else 'given'} groups), test"))
    training.save_checkpoint(paths.EXITS_MODEL, result.model, mean=mean.tolist(), std=std.tolist(), classes=ds.classes)
    stage.log_history(result.history, paths.PLOTS / "exits" / "history.csv")
    test = ds.indices("test")
    base_accuracy = float((np.load(paths.BASE_PROBS)[test].argmax(1) == labels[test]).mean())
    stage.write_metrics({
        "groups": cfg.groups if isinstance(cfg.groups, str) else "given",
        "backbone": cfg.backbone,
        "after": cfg.after,
        "exits": [{"after_layer": a, "groups": exits.group_names(g, ds.classes),
                   "flops": exit_flops[e], "flops_ratio": exit_flops[e] / full_flops,
                   "test_accuracy": float((outputs.coarse[e][test].argmax(1) == g[labels[test]]).mean())}
                  for e, (a, g) in enumerate(zip(cfg.after, groups))],
        "full_flops": full_flops,
        "final_flops_ratio": exit_flops[-1] / full_flops,  # every exit is passed on the way to the fine answer
        "exit_parameters": count_parameters(result.model.exits),
        "base_parameters": count_parameters(base),
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "base_accuracy": base_accuracy,
        "full_accuracy": full,  # the final exit alone (the base itself with a frozen backbone)
        "operating_point": {**{k: v for k, v in picked.items() if k.startswith("threshold_")},
                            "picked_on": "val", "test": {k: picked[k] for k in
                                                         ("accuracy", "coarse_share", "coarse_right", "fine_accuracy", "fine_right",
                                                          "flops")}},
        "aim": exits.aim(picked, full["test"]),
        "frontier": exits.frontier(curves["test"]).to_dict(orient="records"),
    })


if __name__ == "__main__":
    run_stage("train_exits", main)
