"""What the aux learns (params.yaml aux.target): the seed method's max-cut, or one of two controls that spend the same
aux parameters on another question, so that the aux gain (stacked - control head) can be compared at equal size:

- `cut`: each cut of data/cut.json's tree of max-cuts, one aux per cut (the seed method);
- `random_cut`: one random balanced split of the same nodes (half of them, rounded down, on side 1), drawn from the
  seed and aux.random_draw: a binary question of the same shape that ignores what the base confuses;
- `classes`: one multiclass aux over the data's classes (auxcut.method.auxiliary.train_classes), a tiny ensemble
  member whose K probabilities are stacked.

Only the aux follows the target: data/cut.json stays the tree of max-cuts, which exits.groups tree and the attributes'
`cut` read whatever aux.target says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from auxcut import AuxcutError
from auxcut.method.hierarchy import ClassTree, CutNode

TargetKind = Literal["cut", "random_cut", "classes"]


@dataclass(frozen=True)
class AuxCuts:
    """The cuts the binary auxes learn, one aux each, and every image's side of each."""

    tree: ClassTree
    relabeled: pd.DataFrame  # node_<k>: each image's side of cut k, -1 where its node is not under the cut


def random_cut(names: list[str], seed: int, draw: int) -> ClassTree:
    """A one-cut tree over the nodes `names` whose sides are a random balanced split, the same for the same seed and
    draw; an AuxcutError for a graph of fewer than 2 nodes, which no cut splits."""
    if len(names) < 2:
        raise AuxcutError(f"aux.target random_cut: the confusion graph has {len(names)} node(s) {names}; a cut needs "
                          f"at least 2")
    side_1 = np.random.default_rng([seed, draw]).permutation(len(names))[:len(names) // 2]
    sides = np.zeros(len(names), dtype=np.int64)
    sides[side_1] = 1
    node = CutNode(0, None, None, 1, list(range(len(names))), sides.tolist(), cut={"method": "random", "draw": draw})
    return ClassTree(list(names), 1, [node])


def aux_cuts(target: TargetKind, tree: ClassTree, relabeled: pd.DataFrame, node_labels: np.ndarray, seed: int,
             draw: int) -> AuxCuts | None:
    """What the binary auxes learn: the max-cuts of `tree` (relabel's `relabeled`), or a random cut of the same nodes
    (`node_labels`: every image's node); None for `classes`, which learns the classes themselves."""
    if target == "cut":
        return AuxCuts(tree, relabeled)
    if target == "random_cut":
        drawn = random_cut(tree.names, seed, draw)
        return AuxCuts(drawn, pd.DataFrame(drawn.node_labels(node_labels), columns=["node_0"]))
    if target == "classes":
        return None
    raise AuxcutError(f"aux.target: expected cut, random_cut or classes, got {target!r}")


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two 0/1 side assignments of the same nodes split them alike (a cut's sides can be swapped)."""
    a, b = np.asarray(a), np.asarray(b)
    return bool(np.array_equal(a, b) or np.array_equal(a, 1 - b))


def summary(target: TargetKind, cuts: AuxCuts | None, max_cut: ClassTree) -> dict[str, Any]:
    """metrics/train_aux.json's record of a random cut: its draw, its sides, and whether it fell on the max-cut's
    own split (possible on a small graph); nothing for the other targets."""
    if target != "random_cut" or cuts is None:
        return {}
    sides = cuts.tree.class_sides(0)
    names = cuts.tree.names
    return {"random_cut": {"draw": cuts.tree.nodes[0].cut["draw"],
                           "side_0": [n for n, s in zip(names, sides) if s == 0],
                           "side_1": [n for n, s in zip(names, sides) if s == 1],
                           "same_as_max_cut": same_partition(sides, max_cut.class_sides(0))}}
