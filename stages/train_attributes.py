"""train_attributes: one backbone with a head per attribute (masked loss over partly hidden labels) against one CNN
per attribute on the same labels, for each fraction of hidden labels: accuracy per attribute, parameters, speed."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut.variants import attributes  # noqa: E402
from auxcut.data import prepared  # noqa: E402
from auxcut.nets import inference, training  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.nets.models import ConvNet, count_parameters  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.attributes
    stage.log_params(seed=p.seed, attributes=cfg)
    ds = prepared.load(paths.PREPARED)
    table = attributes.table(ds.samples, pd.read_csv(paths.RELABELED), ds.classes, cfg.names)
    train, val, test = (ds.indices(s) for s in prepared.SPLITS)
    mean, std = training.channel_stats(ds.images, train)
    device = training.pick_device()
    in_shape = tuple(ds.images.shape[1:])
    fit = dict(mean=mean, std=std, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
               weight_decay=cfg.weight_decay, patience=cfg.patience, augment=cfg.augment, seed=p.seed, device=device)
    heads = training.Heads(table.sizes)
    test_images = ds.images[test]  # only the test split is scored
    shared_nets, by_fraction = [], []
    for fraction in cfg.hidden:
        targets = attributes.hide(table.codes, train, fraction, p.seed)
        training.seed_everything(p.seed, device)
        shared = training.fit(ConvNet(in_shape, sum(table.sizes), cfg.width, cfg.view), ds.images, targets, train, val,
                              task=heads, desc=f"train_attributes shared, {fraction:.0%} hidden", **fit).model
        shared_probs = heads.split_probs(training.predict_proba(shared, test_images, mean, std, task=heads, batch_size=256,
                                                                device=device))
        separate, row = [], {"hidden": fraction, "shared": {"accuracy": {}}, "separate": {"accuracy": {}},
                             "difference": {}, "majority": {}, "known_train_labels": {}}
        for a, name in enumerate(table.names):
            known = train[targets[train, a] != training.MISSING]
            training.seed_everything(p.seed + 1 + a, device)
            net = training.fit(ConvNet(in_shape, table.sizes[a], cfg.width, cfg.view), ds.images, table.codes[:, a],
                               known, val, task="multiclass", desc=f"train_attributes {name}, {fraction:.0%} hidden",
                               **fit).model
            separate.append(net)
            probs = training.predict_proba(net, test_images, mean, std, task="multiclass", batch_size=256, device=device)
            truth = table.codes[test, a]
            shared_right, separate_right = shared_probs[a].argmax(1) == truth, probs.argmax(1) == truth
            row["shared"]["accuracy"][name] = float(shared_right.mean())
            row["separate"]["accuracy"][name] = float(separate_right.mean())
            row["difference"][name] = attributes.paired_difference(shared_right, separate_right)
            row["majority"][name] = float(np.bincount(truth).max() / len(truth))
            row["known_train_labels"][name] = int(len(known))
        if not stage.is_main:
            continue
        row["shared"]["parameters"] = count_parameters(shared)
        row["separate"]["parameters"] = sum(count_parameters(net) for net in separate)
        rates = inference.images_per_second({"shared": [(shared, heads)],
                                             "separate": [(net, "multiclass") for net in separate]},
                                            test_images, mean, std, device)
        for kind in ("shared", "separate"):
            row[kind]["images_per_second"] = rates[kind]
        shared_nets.append(shared)
        by_fraction.append(row)
        print(f"auxcut train_attributes: {fraction:.0%} hidden: " + ", ".join(
            f"{n} {row['shared']['accuracy'][n]:.3f} shared / {row['separate']['accuracy'][n]:.3f} separate"
            for n in table.names), file=sys.stderr)
    if not stage.is_main:
        return
    training.save_checkpoint(paths.ATTRIBUTES_MODEL, shared_nets, mean=mean.tolist(), std=std.tolist(),
                             attributes=table.names, values=table.values, hidden=list(cfg.hidden))
    stage.save_plot(paths.PLOTS / "attributes" / "accuracy.png",
                    attributes.plot_accuracy(by_fraction, table.names, f"shared heads vs separate nets ({cfg.view} view)"))
    stage.write_metrics({"attributes": table.names, "values": table.values, "hidden": list(cfg.hidden),
                         "view": cfg.view, "width": cfg.width, "by_fraction": by_fraction})


if __name__ == "__main__":
    run_stage("train_attributes", main)
