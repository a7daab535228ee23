"""maxcut: split the classes in two with Goemans-Williamson on the confusion graph (certified bound); with
maxcut.depth > 1, cut each side again on its own confusion subgraph, into a tree of cuts."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut.method import confusion, hierarchy  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.core.io import write_json  # noqa: E402
from auxcut.method.maxcut import solve  # noqa: E402
from auxcut.method.maxcut.plot import plot_cut  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def cut_summary(result, weights: np.ndarray) -> dict:
    """A node's cut as data/cut.json keeps it: the solver's summary and the GW cut against the certified SDP bound.
    No timings: cut.json is a dep of later stages, and a re-solve giving the same cut must leave it byte-identical."""
    return {**{k: v for k, v in result.summary().items() if k != "seconds"},
            # the GW cut against the certified SDP bound: the method's own quality, also when exact ran
            "gw_cut_over_sdp_bound": None if not result.sdp_bound else result.rounded_cut / result.sdp_bound,
            "total_weight": float(np.triu(weights, 1).sum())}


def main(stage: Stage) -> None:
    p = stage.params
    stage.log_params(seed=p.seed, maxcut=p.maxcut)
    table = pd.read_csv(paths.CONFUSION, index_col="true")
    names = [str(c) for c in table.columns]
    weights = confusion.confusion_weights(table.to_numpy())
    results = {}

    def solve_node(sub: np.ndarray, node: int) -> tuple[np.ndarray, dict]:
        # each node its own seed: the hyperplanes of a child are not its parent's
        results[node] = solve(sub, p.maxcut.method, seed=p.seed + node, hyperplanes=p.maxcut.hyperplanes,
                              exact_max_n=p.maxcut.exact_max_n, polish=p.maxcut.polish)
        return np.asarray(results[node].sides), cut_summary(results[node], sub)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tree = hierarchy.cut_tree(weights, names, p.maxcut.depth, solve_node)
    for warning in caught:
        print(f"auxcut maxcut: warning: {warning.message}", file=sys.stderr)
    write_json(paths.CUT, tree.to_json())
    root, sides = results[0], tree.class_sides(0)
    stage.save_plot(paths.PLOTS / "maxcut" / "cut.png", plot_cut(
        weights, sides, names, f"max-cut of the val confusion graph: cut {root.cut:g}"
        + ("" if root.sdp_bound is None else f", certified SDP bound {root.sdp_bound:.6g}")))
    stage.save_plot(paths.PLOTS / "maxcut" / "tree.png", hierarchy.plot_tree(
        tree, f"tree of max-cuts of the val confusion graph (maxcut.depth {p.maxcut.depth})"))
    stage.write_metrics({
        "n": len(names),
        "hyperplanes": p.maxcut.hyperplanes,
        **tree.nodes[0].cut,  # the root cut, the seed method's one cut
        "solve_seconds": root.seconds,
        "warnings": [str(w.message) for w in caught],
        "side_0": [n for n, s in zip(names, sides) if s == 0],
        "side_1": [n for n, s in zip(names, sides) if s == 1],
        "depth": p.maxcut.depth,
        "nodes": [{"id": node.id, "level": node.level, "n": len(node.classes), "cut": node.cut["cut"],
                   "upper_bound": node.cut["upper_bound"], "gw_cut_over_sdp_bound": node.cut["gw_cut_over_sdp_bound"],
                   "method": node.cut["method"], "solve_seconds": results[node.id].seconds} for node in tree.nodes],
        "leaves": [[names[c] for c in leaf] for leaf in tree.leaves()],
    })


if __name__ == "__main__":
    run_stage("maxcut", main)
