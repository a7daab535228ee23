"""Recursive max-cuts: a binary tree over the classes, coarse to fine, learned from the base's own confusions.

The root cuts the whole confusion graph (the seed method's one cut, `maxcut.depth: 1`). With a larger depth each side
is cut again on its own confusion subgraph (the classes of that side and the confusions among them), down to `depth`
levels. A side stays a leaf when it holds a single class, or when the base never confuses its classes with each other
(nothing to split). Every internal node gets its own aux, trained on the images of its classes to tell its two sides
apart; together the node probabilities say, for every class, how likely its path down the tree is.

The tree is the `nodes` list of `data/cut.json`; see `ClassTree.to_json` for the format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from auxcut import AuxcutError

FORMAT = "auxcut class tree 1"


@dataclass
class CutNode:
    """One cut of the tree: which classes it splits, to which side each goes, and what splits each side further."""

    id: int  # position in ClassTree.nodes (breadth-first: the root is 0)
    parent: int | None  # the node whose side this node splits (None for the root)
    branch: int | None  # which side (0 or 1) of the parent it splits
    level: int  # 1 for the root, 2 for its children, ...
    classes: list[int]  # the labels of the classes this node splits, ascending
    sides: list[int]  # the side (0 or 1) of each of those classes
    children: list[int | None] = field(default_factory=lambda: [None, None])  # the node splitting side 0 / 1, if any
    cut: dict[str, Any] = field(default_factory=dict)  # the max-cut summary of this node's subgraph


@dataclass
class ClassTree:
    names: list[str]  # every class name, indexed by label
    depth: int  # the maxcut.depth it was built with (its deepest node may be shallower)
    nodes: list[CutNode]

    def class_sides(self, node: int) -> np.ndarray:
        """(K,) the side of every class at a node: 0 or 1, or -1 for the classes the node does not split."""
        sides = np.full(len(self.names), -1, dtype=np.int64)
        sides[self.nodes[node].classes] = self.nodes[node].sides
        return sides

    def node_labels(self, labels: np.ndarray) -> np.ndarray:
        """(N, nodes) each image's side at each node, -1 where its class is not under the node."""
        return np.column_stack([self.class_sides(k)[labels] for k in range(len(self.nodes))])

    def path_signs(self) -> np.ndarray:
        """(nodes, K): +1 where a class's path takes side 1 of a node, -1 side 0, 0 where it does not pass."""
        return np.stack([np.where(s < 0, 0, 2 * s - 1) for s in map(self.class_sides, range(len(self.nodes)))])

    def level_groups(self, level: int) -> np.ndarray:
        """(K,) each class's group when the tree is cut off below `level` (1: the root's two sides; deeper than the
        tree: its leaves): classes whose sides agree at every node down to that level share a group, numbered in order
        of their first class."""
        nodes = [k for k, node in enumerate(self.nodes) if node.level <= level]
        paths = [tuple(self.class_sides(k)[c] for k in nodes) for c in range(len(self.names))]
        first = {path: i for i, path in reversed(list(enumerate(paths)))}
        order = {path: g for g, path in enumerate(sorted(first, key=first.get))}
        return np.array([order[path] for path in paths], dtype=np.int64)

    def leaves(self) -> list[list[int]]:
        """The classes of each leaf, left to right (side 0 before side 1)."""
        out: list[list[int]] = []

        def walk(node: CutNode) -> None:
            for side in (0, 1):
                child = node.children[side]
                if child is None:
                    out.append([c for c, s in zip(node.classes, node.sides) if s == side])
                else:
                    walk(self.nodes[child])

        walk(self.nodes[0])
        return out

    def to_json(self) -> dict[str, Any]:
        """The format of data/cut.json:
        - `format`: "auxcut class tree 1"; `classes`: every class name, indexed by label;
        - `sides`: every class's side of the root cut (the seed method's cut, whatever the depth);
        - `depth`: maxcut.depth; `nodes`: breadth-first, the root first, each with `id`, `parent`, `branch` (the
          parent's side it splits), `level`, `classes` (labels), `sides` (one per class there), `children` (the node
          splitting side 0 / side 1, or null for a leaf) and `cut` (its max-cut summary: cut, bound, method, ...)."""
        return {"format": FORMAT, "classes": self.names, "sides": self.class_sides(0).tolist(), "depth": self.depth,
                "nodes": [asdict(node) for node in self.nodes]}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "cut.json") -> "ClassTree":
        if data.get("format") != FORMAT or not data.get("nodes"):
            raise AuxcutError(f"{where}: expected a class tree ('format': {FORMAT!r} with 'nodes'); re-run the maxcut stage")
        return cls(list(data["classes"]), int(data["depth"]), [CutNode(**node) for node in data["nodes"]])


