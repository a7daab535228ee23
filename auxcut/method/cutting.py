"""Cutting the confusion graph into the tree of classes (the maxcut stage): a certified max-cut (auxcut.method.maxcut)
at every node of auxcut.method.hierarchy's tree, each node with a seed of its own, the summary of each cut that
data/cut.json keeps, and the stage's metrics.

Apart from hierarchy, which every later stage reads the tree with: only this stage runs the solver.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from auxcut.method import hierarchy
from auxcut.method.maxcut import MaxCut, solve


class MaxcutSettings(Protocol):
    """What cutting reads of params.yaml `maxcut` (auxcut.pipeline.params.MaxcutParams)."""

    method: Literal["auto", "exact", "lowrank", "cvxpy"]
    hyperplanes: int
    exact_max_n: int
    polish: Literal["tabu", "none"]
    depth: int


@dataclass(frozen=True)
class Cut:
    tree: hierarchy.ClassTree
    results: dict[int, MaxCut]  # per node id, the solver's result (with its timings, which cut.json leaves out)
    warnings: list[str]  # what the solver warned of, node by node


def cut_summary(result: MaxCut, weights: np.ndarray) -> dict[str, Any]:
    """A node's cut as data/cut.json keeps it: the solver's summary and the GW cut against the certified SDP bound.
    No timings: cut.json is a dep of later stages, and a re-solve giving the same cut must leave it byte-identical."""
    return {**{k: v for k, v in result.summary().items() if k != "seconds"},
            # the GW cut against the certified SDP bound: the method's own quality, also when exact ran
            "gw_cut_over_sdp_bound": None if not result.sdp_bound else result.rounded_cut / result.sdp_bound,
            "total_weight": float(np.triu(weights, 1).sum())}


def cut_classes(weights: np.ndarray, names: list[str], cfg: MaxcutSettings, seed: int) -> Cut:
    """The tree of maxcut.depth levels over the classes `names`, cut on the confusion weights."""
    results = {}

    def solve_node(sub: np.ndarray, node: int) -> tuple[np.ndarray, dict]:
        # each node its own seed: the hyperplanes of a child are not its parent's
        results[node] = solve(sub, cfg.method, seed=seed + node, hyperplanes=cfg.hyperplanes,
                              exact_max_n=cfg.exact_max_n, polish=cfg.polish)
        return np.asarray(results[node].sides), cut_summary(results[node], sub)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tree = hierarchy.cut_tree(weights, names, cfg.depth, solve_node)
    return Cut(tree, results, [str(w.message) for w in caught])


def summary(cut: Cut, cfg: MaxcutSettings) -> dict[str, Any]:
    """metrics/maxcut.json: the root cut (the seed method's one cut) with its sides, then every node and the leaves."""
    names, sides = cut.tree.names, cut.tree.class_sides(0)
    return {
        "n": len(names),
        "hyperplanes": cfg.hyperplanes,
        **cut.tree.nodes[0].cut,
        "solve_seconds": cut.results[0].seconds,
        "warnings": cut.warnings,
        "side_0": [n for n, s in zip(names, sides) if s == 0],
        "side_1": [n for n, s in zip(names, sides) if s == 1],
        "depth": cfg.depth,
        "nodes": [{"id": node.id, "level": node.level, "n": len(node.classes), "cut": node.cut["cut"],
                   "upper_bound": node.cut["upper_bound"], "gw_cut_over_sdp_bound": node.cut["gw_cut_over_sdp_bound"],
                   "method": node.cut["method"], "solve_seconds": cut.results[node.id].seconds} for node in cut.tree.nodes],
        "leaves": [[names[c] for c in leaf] for leaf in cut.tree.leaves()],
    }
