"""maxcut: split the classes in two with Goemans-Williamson on the confusion graph (certified bound); with
maxcut.depth > 1, cut each side again on its own confusion subgraph, into a tree of cuts."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from auxcut.method import confusion, cutting, hierarchy  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.core.io import write_json  # noqa: E402
from auxcut.method.maxcut.plot import plot_cut  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p = stage.params
    stage.log_params(seed=p.seed, maxcut=p.maxcut)
    table = pd.read_csv(paths.CONFUSION, index_col="true")
    names = [str(c) for c in table.columns]
    weights = confusion.confusion_weights(table.to_numpy())
    cut = cutting.cut_classes(weights, names, p.maxcut, p.seed)
    for warning in cut.warnings:
        stage.say(f"warning: {warning}")
    write_json(paths.CUT, cut.tree.to_json())
    root = cut.results[0]
    stage.save_plot(paths.PLOTS / "maxcut" / "cut.png", plot_cut(
        weights, cut.tree.class_sides(0), names, f"max-cut of the val confusion graph: cut {root.cut:g}"
        + ("" if root.sdp_bound is None else f", certified SDP bound {root.sdp_bound:.6g}")))
    stage.save_plot(paths.PLOTS / "maxcut" / "tree.png", hierarchy.plot_tree(
        cut.tree, f"tree of max-cuts of the val confusion graph (maxcut.depth {p.maxcut.depth})"))
    stage.write_metrics(cutting.summary(cut, p.maxcut))


if __name__ == "__main__":
    run_stage("maxcut", main)