Solver = Callable[[np.ndarray, int], tuple[np.ndarray, dict[str, Any]]]


def cut_tree(weights: np.ndarray, names: list[str], depth: int, solve: Solver) -> ClassTree:
    """Cut the confusion graph `weights` (K x K) into a tree of `depth` levels. `solve(subgraph, node_id)` returns the
    0/1 sides of the subgraph's nodes and a summary of the cut."""
    if depth < 1:
        raise AuxcutError(f"maxcut.depth: expected at least 1, got {depth}")
    nodes: list[CutNode] = []
    queue: list[tuple[list[int], int | None, int | None, int]] = [(list(range(len(names))), None, None, 1)]
    while queue:  # breadth-first, so node ids grow level by level
        classes, parent, branch, level = queue.pop(0)
        sides, summary = solve(weights[np.ix_(classes, classes)], len(nodes))
        node = CutNode(len(nodes), parent, branch, level, classes, [int(s) for s in sides], cut=summary)
        if parent is not None:
            nodes[parent].children[branch] = node.id
        nodes.append(node)
        if level == depth:
            continue
        for side in (0, 1):
            part = [c for c, s in zip(classes, node.sides) if s == side]
            if len(part) >= 2 and np.triu(weights[np.ix_(part, part)], 1).sum() > 0:
                queue.append((part, node.id, side, level + 1))
    return ClassTree(list(names), depth, nodes)


def path_log_probs(node_probs: np.ndarray, signs: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """(N, K) log-probability of each class's path down the tree: the sum over the nodes on its path of log p (side 1)
    or log(1 - p) (side 0), with p the node's aux probability of side 1, clipped away from 0 and 1."""
    p = np.clip(np.asarray(node_probs, dtype=np.float64).reshape(len(node_probs), -1), eps, 1 - eps)
    return np.log(p) @ (signs > 0) + np.log1p(-p) @ (signs < 0)


def plot_tree(tree: ClassTree, title: str):
    """The tree drawn top-down: each cut with its value and bound, each leaf with its classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    leaves = tree.leaves()
    levels = max(node.level for node in tree.nodes) + 1
    fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * len(leaves)), 1.9 * levels + 0.6))
    ax.set_axis_off()
    next_leaf = iter(range(len(leaves)))

    def y_of(level: int) -> float:
        return float(levels - level)

    def draw(node: CutNode) -> float:
        xs = []
        for side in (0, 1):
            child = node.children[side]
            if child is None:
                x = float(next(next_leaf))
                members = [tree.names[c] for c, s in zip(node.classes, node.sides) if s == side]
                ax.text(x, y_of(node.level + 1), "\n".join(members[:12] + (["…"] if len(members) > 12 else [])),
                        ha="center", va="top", fontsize=7, bbox={"boxstyle": "round", "fc": "#eef5ee", "ec": "#5a5"})
            else:
                x = draw(tree.nodes[child])
            xs.append(x)
        x = float(np.mean(xs))
        for side, child_x in zip((0, 1), xs):
            ax.plot([x, child_x], [y_of(node.level), y_of(node.level + 1)], color="#888", lw=1, zorder=0)
            ax.text((x + child_x) / 2, (y_of(node.level) + y_of(node.level + 1)) / 2, f"side {side}", fontsize=6,
                    ha="center", color="#555")
        bound = node.cut.get("upper_bound")
        label = f"node {node.id}: {len(node.classes)} classes\ncut {node.cut.get('cut', 0):g}"
        label += "" if bound is None else f" / bound {bound:.4g}"
        ax.text(x, y_of(node.level), label, ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round", "fc": "#e8eef8", "ec": "#57a"})
        return x

    draw(tree.nodes[0])
    ax.set_xlim(-0.8, len(leaves) - 0.2)
    ax.set_ylim(-0.9 - 0.12 * max(len(leaf) for leaf in leaves), levels - 0.6)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
