"""train_base: train the base classifier (base.arch, from base.weights if given) on train (early-stopped on val);
predict every image."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auxcut.data import prepared  # noqa: E402
from auxcut.nets import distributed, training  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.core.io import save_npy  # noqa: E402
from auxcut.nets import backbones  # noqa: E402
from auxcut.nets.models import count_parameters  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.base
    stage.log_params(seed=p.seed, base=cfg)
    ds = prepared.load(paths.PREPARED)
    labels = ds.samples["label"].to_numpy()
    train_idx, val_idx = ds.indices("train"), ds.indices("val")
    device = training.pick_device()
    mean, std = training.channel_stats(ds.images, train_idx)
    training.seed_everything(p.seed, training.pick_device())  # weight init is random too
    model = backbones.make(cfg.arch, tuple(ds.images.shape[1:]), len(ds.classes), width=cfg.width,
                           small_input=cfg.small_input)
    backbones.load_weights(model, cfg.weights)
    if cfg.freeze == "backbone":
        model.freeze_features()
    result = training.fit(model, ds.images, labels, train_idx, val_idx, task="multiclass", mean=mean, std=std,
                          epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                          patience=cfg.patience, augment=cfg.augment, seed=p.seed, device=device, desc="train_base")
    if not stage.is_main:
        return  # under torchrun rank 0 alone predicts and writes every output
    probs = training.predict_proba(result.model, ds.images, mean, std, task="multiclass",
                                   batch_size=cfg.batch_size, device=device)
    training.save_checkpoint(paths.BASE_MODEL, result.model, mean=mean.tolist(), std=std.tolist(), classes=ds.classes)
    save_npy(paths.BASE_PROBS, probs)
    stage.log_history(result.history, paths.PLOTS / "train_base" / "history.csv")
    stage.tracker.log_artifact(paths.BASE_MODEL, "model")
    correct = probs.argmax(1) == labels
    stage.write_metrics({
        "parameters": count_parameters(result.model),
        "device": device.type,
        "processes": distributed.world().size,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best["val_loss"],
        "accuracy": {split: float(correct[ds.indices(split)].mean()) for split in prepared.SPLITS},
    })


if __name__ == "__main__":
    run_stage("train_base", main, torchrun=True)  # under torchrun when AUXCUT_TORCHRUN is set, e.g. on several GPUs
