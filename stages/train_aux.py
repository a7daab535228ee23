"""train_aux: a small binary CNN (at least 10x fewer parameters than the base) on the cut labels."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut import AuxcutError, data, distributed, paths, training  # noqa: E402
from auxcut.io import save_npy  # noqa: E402
from auxcut.models import ConvNet, build, count_parameters  # noqa: E402
from auxcut.stage import Stage, run_stage  # noqa: E402

MIN_RATIO = 10


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.aux
    stage.log_params(seed=p.seed, aux=cfg)
    ds = data.load(paths.PREPARED)
    targets = pd.read_csv(paths.RELABELED)["aux_label"].to_numpy()
    _, base_state = training.load_checkpoint(paths.BASE_MODEL)
    base_parameters = count_parameters(build(base_state["arch"]))
    training.seed_everything(p.seed, training.pick_device())  # weight init is random too
    model = ConvNet(tuple(ds.images.shape[1:]), 1, cfg.width)
    aux_parameters = count_parameters(model)
    ratio = base_parameters / aux_parameters
    print(f"auxcut train_aux: base {base_parameters:,} parameters, aux {aux_parameters:,} ({ratio:.1f}x fewer)", file=sys.stderr)
    stage.tracker.log_metrics({"base_parameters": base_parameters, "aux_parameters": aux_parameters})
    if ratio < MIN_RATIO:
        raise AuxcutError(f"params.yaml: aux.width={cfg.width} gives {aux_parameters:,} parameters, only {ratio:.1f}x fewer "
                          f"than the base's {base_parameters:,}; the aux must be at least {MIN_RATIO}x smaller")
    mean, std = np.asarray(base_state["mean"]), np.asarray(base_state["std"])
    result = training.fit(model, ds.images, targets, ds.indices("train"), ds.indices("val"), task="binary", mean=mean,
                          std=std, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                          patience=cfg.patience, augment=cfg.augment, seed=p.seed, device=training.pick_device(), desc="train_aux")
    if not stage.is_main:
        return  # under torchrun rank 0 alone predicts and writes every output
    probs = training.predict_proba(result.model, ds.images, mean, std, task="binary", batch_size=cfg.batch_size,
                                   device=training.pick_device())
    training.save_checkpoint(paths.AUX_MODEL, result.model, mean=mean.tolist(), std=std.tolist())
    save_npy(paths.AUX_PROBS, probs)
    stage.log_history(result.history, paths.PLOTS / "train_aux" / "history.csv")
    stage.tracker.log_artifact(paths.AUX_MODEL, "model")
    correct = (probs > 0.5) == (targets == 1)
    majority = {s: float(max(targets[ds.indices(s)].mean(), 1 - targets[ds.indices(s)].mean())) for s in data.SPLITS}
    stage.write_metrics({
        "parameters": aux_parameters,
        "base_parameters": base_parameters,
        "base_over_aux_parameters": ratio,
        "processes": distributed.world().size,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "accuracy": {s: float(correct[ds.indices(s)].mean()) for s in data.SPLITS},
        "majority_rate": majority,
    })


if __name__ == "__main__":
    distributed.relaunch_under_torchrun(__file__)  # with AUXCUT_TORCHRUN set, e.g. by `dvc repro` on several GPUs
    run_stage("train_aux", main)
