"""train_aux: a small binary CNN on the cut labels, one per cut of the tree (at least 10x fewer parameters than the
base, all of them together), trained with the objective and on the view that params.yaml `aux` names; or, with
aux.mode head, one binary head per cut on a copy of the base, fine-tuned jointly with its class head."""

import sys
from pathlib import Path
from typing import NamedTuple

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut import AuxcutError  # noqa: E402
from auxcut.method import confusion, objectives  # noqa: E402
from auxcut.data import prepared  # noqa: E402
from auxcut.nets import distributed, inference, training  # noqa: E402
from auxcut.variants import joint  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.method.hierarchy import ClassTree  # noqa: E402
from auxcut.core.io import read_json, save_npy  # noqa: E402
from auxcut.nets.models import ConvNet, count_parameters  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402

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


class Trained(NamedTuple):
    """What either mode trained, as the outputs want it."""

    models: list[ConvNet]  # models/aux.pt: the auxes, or the one net carrying the cut heads
    aux_probs: np.ndarray  # (N, cuts) each cut's probability of side 1
    class_probs: np.ndarray  # (N, K) what the stacked set is built on: the base's, or the joint net's class head
    nodes: list[dict]  # per cut, its metrics
    history: list[dict[str, float]]  # the root cut's (or the joint net's) training curve
    parameters: int  # the auxes' parameters, or those the heads add to the base
    predictor_nets: list[tuple[ConvNet, training.Task]]  # what the final predictor runs besides the base (separate)


def node_metrics(k: int, prob: np.ndarray, targets: np.ndarray, base_side: np.ndarray, ds: prepared.Dataset) -> dict:
    """One cut's aux (or cut head) scored on the images of its classes, per split, and against the base on test."""
    under = targets >= 0
    correct = (prob > 0.5) == (targets == 1)
    split_idx = {s: ds.indices(s)[under[ds.indices(s)]] for s in prepared.SPLITS}
    test = split_idx["test"]
    return {"node": k,
            "accuracy": {s: float(correct[i].mean()) if len(i) else None for s, i in split_idx.items()},
            "majority_rate": {s: float(max(targets[i].mean(), 1 - targets[i].mean())) if len(i) else None
                              for s, i in split_idx.items()},
            "test": objectives.side_agreement(prob[test], base_side[test], targets[test])}


def train_separate(stage: Stage, ds: prepared.Dataset, tree: ClassTree, relabeled: pd.DataFrame, base_probs: np.ndarray,
                   node_probs: np.ndarray, base_parameters: int, mean: np.ndarray, std: np.ndarray,
                   device) -> Trained | None:
    """One small CNN per cut, on the images of the cut's classes: the seed method's aux."""
    p, cfg = stage.params, stage.params.aux
    in_shape = tuple(ds.images.shape[1:])
    aux_parameters = check_budget(in_shape, cfg.width, cfg.view, len(tree.nodes), base_parameters)
    print(f"auxcut train_aux: base {base_parameters:,} parameters, {len(tree.nodes)} aux(es) {aux_parameters:,} "
          f"({base_parameters / aux_parameters:.1f}x fewer); objective {cfg.objective}, view {cfg.view}", file=sys.stderr)
    train_all, val_all = ds.indices("train"), ds.indices("val")
    models, probs, nodes, histories = [], [], [], []  # per cut
    for k in range(len(tree.nodes)):
        targets = relabeled[f"node_{k}"].to_numpy()
        under = targets >= 0  # the images of this cut's classes: the only ones it trains and is scored on
        sides = np.maximum(targets, 0)  # the -1 of other cuts' images never reach the loss: they are not in train_idx
        train_idx, val_idx = train_all[under[train_all]], val_all[under[val_all]]
        if len(train_idx) == 0 or len(val_idx) == 0:
            raise AuxcutError(f"{paths.RELABELED}: cut {k} has no train or val images; use fewer levels (maxcut.depth)")
        base_side = objectives.base_side_probability(node_probs, tree.class_sides(k))
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
        histories.append(result)
        nodes.append({**node_metrics(k, prob, targets, base_side, ds), "classes": len(tree.nodes[k].classes),
                      "parameters": count_parameters(result.model), "epochs_run": len(result.history),
                      "best_epoch": result.best_epoch})
    if not stage.is_main:
        return None
    return Trained(models, np.column_stack(probs), base_probs, nodes, histories[0].history, aux_parameters,
                   [(m, "binary") for m in models])


