"""train_aux: a small binary CNN on the cut labels, one per cut of the tree (at least aux.min_ratio, 10, times fewer
parameters than the base, all of them together), trained with the objective and on the view that params.yaml `aux`
names; or, with aux.mode head, one binary head per cut on a copy of the base, fine-tuned jointly with its class head.
aux.target random_cut trains it on a random cut of the same nodes instead, aux.target classes one multiclass aux."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut.method import auxiliary, confusion, targets  # noqa: E402
from auxcut.data import prepared  # noqa: E402
from auxcut.nets import training  # noqa: E402
from auxcut.variants import joint_training  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.method.hierarchy import ClassTree  # noqa: E402
from auxcut.core.io import read_json, save_npy  # noqa: E402
from auxcut.nets.models import count_parameters  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p = stage.params
    stage.log_params(seed=p.seed, aux=p.aux)
    ds = prepared.load(paths.PREPARED)
    relabeled = pd.read_csv(paths.RELABELED)
    tree = ClassTree.from_json(read_json(paths.CUT), str(paths.CUT))
    base_probs = np.load(paths.BASE_PROBS)
    # over the cut's nodes: the given classes or the fine labels
    graph = confusion.graph_nodes(p.confusion.labels, ds.samples["label"].to_numpy(), ds.classes)
    node_probs = graph.probs(base_probs)
    cuts = targets.aux_cuts(p.aux.target, tree, relabeled, graph.labels, p.seed, p.aux.random_draw)
    [base], base_state = training.load_checkpoint(paths.BASE_MODEL)
    mean, std = np.asarray(base_state["mean"]), np.asarray(base_state["std"])
    device = training.pick_device()
    if cuts is None:  # aux.target classes
        out = auxiliary.train_classes(ds, base, base_probs, mean, std, p.aux, p.seed, device, stage.is_main, stage.say)
    else:
        train = joint_training.train_heads if p.aux.mode == "head" else auxiliary.train_separate
        out = train(ds, cuts.tree, cuts.relabeled, base, base_probs, node_probs, mean, std, p.aux, p.seed, device,
                    stage.is_main, stage.say)
    if out is None:
        return  # under torchrun rank 0 alone predicts and writes every output
    stage.tracker.log_metrics({"base_parameters": count_parameters(base), "aux_parameters": out.parameters})
    stage.log_history(out.history, paths.PLOTS / "train_aux" / "history.csv")
    training.save_checkpoint(paths.AUX_MODEL, out.models, mean=mean.tolist(), std=std.tolist(), mode=p.aux.mode,
                             n_classes=len(ds.classes))
    save_npy(paths.AUX_PROBS, out.aux_probs)
    save_npy(paths.CLASS_PROBS, out.class_probs)
    stage.tracker.log_artifact(paths.AUX_MODEL, "model")
    stage.write_metrics({**auxiliary.summary(out, p.aux, ds, base, base_probs, mean, std, device),
                         **targets.summary(p.aux.target, cuts, tree)})


if __name__ == "__main__":
    run_stage("train_aux", main, torchrun=True)  # under torchrun when AUXCUT_TORCHRUN is set, e.g. on several GPUs
