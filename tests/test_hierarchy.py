"""The tree of cuts: recursive max-cuts of a confusion graph, its labels, path signs and path probabilities."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from auxcut import AuxcutError
from auxcut.method import cutting
from auxcut.method.hierarchy import ClassTree, cut_tree, path_log_probs, plot_tree
from auxcut.method.maxcut import solve


def exact_solver(weights: np.ndarray, node: int):
    result = solve(weights, "exact")
    return np.asarray(result.sides), {"cut": result.cut, "upper_bound": result.upper_bound, "method": "exact"}


def blocks(sizes: list[int], within: float, across: float, seed: int = 0) -> np.ndarray:
    """A confusion-like graph: classes in blocks, heavily confused within a block, lightly across."""
    rng = np.random.default_rng(seed)
    block = np.repeat(np.arange(len(sizes)), sizes)
    w = np.where(block[:, None] == block[None, :], within, across) * rng.uniform(0.5, 1.5, (len(block), len(block)))
    w = np.triu(w, 1)
    return w + w.T


NAMES8 = [f"c{i}" for i in range(8)]


def test_depth_one_is_the_single_cut():
    w = blocks([4, 4], 10, 1)
    tree = cut_tree(w, NAMES8, 1, exact_solver)
    assert len(tree.nodes) == 1 and tree.nodes[0].children == [None, None]
    np.testing.assert_array_equal(tree.class_sides(0), solve(w, "exact").sides)
    sides = tree.class_sides(0)
    assert tree.leaves() == [[c for c in range(8) if sides[c] == 0], [c for c in range(8) if sides[c] == 1]]


def test_depth_two_cuts_each_side_on_its_own_subgraph():
    w = blocks([2, 2, 2, 2], 10, 1, seed=1)
    tree = cut_tree(w, NAMES8, 2, exact_solver)
    assert len(tree.nodes) == 3
    root = tree.nodes[0]
    assert root.level == 1 and root.parent is None and root.classes == list(range(8))
    for side in (0, 1):
        child = tree.nodes[root.children[side]]
        assert child.parent == 0 and child.branch == side and child.level == 2
        assert child.classes == [c for c, s in zip(root.classes, root.sides) if s == side]
        sub = w[np.ix_(child.classes, child.classes)]
        assert child.cut["cut"] == pytest.approx(solve(sub, "exact").cut)  # the child's own subgraph's max cut
    # the leaves partition the classes
    leaves = tree.leaves()
    assert len(leaves) == 4 and sorted(c for leaf in leaves for c in leaf) == list(range(8))


def test_a_side_without_confusion_or_with_one_class_stays_a_leaf():
    # classes 0-2 confused only with 3-5; nothing within each side, so depth 3 still gives a single cut
    w = np.zeros((6, 6))
    w[:3, 3:] = 5.0
    w = w + w.T
    tree = cut_tree(w, NAMES8[:6], 3, exact_solver)
    assert len(tree.nodes) == 1
    # two classes: one cut, each side a single class
    tree = cut_tree(np.array([[0.0, 2.0], [2.0, 0.0]]), ["a", "b"], 4, exact_solver)
    assert len(tree.nodes) == 1 and tree.leaves() == [[0], [1]]


def test_node_labels_and_path_signs():
    w = blocks([2, 2, 2, 2], 10, 1, seed=2)
    tree = cut_tree(w, NAMES8, 2, exact_solver)
    labels = np.array([0, 3, 5, 7, 7, 1])
    node_labels = tree.node_labels(labels)
    assert node_labels.shape == (6, 3)
    np.testing.assert_array_equal(node_labels[:, 0], tree.class_sides(0)[labels])
    signs = tree.path_signs()
    assert signs.shape == (3, 8)
    for c in range(8):
        # every class passes the root and exactly one of its children, taking the side it is on there
        on_path = np.flatnonzero(signs[:, c])
        assert on_path[0] == 0 and len(on_path) == 2
        for node in on_path:
            assert signs[node, c] == 2 * tree.class_sides(node)[c] - 1
        # and -1 labels exactly where the class is not under a node
        assert [(tree.class_sides(k)[c] >= 0) for k in range(3)] == [bool(signs[k, c]) for k in range(3)]


def test_path_probabilities_sum_to_one_over_the_leaves():
    w = blocks([3, 3, 2], 8, 1, seed=3)
    tree = cut_tree(w, NAMES8, 2, exact_solver)
    probs = np.random.default_rng(0).uniform(0.05, 0.95, (5, len(tree.nodes)))
    log_paths = path_log_probs(probs, tree.path_signs())
    assert log_paths.shape == (5, 8)
    # classes sharing a leaf share its path: one representative per leaf sums to 1
    leaf_total = sum(np.exp(log_paths[:, leaf[0]]) for leaf in tree.leaves())
    np.testing.assert_allclose(leaf_total, 1.0, rtol=1e-9)
    # by hand for one class
    c = 0
    expected = sum(np.log(probs[:, k]) if tree.class_sides(k)[c] == 1 else np.log(1 - probs[:, k])
                   for k in range(len(tree.nodes)) if tree.class_sides(k)[c] >= 0)
    np.testing.assert_allclose(log_paths[:, c], expected)
    # certain auxes do not give -inf
    assert np.isfinite(path_log_probs(np.zeros((2, len(tree.nodes))), tree.path_signs())).all()


def test_json_roundtrip_and_format_check():
    tree = cut_tree(blocks([2, 2, 2, 2], 10, 1), NAMES8, 2, exact_solver)
    data = tree.to_json()
    assert data["format"] == "auxcut class tree 1" and data["sides"] == tree.class_sides(0).tolist()
    again = ClassTree.from_json(data)
    assert again == tree
    with pytest.raises(AuxcutError, match="cut.json: expected a class tree"):
        ClassTree.from_json({"classes": NAMES8, "sides": [0, 1] * 4})


def test_depth_must_be_positive():
    with pytest.raises(AuxcutError, match="maxcut.depth"):
        cut_tree(blocks([2, 2], 1, 1), NAMES8[:4], 0, exact_solver)


def test_plot_tree_draws(tmp_path):
    tree = cut_tree(blocks([2, 2, 2, 2], 10, 1), NAMES8, 3, exact_solver)
    figure = plot_tree(tree, "a tree")
    figure.savefig(tmp_path / "tree.png")
    assert (tmp_path / "tree.png").stat().st_size > 5000


def test_the_maxcut_stage_cuts_each_node_with_its_own_seed_and_keeps_no_timings_in_the_tree():
    w = blocks([2, 2, 2, 2], 10, 1, seed=1)
    cfg = SimpleNamespace(method="lowrank", hyperplanes=1000, exact_max_n=0, polish="tabu", depth=2)
    cut = cutting.cut_classes(w, NAMES8, cfg, seed=3)
    assert len(cut.tree.nodes) == 3 and cut.warnings == []
    for node in cut.tree.nodes:
        sub = w[np.ix_(node.classes, node.classes)]
        alone = solve(sub, "lowrank", seed=3 + node.id, hyperplanes=1000, exact_max_n=0, polish="tabu")
        assert cut.results[node.id].cut == alone.cut and node.sides == [int(s) for s in alone.sides]
        assert "seconds" not in node.cut and node.cut["total_weight"] == pytest.approx(np.triu(sub, 1).sum())
        assert node.cut["gw_cut_over_sdp_bound"] == alone.rounded_cut / alone.sdp_bound
    assert cutting.cut_classes(w, NAMES8, cfg, seed=3).tree.to_json() == cut.tree.to_json()  # cut.json: same bytes
    metrics = cutting.summary(cut, cfg)
    sides = cut.tree.class_sides(0)
    assert metrics["n"] == 8 and metrics["cut"] == cut.results[0].cut and metrics["depth"] == 2
    assert metrics["side_0"] == [NAMES8[c] for c in range(8) if sides[c] == 0]
    assert [n["solve_seconds"] for n in metrics["nodes"]] == [cut.results[k].seconds for k in range(3)]
    assert metrics["leaves"] == [[NAMES8[c] for c in leaf] for leaf in cut.tree.leaves()]