def train_heads(stage: Stage, ds: prepared.Dataset, tree: ClassTree, relabeled: pd.DataFrame, base_probs: np.ndarray,
                node_probs: np.ndarray, base: ConvNet, mean: np.ndarray, std: np.ndarray, device) -> Trained | None:
    """One binary head per cut on a copy of the base, fine-tuned jointly with its class head (auxcut.variants.joint)."""
    p, cfg = stage.params, stage.params.aux
    n_classes, n_cuts = len(ds.classes), len(tree.nodes)
    training.seed_everything(p.seed, device)  # the cut heads' initial weights are drawn here
    net = joint.from_base(base, n_cuts)
    heads = joint.heads(n_classes, n_cuts)
    head_parameters = count_parameters(net) - count_parameters(base)
    print(f"auxcut train_aux: {n_cuts} cut head(s) on the base's backbone, {head_parameters:,} parameters more than "
          f"the base's {count_parameters(base):,}", file=sys.stderr)
    sides = relabeled[[f"node_{k}" for k in range(n_cuts)]].to_numpy()
    targets = joint.targets(ds.samples["label"].to_numpy(), sides)
    result = training.fit(net, ds.images, targets, ds.indices("train"), ds.indices("val"), task=heads, mean=mean,
                          std=std, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                          weight_decay=cfg.weight_decay, patience=cfg.patience, augment=cfg.augment, seed=p.seed,
                          device=device, desc="train_aux heads")
    if not stage.is_main:
        return None
    class_probs, cut_probs = joint.split(training.predict_proba(result.model, ds.images, mean, std, task=heads,
                                                                batch_size=cfg.batch_size, device=device), n_classes)
    nodes = [{**node_metrics(k, cut_probs[:, k], sides[:, k],
                             objectives.base_side_probability(node_probs, tree.class_sides(k)), ds),
              "classes": len(tree.nodes[k].classes), "parameters": head_parameters // n_cuts,
              "epochs_run": len(result.history), "best_epoch": result.best_epoch} for k in range(n_cuts)]
    return Trained([result.model], cut_probs, class_probs, nodes, result.history, head_parameters,
                   [(result.model, heads)])


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.aux
    stage.log_params(seed=p.seed, aux=cfg)
    ds = prepared.load(paths.PREPARED)
    relabeled = pd.read_csv(paths.RELABELED)
    tree = ClassTree.from_json(read_json(paths.CUT), str(paths.CUT))
    base_probs = np.load(paths.BASE_PROBS)
    # over the cut's nodes: the given classes or the fine labels
    node_probs = confusion.graph_nodes(p.confusion.labels, ds.samples["label"].to_numpy(), ds.classes).probs(base_probs)
    [base], base_state = training.load_checkpoint(paths.BASE_MODEL)
    base_parameters = count_parameters(base)
    mean, std = np.asarray(base_state["mean"]), np.asarray(base_state["std"])
    device = training.pick_device()
    if cfg.mode == "head":
        out = train_heads(stage, ds, tree, relabeled, base_probs, node_probs, base, mean, std, device)
    else:
        out = train_separate(stage, ds, tree, relabeled, base_probs, node_probs, base_parameters, mean, std, device)
    if out is None:
        return  # under torchrun rank 0 alone predicts and writes every output
    nodes, aux_parameters, class_probs = out.nodes, out.parameters, out.class_probs
    stage.tracker.log_metrics({"base_parameters": base_parameters, "aux_parameters": aux_parameters})
    stage.log_history(out.history, paths.PLOTS / "train_aux" / "history.csv")
    training.save_checkpoint(paths.AUX_MODEL, out.models, mean=mean.tolist(), std=std.tolist(), mode=cfg.mode,
                             n_classes=len(ds.classes))
    save_npy(paths.AUX_PROBS, out.aux_probs)
    save_npy(paths.CLASS_PROBS, class_probs)
    stage.tracker.log_artifact(paths.AUX_MODEL, "model")
    # What the final predictor's nets cost at inference, against the base alone, measured here on the same images.
    test_images = ds.images[ds.indices("test")]
    nets = out.predictor_nets if cfg.mode == "head" else [(base, "multiclass"), *out.predictor_nets]
    rates = inference.images_per_second({"predictor": nets, "base": [(base, "multiclass")]}, test_images, mean, std,
                                        device)
    speed = {"predictor_images_per_second": rates["predictor"], "base_images_per_second": rates["base"],
             "forward_passes": len(nets)}
    test = ds.indices("test")
    root = nodes[0]
    stage.write_metrics({
        "mode": cfg.mode,
        "objective": cfg.objective,
        "strength": cfg.strength,
        "view": cfg.view,
        "auxes": len(nodes),
        "parameters": aux_parameters,
        "base_parameters": base_parameters,
        "base_over_aux_parameters": base_parameters / aux_parameters,
        "processes": distributed.world().size,
        # the class probabilities the stacked set is built on: the base's, or the joint net's class head
        "class_accuracy": {"base": float((base_probs[test].argmax(1) == ds.samples["label"].to_numpy()[test]).mean()),
                           "stacked_on": float((class_probs[test].argmax(1) == ds.samples["label"].to_numpy()[test]).mean())},
        "inference": speed,
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
