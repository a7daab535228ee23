"""train_attributes: one backbone with a head per attribute (masked loss over partly hidden labels) against one CNN
per attribute on the same labels, for each fraction of hidden labels: accuracy per attribute, parameters, speed."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from auxcut.variants import attributes  # noqa: E402
from auxcut.data import prepared  # noqa: E402
from auxcut.nets import training  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.attributes
    stage.log_params(seed=p.seed, attributes=cfg)
    ds = prepared.load(paths.PREPARED)
    table = attributes.table(ds.samples, pd.read_csv(paths.RELABELED), ds.classes, cfg.names)
    train, val, test = (ds.indices(s) for s in prepared.SPLITS)
    mean, std = training.channel_stats(ds.images, train)
    device = training.pick_device()
    shared_nets, by_fraction = [], []
    for fraction in cfg.hidden:
        compared = attributes.compare(ds.images, table, train, val, test, fraction, cfg, cfg.view, p.seed, mean, std,
                                      device, stage.is_main, stage.say)
        if compared is not None:  # under torchrun rank 0 alone scores and writes
            shared_nets.append(compared[0])
            by_fraction.append(compared[1])
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
