"""train_aux: a small binary CNN on the cut labels, one per cut of the tree (at least 10x fewer parameters than the
base, all of them together), trained with the objective and on the view that params.yaml `aux` names."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut import AuxcutError, data, distributed, objectives, paths, training  # noqa: E402
from auxcut.hierarchy import ClassTree  # noqa: E402
from auxcut.io import read_json, save_npy  # noqa: E402
from auxcut.models import ConvNet, count_parameters  # noqa: E402
from auxcut.stage import Stage, run_stage  # noqa: E402

MIN_RATIO = 10


def check_budget(in_shape: tuple, width: int, view: str, n_nets: int, base_parameters: int) -> int:
    """The auxes' parameters in all; an AuxcutError naming the widest aux.width that fits when they are too many."""
    def total(w: int) -> int:
        return n_nets * count_parameters(ConvNet(in_shape, 1, w, view))

    asked = total(width)
    if base_parameters / asked >= MIN_RATIO:
        return asked
    fits = next((w for w in range(width - 1, 0, -1) if base_parameters / total(w) >= MIN_RATIO), None)
    hint = f"aux.width {fits} fits" if fits else "no aux.width fits: lower maxcut.depth or widen the base"
    many = f"{n_nets} auxes (one per cut of the tree) of " if n_nets > 1 else ""
    raise AuxcutError(f"params.yaml: aux.width={width} gives {many}{asked // n_nets:,} parameters, "
                      f"{asked:,} in all: only {base_parameters / asked:.1f}x fewer than the base's "
                      f"{base_parameters:,}; the aux must be at least {MIN_RATIO}x smaller ({hint})")


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.aux
    stage.log_params(seed=p.seed, aux=cfg)
    ds = data.load(paths.PREPARED)
    relabeled = pd.read_csv(paths.RELABELED)
    tree = ClassTree.from_json(read_json(paths.CUT), str(paths.CUT))
    base_probs = np.load(paths.BASE_PROBS)
    [base], base_state = training.load_checkpoint(paths.BASE_MODEL)
    base_parameters = count_parameters(base)
    in_shape = tuple(ds.images.shape[1:])
    aux_parameters = check_budget(in_shape, cfg.width, cfg.view, len(tree.nodes), base_parameters)
    ratio = base_parameters / aux_parameters
    print(f"auxcut train_aux: base {base_parameters:,} parameters, {len(tree.nodes)} aux(es) {aux_parameters:,} "
          f"({ratio:.1f}x fewer); objective {cfg.objective}, view {cfg.view}", file=sys.stderr)
    stage.tracker.log_metrics({"base_parameters": base_parameters, "aux_parameters": aux_parameters})
    mean, std = np.asarray(base_state["mean"]), np.asarray(base_state["std"])
    device = training.pick_device()
    train_all, val_all = ds.indices("train"), ds.indices("val")
    models, probs, nodes = [], [], []
    for k in range(len(tree.nodes)):
        targets = relabeled[f"node_{k}"].to_numpy()
        under = targets >= 0  # the images of this cut's classes: the only ones it trains and is scored on
        sides = np.maximum(targets, 0)  # the -1 of other cuts' images never reach the loss: they are not in train_idx
        train_idx, val_idx = train_all[under[train_all]], val_all[under[val_all]]
        if len(train_idx) == 0 or len(val_idx) == 0:
            raise AuxcutError(f"{paths.RELABELED}: cut {k} has no train or val images; use fewer levels (maxcut.depth)")
        base_side = objectives.base_side_probability(base_probs, tree.class_sides(k))
        objective = objectives.make_objective(cfg.objective, cfg.strength, sides, base_side, train_idx)
        training.seed_everything(p.seed + k, device)  # weight init is random too; the root is seeded as before trees
        model = ConvNet(in_shape, 1, cfg.width, cfg.view)
        desc = "train_aux" if len(tree.nodes) == 1 else f"train_aux node {k}"
        result = training.fit(model, ds.images, sides, train_idx, val_idx, task="binary", mean=mean,
                              std=std, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                              weight_decay=cfg.weight_decay, patience=cfg.patience, augment=cfg.augment, seed=p.seed + k,
                              device=device, desc=desc, objective=objective)
        if not stage.is_main:
            continue  # under torchrun rank 0 alone predicts and writes every output
        prob = training.predict_proba(result.model, ds.images, mean, std, task="binary", batch_size=cfg.batch_size,
                                      device=device)
        models.append(result.model)
        probs.append(prob)
        correct = (prob > 0.5) == (targets == 1)
        split_idx = {s: ds.indices(s)[under[ds.indices(s)]] for s in data.SPLITS}
        test = split_idx["test"]
        nodes.append({
            "node": k, "classes": len(tree.nodes[k].classes), "parameters": count_parameters(result.model),
            "epochs_run": len(result.history), "best_epoch": result.best_epoch,
            "accuracy": {s: float(correct[i].mean()) if len(i) else None for s, i in split_idx.items()},
            "majority_rate": {s: float(max(targets[i].mean(), 1 - targets[i].mean())) if len(i) else None
                              for s, i in split_idx.items()},
            "test": objectives.side_agreement(prob[test], base_side[test], targets[test]),
        })
        if k == 0:
            stage.log_history(result.history, paths.PLOTS / "train_aux" / "history.csv")
    if not stage.is_main:
        return
    training.save_checkpoint(paths.AUX_MODEL, models, mean=mean.tolist(), std=std.tolist())
    save_npy(paths.AUX_PROBS, np.column_stack(probs))
    stage.tracker.log_artifact(paths.AUX_MODEL, "model")
    root = nodes[0]
    stage.write_metrics({
        "objective": cfg.objective,
        "strength": cfg.strength,
        "view": cfg.view,
        "auxes": len(models),
        "parameters": aux_parameters,
        "base_parameters": base_parameters,
        "base_over_aux_parameters": ratio,
        "processes": distributed.world().size,
        # the root cut's aux, the seed method's one aux
        "epochs_run": root["epochs_run"],
        "best_epoch": root["best_epoch"],
        "accuracy": root["accuracy"],
        "majority_rate": root["majority_rate"],
        "base_agreement": root["test"],
        "nodes": nodes,
    })


if __name__ == "__main__":
    distributed.relaunch_under_torchrun(__file__)  # with AUXCUT_TORCHRUN set, e.g. by `dvc repro` on several GPUs
    run_stage("train_aux", main)
