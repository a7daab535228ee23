"""train_fine: CNNs taught by the discovered fine labels -- pretrained on them and fine-tuned on the coarse labels,
or with a coarse and a fine head under one masked loss; each predicts the classes of every image (score_fine scores
them against the base)."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut.data import prepared  # noqa: E402
from auxcut.variants import fine_training  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.nets import training  # noqa: E402
from auxcut.core.io import atomic_path  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.fine
    stage.log_params(seed=p.seed, fine=cfg)
    ds = prepared.load(paths.PREPARED)
    coarse = ds.samples["label"].to_numpy()
    fine = pd.read_csv(paths.FINE_LABELS)["fine"].to_numpy()
    train, val = ds.indices("train"), ds.indices("val")
    [base], state = training.load_checkpoint(paths.BASE_MODEL)
    mean, std, device = np.asarray(state["mean"]), np.asarray(state["std"]), training.pick_device()
    fit = dict(mean=mean, std=std, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
               patience=cfg.patience, augment=cfg.augment, seed=p.seed, device=device)
    nets, probs, metrics = [], {}, {"fine_labels": int(fine.max()) + 1, "modes": {}}
    for mode in cfg.modes:
        train_fn = fine_training.pretrain_then_finetune if mode == "pretrain" else fine_training.multihead
        # the base only lends its arch: each net starts from a fresh init of it
        net, history = train_fn(base, len(ds.classes), ds.images, coarse, fine, train, val, epochs=cfg.epochs,
                                finetune_epochs=cfg.finetune_epochs, **fit)
        probs[mode] = fine_training.coarse_probs(net, ds.images, len(ds.classes), mean, std, device)
        nets.append(net)
        stage.log_history(history, paths.PLOTS / "fine" / f"history_{mode}.csv")
        metrics["modes"][mode] = {"val_accuracy": float((probs[mode][val].argmax(1) == coarse[val]).mean()),
                                  "epochs_run": len(history)}
    training.save_checkpoint(paths.FINE_MODELS, nets, modes=list(cfg.modes), mean=mean.tolist(), std=std.tolist())
    with atomic_path(paths.FINE_PROBS) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **probs)  # one (N, classes) array per mode, in fine.modes order
    stage.write_metrics(metrics)


if __name__ == "__main__":
    run_stage("train_fine", main)
