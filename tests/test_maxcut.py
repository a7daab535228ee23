"""Tests for the auxcut.method.maxcut package, checked against brute force, cvxpy and closed-form SDP values."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from auxcut import AuxcutError
from auxcut.apps.cli import auxcut
from auxcut.method.maxcut import (
    METHODS,
    MaxCut,
    check_weights,
    cut_value,
    cvxpy_sdp,
    dual_bound,
    edge_count,
    exact_maxcut,
    hyperplane_cuts,
    local_search,
    lowrank_sdp,
    read_graph,
    solve,
    tabu_search,
    total_weight,
)
from auxcut.method.maxcut.exact import MAX_EXACT_N
from auxcut.method.maxcut.graph import MAX_NODES
from auxcut.method.maxcut.rounding import round_and_polish
from auxcut.method.maxcut.tabu import default_iterations

REPO = Path(__file__).resolve().parents[1]
GW_ALPHA = 0.878  # Goemans-Williamson: the rounded cut is at least this fraction of the SDP value
SUMMARY_KEYS = {"method", "cut", "upper_bound", "gap", "sdp_value", "exact", "exact_reached", "seconds"}
CLI_KEYS = {"n", "edges", "method", "cut", "upper_bound", "gap", "seconds"}


# --------------------------------------------------------------------------- references


def random_graph(n: int, seed: int, density: float = 1.0, integer: bool = False) -> np.ndarray:
    """Symmetric, zero diagonal, non-negative; `density` < 1 leaves zero-weight pairs."""
    rng = np.random.default_rng(seed)
    if integer:
        w = rng.integers(0, 6, size=(n, n)).astype(np.float64)
    else:
        w = rng.random((n, n))
    w = w * (rng.random((n, n)) < density)
    w = np.triu(w, 1)
    return w + w.T


def dense(w) -> np.ndarray:
    return w.toarray() if sp.issparse(w) else np.asarray(w, dtype=np.float64)


def loop_cut(w, sides) -> float:
    """Cut value by a plain double loop over the pairs i < j (the diagonal never counts)."""
    w = dense(w)
    n = len(w)
    return float(sum(w[i, j] for i in range(n) for j in range(i + 1, n) if sides[i] != sides[j]))


def slow_brute_force(w) -> float:
    """Max cut by the double loop over every assignment in {0,1}^n (small n only)."""
    return max(loop_cut(w, sides) for sides in itertools.product((0, 1), repeat=len(dense(w))))


def brute_force(w) -> float:
    """Max cut over every assignment in {0,1}^n, summing the weights of the pairs on different sides."""
    w = dense(w)
    w = w - np.diag(np.diag(w))
    sides = np.array(list(itertools.product((0, 1), repeat=len(w))), dtype=np.int8)
    crossing = sides[:, :, None] != sides[:, None, :]
    return float((crossing * w).sum(axis=(1, 2)).max() / 2)


def assert_partition(sides, n: int):
    sides = np.asarray(sides)
    assert sides.shape == (n,)
    assert set(np.unique(sides).tolist()) <= {0, 1}


def assert_local_optimum(w, sides):
    """No single flip raises the cut (checked with the double loop)."""
    value = loop_cut(w, sides)
    for i in range(len(sides)):
        flipped = np.array(sides).copy()
        flipped[i] = 1 - flipped[i]
        assert loop_cut(w, flipped) <= value + 1e-9


def quiet_solve(*args, **kwargs) -> MaxCut:
    """solve() with SCS's 'may be inaccurate' chatter silenced (accuracy is checked by the test)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        return solve(*args, **kwargs)


def cycle(n: int) -> np.ndarray:
    w = np.zeros((n, n))
    for i in range(n):
        w[i, (i + 1) % n] = w[(i + 1) % n, i] = 1.0
    return w


# --------------------------------------------------------------------------- check_weights


@pytest.mark.parametrize(
    "bad, word",
    [
        (np.zeros((2, 3)), "square"),
        (np.zeros(4), "square"),
        (np.zeros((2, 2, 2)), "square"),
        (np.zeros((1, 1)), "at least 2"),
        (np.zeros((0, 0)), "at least 2"),
        (np.array([[0.0, np.nan], [np.nan, 0.0]]), "finite"),
        (np.array([[0.0, np.inf], [np.inf, 0.0]]), "finite"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), "non-negative"),
        (np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.5, 0.0]]), "symmetric"),
    ],
)
def test_check_weights_rejects(bad, word):
    with pytest.raises(AuxcutError, match=word):
        check_weights(bad)


@pytest.mark.parametrize(
    "bad, word",
    [
        (sp.csr_matrix(np.zeros((2, 3))), "square"),
        (sp.csr_matrix(np.zeros((1, 1))), "at least 2"),
        (sp.csr_matrix(np.array([[0.0, np.nan], [np.nan, 0.0]])), "finite"),
        (sp.coo_matrix(np.array([[0.0, np.inf], [np.inf, 0.0]])), "finite"),
        (sp.csr_matrix(np.array([[0.0, -1.0], [-1.0, 0.0]])), "non-negative"),
        (sp.csc_matrix(np.array([[0.0, 2.0, 0.0], [2.0, 0.0, -0.5], [0.0, -0.5, 0.0]])), "non-negative"),
        (sp.csr_matrix(np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.5, 0.0]])), "symmetric"),
        (sp.csr_matrix(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])), "symmetric"),  # one-sided edge
        (sp.coo_array(np.array([[0.0, 1.0], [2.0, 0.0]])), "symmetric"),
    ],
)
def test_check_weights_rejects_sparse(bad, word):
    with pytest.raises(AuxcutError, match=word):
        check_weights(bad)


def test_check_weights_message_names_source():
    with pytest.raises(AuxcutError, match=r"^my_graph\.npy: "):
        check_weights(np.zeros((2, 3)), where="my_graph.npy")
    with pytest.raises(AuxcutError, match=r"^my_graph\.txt: .*symmetric"):
        check_weights(sp.csr_matrix(np.array([[0.0, 1.0], [0.0, 0.0]])), where="my_graph.txt")


def test_check_weights_zeroes_diagonal_without_touching_input():
    w = random_graph(6, seed=1)
    with_diag = w.copy()
    np.fill_diagonal(with_diag, np.arange(1, 7, dtype=float))
    before = with_diag.copy()
    out = check_weights(with_diag)
    assert isinstance(out, np.ndarray)
    assert np.all(np.diag(out) == 0)
    off = ~np.eye(6, dtype=bool)
    np.testing.assert_array_equal(out[off], w[off])
    np.testing.assert_array_equal(with_diag, before)  # input not modified
    assert out.dtype == np.float64


@pytest.mark.parametrize("fmt", [sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.lil_matrix, sp.csr_array, sp.coo_array])
def test_check_weights_sparse_drops_diagonal_without_touching_input(fmt):
    w = random_graph(7, seed=2, density=0.5)
    with_diag = w.copy()
    np.fill_diagonal(with_diag, np.arange(1, 8, dtype=float))
    with_diag[3, 3] = -4.0  # a negative self-loop is dropped, not an error
    matrix = fmt(with_diag)
    before = matrix.toarray().copy()
    out = check_weights(matrix)
    assert sp.issparse(out)
    assert out.format == "csr"
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out.toarray(), w)
    assert out.diagonal().tolist() == [0.0] * 7
    assert all(r != c for r, c in zip(*out.nonzero()))  # the diagonal is gone, not stored as zeros
    np.testing.assert_array_equal(matrix.toarray(), before)  # input not modified
    # the same graph, dense, gives the same matrix
    np.testing.assert_array_equal(check_weights(with_diag), out.toarray())


def test_check_weights_sparse_integer_input_becomes_float():
    out = check_weights(sp.csr_matrix(np.array([[0, 2, 0], [2, 0, 1], [0, 1, 0]], dtype=np.int64)))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out.toarray(), [[0.0, 2.0, 0.0], [2.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def test_check_weights_drops_negative_diagonal():
    # The diagonal is dropped before the sign check, so a negative self-loop is not an error.
    w = np.array([[-5.0, 1.0], [1.0, -2.0]])
    out = check_weights(w)
    np.testing.assert_array_equal(out, [[0.0, 1.0], [1.0, 0.0]])


def test_check_weights_symmetrises_tiny_asymmetry():
    w = random_graph(5, seed=2)
    w[0, 1] += 1e-14
    for given in (w, sp.csr_matrix(w)):
        out = dense(check_weights(given))
        np.testing.assert_array_equal(out, out.T)
        np.testing.assert_allclose(out, w, atol=1e-13)


def test_check_weights_accepts_integer_lists():
    out = check_weights([[0, 2], [2, 0]])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0.0, 2.0], [2.0, 0.0]])


def test_non_numeric_matrix_is_a_clear_error():
    with pytest.raises(AuxcutError, match="numeric"):
        check_weights(np.array([["a", "b"], ["c", "d"]]))


# --------------------------------------------------------------------------- cut_value, total_weight, edge_count


@pytest.mark.parametrize("seed", range(6))
def test_cut_value_matches_double_loop(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 12))
    w = random_graph(n, seed=seed, density=0.6, integer=seed % 2 == 0)
    s = check_weights(sp.csr_matrix(w))
    for _ in range(5):
        sides = rng.integers(0, 2, size=n)
        reference = loop_cut(w, sides)
        assert cut_value(w, sides) == pytest.approx(reference, abs=1e-12)
        assert cut_value(s, sides) == pytest.approx(reference, abs=1e-12)


def test_cut_value_ignores_self_loops():
    w = random_graph(6, seed=4, density=0.7)
    with_diag = w + np.diag(np.arange(1.0, 7.0))
    sides = np.array([0, 1, 1, 0, 1, 0])
    reference = loop_cut(w, sides)
    assert cut_value(with_diag, sides) == pytest.approx(reference, abs=1e-12)
    assert cut_value(sp.csr_matrix(with_diag), sides) == pytest.approx(reference, abs=1e-12)


def test_cut_value_trivial_partitions():
    w = random_graph(7, seed=3)
    for given in (w, sp.csr_matrix(w)):
        assert cut_value(given, np.zeros(7, dtype=int)) == pytest.approx(0.0, abs=1e-12)
        assert cut_value(given, np.ones(7, dtype=int)) == pytest.approx(0.0, abs=1e-12)
        # One node alone on its side cuts exactly its incident edges.
        sides = np.zeros(7, dtype=int)
        sides[4] = 1
        assert cut_value(given, sides) == pytest.approx(w[4].sum())


@pytest.mark.parametrize("seed", range(4))
def test_total_weight_and_edge_count_match_loops(seed):
    n = 5 + seed
    w = random_graph(n, seed=10 + seed, density=0.5, integer=seed % 2 == 1)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    expected_total = sum(w[i, j] for i, j in pairs)
    expected_edges = sum(1 for i, j in pairs if w[i, j] != 0)
    for given in (check_weights(w), check_weights(sp.csr_matrix(w))):
        assert total_weight(given) == pytest.approx(expected_total, rel=1e-12)
        assert edge_count(given) == expected_edges


# --------------------------------------------------------------------------- exact_maxcut

EXACT_CASES = [
    (2, 0, 1.0, False),
    (3, 1, 1.0, False),
    (4, 2, 0.5, True),
    (5, 3, 1.0, True),
    (5, 4, 0.3, False),
    (6, 5, 0.5, False),
    (7, 6, 1.0, True),
    (7, 7, 0.25, True),
    (8, 8, 0.4, False),
    (8, 9, 1.0, False),
    (9, 10, 0.35, True),
    (9, 11, 1.0, False),
]


@pytest.mark.parametrize("n, seed, density, integer", EXACT_CASES)
def test_exact_maxcut_matches_brute_force(n, seed, density, integer):
    w = random_graph(n, seed=seed, density=density, integer=integer)
    optimum = slow_brute_force(w)
    for given in (w, check_weights(sp.csr_matrix(w))):
        sides, value = exact_maxcut(given)
        assert value == pytest.approx(optimum, abs=1e-9)
        assert_partition(sides, n)
        assert loop_cut(w, sides) == pytest.approx(value, abs=1e-9)
        assert sides[-1] == 0  # the last node is the one fixed on side 0


def test_vectorised_brute_force_agrees_with_double_loop():
    """The fast reference used below is itself checked against the plain one."""
    for seed in range(5):
        w = random_graph(7, seed=500 + seed, density=0.6, integer=seed % 2 == 0)
        assert brute_force(w) == pytest.approx(slow_brute_force(w), abs=1e-12)


def test_exact_maxcut_chunking_does_not_change_result():
    w = random_graph(9, seed=12, density=0.7)
    _, reference = exact_maxcut(w)
    for chunk in (1, 3, 7, 256):
        sides, value = exact_maxcut(w, chunk=chunk)
        assert value == pytest.approx(reference, abs=1e-12)
        assert cut_value(w, sides) == pytest.approx(value, abs=1e-12)


def test_exact_maxcut_zero_graph():
    sides, value = exact_maxcut(np.zeros((4, 4)))
    assert value == 0.0
    assert len(sides) == 4


def test_exact_maxcut_refuses_large_n():
    assert MAX_EXACT_N == 24
    with pytest.raises(AuxcutError, match="too large"):
        exact_maxcut(np.zeros((25, 25)))


def test_solve_exact_refuses_n_25():
    w = random_graph(25, seed=13, density=0.3)
    with pytest.raises(AuxcutError, match="too large"):
        solve(w, "exact")
    with pytest.raises(AuxcutError, match="too large"):
        solve(sp.csr_matrix(w), "exact")


# --------------------------------------------------------------------------- local_search


@pytest.mark.parametrize("seed", range(8))
def test_local_search_improves_to_local_optimum(seed):
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(3, 16))
    w = random_graph(n, seed=seed, density=float(rng.uniform(0.3, 1.0)), integer=seed % 3 == 0)
    start = rng.integers(0, 2, size=n)
    before = loop_cut(w, start)
    out = local_search(w, start)
    assert_partition(out, n)
    assert loop_cut(w, out) >= before - 1e-12
    assert_local_optimum(w, out)
    # the sparse version of the same graph walks the same path to the same cut
    out_sparse = local_search(check_weights(sp.csr_matrix(w)), start)
    np.testing.assert_array_equal(out_sparse, out)


def test_local_search_leaves_optimum_alone_and_escapes_zero_cut():
    w = random_graph(8, seed=21)
    best, value = exact_maxcut(w)
    for given in (w, check_weights(sp.csr_matrix(w))):
        assert loop_cut(w, local_search(given, best)) == pytest.approx(value)
        # everyone on one side cuts nothing; on a graph with positive weights, one flip must help
        out = local_search(given, np.zeros(8, dtype=int))
        assert loop_cut(w, out) > 0
        assert_local_optimum(w, out)


@pytest.mark.parametrize("to_input", [np.asarray, sp.csr_matrix, sp.coo_matrix], ids=["dense", "csr", "coo"])
def test_local_search_ignores_self_loops(to_input):
    """A non-zero diagonal used to make single flips cycle forever."""
    w = np.array([[5.0, 1.0, 0.0], [1.0, 5.0, 2.0], [0.0, 2.0, 3.0]])
    sides = local_search(to_input(w), np.array([0, 0, 0]))
    off = w - np.diag(np.diag(w))
    assert cut_value(off, sides) == 3.0  # the optimum: node 1 alone cuts both edges
    assert loop_cut(off, sides) == 3.0


def test_local_search_does_not_modify_sparse_input():
    w = sp.csr_matrix(np.array([[5.0, 1.0, 0.0], [1.0, 5.0, 2.0], [0.0, 2.0, 3.0]]))
    before = w.toarray().copy()
    local_search(w, np.array([0, 0, 0]))
    np.testing.assert_array_equal(w.toarray(), before)


def test_local_search_does_not_modify_dense_input():
    w = np.array([[5.0, 1.0, 0.0], [1.0, 5.0, 2.0], [0.0, 2.0, 3.0]])
    before = w.copy()
    start = np.array([0, 0, 0])
    local_search(w, start)
    np.testing.assert_array_equal(w, before)
    np.testing.assert_array_equal(start, [0, 0, 0])


# --------------------------------------------------------------------------- hyperplane_cuts, round_and_polish


def test_hyperplane_cuts_is_deterministic_per_rng():
    rng = np.random.default_rng(45)
    w = random_graph(10, seed=45)
    vectors = rng.standard_normal((10, 10))
    a = hyperplane_cuts(w, vectors, 64, np.random.default_rng(3), keep=3)
    b = hyperplane_cuts(w, vectors, 64, np.random.default_rng(3), keep=3)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
        assert_partition(x, 10)


def test_hyperplane_cuts_best_first_and_dense_equals_sparse():
    rng = np.random.default_rng(46)
    w = random_graph(12, seed=46, density=0.5)
    vectors = rng.standard_normal((12, 4))
    cuts = hyperplane_cuts(w, vectors, 600, np.random.default_rng(0), keep=5, chunk=128)
    values = [loop_cut(w, c) for c in cuts]
    assert len(cuts) == 5
    assert values == sorted(values, reverse=True)
    sparse_cuts = hyperplane_cuts(check_weights(sp.csr_matrix(w)), vectors, 600, np.random.default_rng(0), keep=5,
                                  chunk=128)
    assert [loop_cut(w, c) for c in sparse_cuts] == pytest.approx(values, abs=1e-12)
    # every kept cut is a hyperplane cut: the sign pattern of V @ r for some r, so it is at most the optimum
    assert values[0] <= brute_force(w) + 1e-9


def test_hyperplane_cuts_of_collinear_vectors():
    # Vectors on a line: every hyperplane gives the same split {x>0} vs {x<0} (or its mirror).
    w = random_graph(6, seed=46)
    vectors = np.array([[1.0], [-1.0], [2.0], [-0.5], [0.3], [-3.0]])
    (sides,) = hyperplane_cuts(w, vectors, 16, np.random.default_rng(0))
    expected = np.array([1, 0, 1, 0, 1, 0])
    assert np.array_equal(sides, expected) or np.array_equal(sides, 1 - expected)


@pytest.mark.parametrize("seed", range(4))
def test_round_and_polish_returns_a_local_optimum_with_its_value(seed):
    n = 9 + seed
    w = random_graph(n, seed=600 + seed, density=0.6, integer=seed % 2 == 0)
    vectors = np.random.default_rng(seed).standard_normal((n, 3))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sides, value = round_and_polish(w, vectors, 100, seed)
    assert_partition(sides, n)
    assert value == pytest.approx(loop_cut(w, sides), abs=1e-9)
    assert value <= brute_force(w) + 1e-9
    assert_local_optimum(w, sides)
    again, value_again = round_and_polish(w, vectors, 100, seed)
    np.testing.assert_array_equal(again, sides)
    assert value_again == value
    sparse_sides, sparse_value = round_and_polish(check_weights(sp.csr_matrix(w)), vectors, 100, seed)
    assert sparse_value == pytest.approx(value, abs=1e-9)


# --------------------------------------------------------------------------- tabu_search


def trap_path() -> tuple[np.ndarray, np.ndarray]:
    """A weighted path and a cut of it that no single flip improves, 2 short of the optimum.

    The path c - a - u - v - b - d (nodes 4, 2, 0, 1, 3, 5) has weights 2, 1, 2, 1, 2. The trap puts
    u, a, d on side 0 and v, b, c on side 1: it cuts the three weight-2 edges (6) and leaves a-u and
    v-b uncut. Flipping any one node loses (u: -2 + 1, a: +1 - 2, c: -2, ...), so one-flip local
    search stays; flipping u and v together gains 2. A path is bipartite: the max cut takes all 8.
    """
    w = np.zeros((6, 6))
    for i, j, weight in [(4, 2, 2.0), (2, 0, 1.0), (0, 1, 2.0), (1, 3, 1.0), (3, 5, 2.0)]:
        w[i, j] = w[j, i] = weight
    return w, np.array([0, 1, 0, 1, 1, 0])


def test_trap_is_a_local_optimum_that_local_search_cannot_leave():
    w, trap = trap_path()
    assert loop_cut(w, trap) == 6.0
    assert brute_force(w) == 8.0
    assert_local_optimum(w, trap)
    np.testing.assert_array_equal(local_search(w, trap), trap)


@pytest.mark.parametrize("to_input", [np.asarray, sp.csr_matrix], ids=["dense", "sparse"])
def test_tabu_escapes_the_local_optimum_local_search_is_stuck_in(to_input):
    w, trap = trap_path()
    sides, value = tabu_search(check_weights(to_input(w)), trap, seconds=10.0, max_iterations=50, seed=0)
    assert value == 8.0
    assert loop_cut(w, sides) == 8.0


def test_tabu_aspiration_takes_a_tabu_move_to_a_new_best():
    """A regression found by search: from this local optimum (cut 103), the walk flips node 8 (102),
    then 11 (100) and 7 (105, a new best); flipping node 8 back, still tabu, now gives 106 > 105, so
    aspiration allows it, and three more flips reach the optimum 117. Without aspiration the move
    stays forbidden and the search, stopped after 3 flips without a new best, ends at 112."""
    w = random_graph(15, seed=5059, density=0.6, integer=True)
    start = local_search(w, np.random.default_rng(59).integers(0, 2, size=15))
    assert cut_value(w, start) == 103.0
    assert_local_optimum(w, start)
    sides, value = tabu_search(w, start, seconds=10.0, max_iterations=3, seed=0)
    assert value == exact_maxcut(w)[1] == 117.0
    assert loop_cut(w, sides) == 117.0


@pytest.mark.parametrize("seed", range(3))
def test_tabu_improves_on_local_search_of_a_larger_graph(seed):
    """On n = 80 the one-flip local optimum from a random start is not the end: tabu goes past it."""
    w = random_graph(80, seed=1300 + seed, density=0.3, integer=True)
    start = local_search(w, np.random.default_rng(seed).integers(0, 2, size=80))
    assert_local_optimum(w, start)
    sides, value = tabu_search(w, start, seconds=10.0, max_iterations=2000, seed=seed)
    assert value > loop_cut(w, start)
    assert value == pytest.approx(loop_cut(w, sides), abs=1e-9)


@pytest.mark.parametrize("n, seed, density, integer", [(6, 0, 1.0, False), (9, 1, 0.5, True), (12, 2, 0.6, False),
                                                       (14, 3, 0.3, True), (16, 4, 0.5, False), (16, 5, 0.8, True)])
def test_tabu_reaches_the_exact_optimum_of_small_graphs(n, seed, density, integer):
    w = random_graph(n, seed=1400 + seed, density=density, integer=integer)
    _, optimum = exact_maxcut(w)
    rng = np.random.default_rng(seed)
    for start in (np.zeros(n, dtype=int), rng.integers(0, 2, size=n)):  # from the empty cut, and a random one
        for tabu_seed in range(3):
            sides, value = tabu_search(w, start, seconds=10.0, max_iterations=default_iterations(n), seed=tabu_seed)
            assert value == pytest.approx(optimum, abs=1e-9)
            assert loop_cut(w, sides) == pytest.approx(optimum, abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_tabu_never_worse_than_its_start_and_value_is_cut_value(seed):
    rng = np.random.default_rng(1500 + seed)
    n = int(rng.integers(20, 60))
    w = random_graph(n, seed=1500 + seed, density=float(rng.uniform(0.1, 0.6)), integer=seed % 2 == 0)
    for start in (rng.integers(0, 2, size=n), local_search(w, rng.integers(0, 2, size=n)), exact_maxcut(w)[0]
                  if n <= 20 else np.ones(n, dtype=int)):
        for given in (w, check_weights(sp.csr_matrix(w))):
            sides, value = tabu_search(given, start, seconds=10.0, max_iterations=300, seed=seed)
            assert_partition(sides, n)
            assert sides.dtype == np.int64
            assert value >= cut_value(w, start) - 1e-9 * max(1.0, total_weight(w))
            assert value == cut_value(given, sides)  # exactly: the value is the returned cut's own
            assert value == pytest.approx(loop_cut(w, sides), abs=1e-9)


def test_tabu_returns_the_start_when_it_is_already_optimal():
    w = random_graph(10, seed=1510, density=0.7)
    best, optimum = exact_maxcut(w)
    sides, value = tabu_search(w, best, seconds=10.0, max_iterations=200, seed=0)
    assert value == pytest.approx(optimum, abs=1e-12)
    assert cut_value(w, sides) == pytest.approx(optimum, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_tabu_dense_and_sparse_walk_the_same_path(seed):
    """Integer weights: every gain is exact in both forms, so the same seed gives the same cut."""
    w = random_graph(50, seed=1600 + seed, density=0.2, integer=True)
    start = np.random.default_rng(seed).integers(0, 2, size=50)
    dense_sides, dense_value = tabu_search(w, start, seconds=10.0, max_iterations=1500, seed=seed)
    sparse_sides, sparse_value = tabu_search(check_weights(sp.csr_matrix(w)), start, seconds=10.0,
                                             max_iterations=1500, seed=seed)
    np.testing.assert_array_equal(dense_sides, sparse_sides)
    assert dense_value == sparse_value


def test_tabu_dense_and_sparse_agree_on_real_weights():
    w = random_graph(40, seed=1610, density=0.3)
    start = np.zeros(40, dtype=int)
    _, dense_value = tabu_search(w, start, seconds=10.0, max_iterations=1000, seed=1)
    _, sparse_value = tabu_search(check_weights(sp.csr_matrix(w)), start, seconds=10.0, max_iterations=1000, seed=1)
    assert dense_value == pytest.approx(sparse_value, rel=1e-9)


def test_tabu_is_deterministic_per_seed():
    w = random_graph(60, seed=1620, density=0.3)
    start = np.random.default_rng(0).integers(0, 2, size=60)
    runs = [tabu_search(w, start, seconds=10.0, max_iterations=1500, seed=5) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


def test_tabu_does_not_modify_its_inputs():
    w = random_graph(20, seed=1630, density=0.5)
    ws = check_weights(sp.csr_matrix(w))
    start = np.random.default_rng(0).integers(0, 2, size=20)
    before_w, before_ws, before_start = w.copy(), ws.toarray().copy(), start.copy()
    tabu_search(w, start, seconds=10.0, max_iterations=200, seed=0)
    tabu_search(ws, start, seconds=10.0, max_iterations=200, seed=0)
    np.testing.assert_array_equal(w, before_w)
    np.testing.assert_array_equal(ws.toarray(), before_ws)
    np.testing.assert_array_equal(start, before_start)


def test_tabu_time_cap_stops_a_long_search():
    """With an iteration budget it would never reach, the wall-clock cap ends the search."""
    from time import perf_counter

    w = check_weights(sp.csr_matrix(random_graph(300, seed=1640, density=0.05, integer=True)))
    start = np.zeros(300, dtype=int)
    clock = perf_counter()
    sides, value = tabu_search(w, start, seconds=0.05, max_iterations=10**9, seed=0)
    assert perf_counter() - clock < 2.0
    assert value == cut_value(w, sides) > 0


def grid_torus(rows: int, cols: int) -> np.ndarray:
    """The rows x cols torus, unit weights; bipartite when both are even (max cut: every edge)."""
    n = rows * cols
    w = np.zeros((n, n))
    for r in range(rows):
        for c in range(cols):
            for rr, cc in ((r, (c + 1) % cols), ((r + 1) % rows, c)):
                w[r * cols + c, rr * cols + cc] = w[rr * cols + cc, r * cols + c] = 1.0
    return w


def test_tabu_stops_at_a_target_it_cannot_beat():
    """Given a proven upper bound it reaches, tabu stops there instead of running out its budget."""
    from time import perf_counter

    w = check_weights(sp.csr_matrix(grid_torus(10, 12)))  # bipartite: every one of its 240 edges can be cut
    start = np.random.default_rng(0).integers(0, 2, size=120)
    clock = perf_counter()
    sides, value = tabu_search(w, start, seconds=30.0, max_iterations=10**9, seed=0, target=240.0 + 1e-9)
    assert perf_counter() - clock < 5.0  # without the target this would run for the full 30 s
    assert value == 240.0 == loop_cut(w, sides)
    # a start already at the target comes straight back
    again, value_again = tabu_search(w, sides, seconds=30.0, max_iterations=10**9, seed=1, target=240.0)
    np.testing.assert_array_equal(again, sides)
    assert value_again == 240.0


def test_tabu_every_node_tabu_on_a_tiny_graph():
    """n = 2 and 3 with tenures up to 10: every node is tabu most of the time, the search still moves."""
    for w in (np.array([[0.0, 1.5], [1.5, 0.0]]), cycle(3)):
        n = len(w)
        sides, value = tabu_search(w, np.zeros(n, dtype=int), seconds=10.0, max_iterations=30, seed=0)
        assert value == pytest.approx(brute_force(w))


def test_tabu_rejects_bad_arguments():
    w = random_graph(5, seed=1650)
    with pytest.raises(AuxcutError, match="sides"):
        tabu_search(w, np.zeros(4, dtype=int))
    with pytest.raises(AuxcutError, match="sides"):
        tabu_search(w, np.array([0, 1, 2, 0, 1]))
    with pytest.raises(AuxcutError, match="max_iterations"):
        tabu_search(w, np.zeros(5, dtype=int), max_iterations=0)
    with pytest.raises(AuxcutError, match="seconds"):
        tabu_search(w, np.zeros(5, dtype=int), seconds=0.0)


def test_default_iterations_grow_with_n():
    assert default_iterations(2) == default_iterations(20) >= 1000
    assert default_iterations(800) > default_iterations(100) > default_iterations(20)


# --------------------------------------------------------------------------- the SDP: lowrank, cvxpy, closed forms


@pytest.mark.parametrize("n", [5, 7, 9])
def test_sdp_of_odd_cycle_matches_closed_form(n):
    """For the odd cycle C_n the GW SDP value is (n/2)(1 + cos(pi/n)) (Goemans-Williamson's C_5 example)."""
    w = cycle(n)
    expected = n / 2 * (1 + np.cos(np.pi / n))
    _, low = lowrank_sdp(w, tol=1e-10)[:2]
    _, ref = cvxpy_sdp(w)
    assert low == pytest.approx(expected, rel=1e-5)
    assert ref == pytest.approx(expected, rel=1e-5)
    result = solve(sp.csr_matrix(w), "lowrank")
    assert result.upper_bound == pytest.approx(expected, rel=1e-4)
    assert result.upper_bound >= expected * (1 - 1e-9)  # a dual bound can never be below the SDP optimum
    assert result.cut == (n - 1)  # the max cut of an odd cycle leaves exactly one edge uncut


@pytest.mark.parametrize("n", [4, 7, 10])
def test_sdp_of_complete_graph_matches_closed_form(n):
    """For K_n with unit weights the SDP optimum is X_ij = -1/(n-1), value n^2/4; the max cut is floor(n/2)ceil(n/2)."""
    w = np.ones((n, n)) - np.eye(n)
    result = solve(w, "lowrank", tol=1e-10)
    assert result.sdp_value == pytest.approx(n * n / 4, rel=1e-5)
    assert result.upper_bound == pytest.approx(n * n / 4, rel=1e-4)
    assert result.upper_bound >= n * n / 4 * (1 - 1e-9)
    assert result.cut == (n // 2) * (n - n // 2)


@pytest.mark.parametrize("seed", range(3))
def test_lowrank_sdp_returns_unit_vectors_and_their_value(seed):
    n = 15 + 5 * seed
    w = random_graph(n, seed=700 + seed, density=0.4)
    for given in (w, check_weights(sp.csr_matrix(w))):
        vectors, value, iterations = lowrank_sdp(given, seed=seed)
        assert vectors.shape[0] == n
        assert vectors.shape[1] >= int(np.ceil(np.sqrt(2 * n)))  # Barvinok-Pataki: rank ~ sqrt(2n) suffices
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-12)
        gram = vectors @ vectors.T
        assert value == pytest.approx(0.25 * float((w * (1 - gram)).sum()), rel=1e-9)
        assert isinstance(iterations, int) and iterations >= 1
    vectors, _, _ = lowrank_sdp(w, rank=3, seed=seed)
    assert vectors.shape == (n, 3)


@pytest.mark.parametrize("n, seed, density, integer", [(20, 1, 1.0, False), (27, 2, 0.3, True),
                                                       (33, 3, 0.5, False), (40, 4, 0.15, True)])
def test_lowrank_matches_cvxpy(n, seed, density, integer):
    w = random_graph(n, seed=800 + seed, density=density, integer=integer)
    given = check_weights(sp.csr_matrix(w)) if density < 0.5 else w
    low = quiet_solve(given, "lowrank", hyperplanes=200)
    ref = quiet_solve(given, "cvxpy", hyperplanes=200)
    assert low.method == "lowrank" and ref.method == "cvxpy"
    assert low.sdp_value == pytest.approx(ref.sdp_value, rel=1e-3)
    # both certificates bound the same relaxation from above, so they agree with it and with each other
    for r in (low, ref):
        assert r.upper_bound >= ref.sdp_value * (1 - 1e-6)
        assert r.upper_bound == pytest.approx(ref.sdp_value, rel=1e-3)
        assert r.cut <= r.upper_bound
        assert r.cut >= GW_ALPHA * r.sdp_value
        assert r.cut == pytest.approx(loop_cut(w, r.sides), abs=1e-9)


# --------------------------------------------------------------------------- the certificate

CERT_CASES = [
    # n, seed, density, integer weights, sparse input
    (2, 0, 1.0, False, False),
    (3, 1, 1.0, True, True),
    (4, 2, 0.6, True, False),
    (5, 3, 1.0, False, True),
    (5, 4, 0.4, True, True),
    (6, 5, 0.3, False, False),
    (6, 6, 1.0, True, False),
    (7, 7, 0.5, False, True),
    (7, 8, 1.0, True, True),
    (8, 9, 0.25, True, False),
    (8, 10, 1.0, False, False),
    (9, 11, 0.4, False, True),
    (9, 12, 0.7, True, False),
    (10, 13, 0.2, True, True),
    (10, 14, 1.0, False, False),
    (11, 15, 0.35, False, True),
    (11, 16, 0.8, True, False),
    (12, 17, 0.25, True, True),
    (12, 18, 0.6, False, False),
    (12, 19, 1.0, True, True),
]


def cert_graph(n, seed, density, integer, sparse):
    w = random_graph(n, seed=900 + seed, density=density, integer=integer)
    if w.sum() == 0:  # keep at least one edge so the SDP path runs
        w[0, 1] = w[1, 0] = 1.0
    return w, (sp.csr_matrix(w) if sparse else w)


@pytest.mark.parametrize("n, seed, density, integer, sparse", CERT_CASES)
def test_every_method_certifies_the_optimum(n, seed, density, integer, sparse):
    w, given = cert_graph(n, seed, density, integer, sparse)
    optimum = brute_force(w)
    for method in ("exact", "lowrank", "cvxpy", "auto"):
        result = quiet_solve(given, method, hyperplanes=200, seed=seed)
        assert_partition(result.sides, n)
        assert result.sides[0] == 0
        assert result.cut == pytest.approx(loop_cut(w, result.sides), abs=1e-9)
        assert result.cut <= optimum + 1e-9
        assert result.upper_bound >= optimum - 1e-9, method
        assert result.cut <= result.upper_bound + 1e-9
        assert result.certified is True
        if method in ("exact", "auto"):
            assert result.method == "exact"
            assert result.exact == pytest.approx(optimum, abs=1e-9)
            assert result.upper_bound == result.exact
            assert result.cut == pytest.approx(optimum, abs=1e-9)
        else:
            assert result.method == method
            assert result.exact is None
            assert result.sdp_bound == result.upper_bound
            assert result.upper_bound >= result.sdp_value * (1 - 1e-6)
            assert result.upper_bound == pytest.approx(result.sdp_value, rel=1e-3)
            assert result.sdp_value >= optimum * (1 - 1e-6)  # a relaxation
            assert result.cut >= GW_ALPHA * result.sdp_value
            assert result.rounded_cut == result.cut


@pytest.mark.parametrize("n, seed, density, integer, sparse", CERT_CASES[::2])
@pytest.mark.parametrize("rank", [1, 3])
def test_dual_bound_of_bad_vectors_is_still_a_certificate(n, seed, density, integer, sparse, rank):
    """Any unit vectors give a valid bound (dual feasibility is enforced), however poor the SDP point."""
    w, given = cert_graph(n, seed, density, integer, sparse)
    optimum = brute_force(w)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        vectors = rng.standard_normal((n, rank))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        bound, proven = dual_bound(given, vectors)
        assert proven is True
        assert bound >= optimum - 1e-9
    # all vectors equal (X = all-ones, the worst point): still a bound
    bound, _ = dual_bound(given, np.ones((n, 1)))
    assert bound >= optimum - 1e-9


@pytest.mark.parametrize("seed", range(3))
def test_dual_bound_of_any_point_is_above_the_sdp_optimum(seed):
    """Weak duality: a dual-feasible point bounds the SDP optimum itself (cvxpy's value), not only the cut."""
    n = 8 + 2 * seed
    w = random_graph(n, seed=950 + seed, density=0.6)
    _, sdp_optimum = cvxpy_sdp(w)
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, 2))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    bad, _ = dual_bound(w, vectors)
    assert bad >= sdp_optimum * (1 - 1e-6)
    good, _ = dual_bound(w, lowrank_sdp(w, tol=1e-10)[0])
    assert good == pytest.approx(sdp_optimum, rel=1e-3)
    assert good <= bad + 1e-9  # the near-optimal point gives the tighter bound


# --------------------------------------------------------------------------- solve: auto, gap, summary, errors


@pytest.mark.parametrize("n, seed", [(6, 0), (10, 1), (14, 2)])
def test_auto_small_graph_is_exact_and_reports_gw_beside_it(n, seed):
    w = random_graph(n, seed=1000 + seed, density=0.5)
    optimum = brute_force(w) if n <= 12 else exact_maxcut(w)[1]
    result = solve(w, "auto", hyperplanes=200, seed=seed)
    assert result.method == "exact"
    assert result.exact == pytest.approx(optimum, abs=1e-9)
    assert result.upper_bound == result.exact
    assert result.cut == pytest.approx(optimum, abs=1e-9)
    assert result.gap == pytest.approx(0.0, abs=1e-12)
    assert result.rounded_cut is not None and result.rounded_cut <= optimum + 1e-9
    assert result.sdp_bound is not None and result.sdp_bound >= optimum - 1e-9
    assert result.sdp_value is not None and result.sdp_value >= optimum * (1 - 1e-6)
    assert result.rounded_cut >= GW_ALPHA * result.sdp_value
    summary = result.summary()
    assert summary["exact_reached"] == bool(result.rounded_cut >= optimum - 1e-9 * max(1.0, optimum))
    assert {"sdp", "certificate", "rounding", "exact", "total"} <= set(result.seconds)


def test_auto_exact_max_n_switches_to_lowrank():
    w = random_graph(8, seed=1010, density=0.6)
    below = solve(w, "auto", hyperplanes=100, exact_max_n=8)
    above = solve(w, "auto", hyperplanes=100, exact_max_n=7)
    assert below.method == "exact" and below.exact is not None
    assert above.method == "lowrank" and above.exact is None
    assert above.summary()["exact_reached"] is None
    assert above.upper_bound == above.sdp_bound
    assert above.upper_bound >= brute_force(w) - 1e-9


def test_auto_large_graph_is_lowrank():
    n = 26  # above the default exact_max_n (20) and above MAX_EXACT_N (24)
    w = random_graph(n, seed=1011, density=0.3)
    result = solve(sp.csr_matrix(w), "auto", hyperplanes=200)
    assert result.method == "lowrank"
    assert result.exact is None
    assert result.upper_bound == result.sdp_bound
    assert result.cut <= result.upper_bound
    assert result.cut == pytest.approx(loop_cut(w, result.sides), abs=1e-9)
    # asking for more enumeration than MAX_EXACT_N is capped, not an error
    capped = solve(random_graph(25, seed=1012, density=0.3), "auto", hyperplanes=50, exact_max_n=100)
    assert capped.method == "lowrank"


@pytest.mark.parametrize("method", ["exact", "lowrank", "cvxpy", "auto"])
def test_gap_ratio_and_summary(method):
    w = random_graph(9, seed=1020, density=0.5, integer=True)
    result = quiet_solve(w, method, hyperplanes=100)
    assert result.gap == pytest.approx((result.upper_bound - result.cut) / result.upper_bound, abs=1e-15)
    assert result.ratio == pytest.approx(result.cut / result.upper_bound, abs=1e-15)
    assert result.gap + result.ratio == pytest.approx(1.0, abs=1e-12)
    assert -1e-12 <= result.gap < 1 - GW_ALPHA
    if result.method == "exact":
        assert result.gap == pytest.approx(0.0, abs=1e-12)
        assert result.ratio == pytest.approx(1.0, abs=1e-12)
    summary = result.summary()
    assert SUMMARY_KEYS <= set(summary)
    decoded = json.loads(json.dumps(summary))  # JSON-serialisable, and survives the round trip
    assert decoded["method"] == result.method
    assert decoded["cut"] == pytest.approx(result.cut)
    assert decoded["upper_bound"] == pytest.approx(result.upper_bound)
    assert decoded["gap"] == pytest.approx(result.gap)
    assert decoded["sdp_value"] == (None if result.sdp_value is None else pytest.approx(result.sdp_value))
    assert decoded["exact"] == (None if result.exact is None else pytest.approx(result.exact))
    assert decoded["exact_reached"] in (None, True, False)
    assert decoded["seconds"]["total"] >= 0
    assert all(v >= 0 for v in decoded["seconds"].values())


def test_unknown_method_is_an_error():
    assert set(METHODS) == {"auto", "exact", "lowrank", "cvxpy"}
    for method in ("gw", "Exact", "", None):
        with pytest.raises(AuxcutError, match="method"):
            solve(random_graph(4, seed=0), method)


def test_solve_rejects_zero_hyperplanes():
    with pytest.raises(AuxcutError):
        solve(random_graph(5, seed=0), "lowrank", hyperplanes=0)


def test_solve_complete_bipartite_cuts_everything():
    rng = np.random.default_rng(41)
    a, b = 3, 4
    w = np.zeros((a + b, a + b))
    w[:a, a:] = rng.uniform(0.5, 2.0, size=(a, b))
    w = w + w.T
    perm = rng.permutation(a + b)  # hide the parts behind a random node order
    w = w[np.ix_(perm, perm)]
    part = (perm >= a).astype(int)
    total = w.sum() / 2
    for method in ("auto", "lowrank", "exact"):
        result = solve(w, method, hyperplanes=100)
        assert result.cut == pytest.approx(total, rel=1e-9)
        sides = np.asarray(result.sides)
        # both parts land on opposite sides
        assert len(set(sides[part == 0])) == 1
        assert len(set(sides[part == 1])) == 1
        assert sides[part == 0][0] != sides[part == 1][0]
        if method == "auto":
            assert result.summary()["exact_reached"] is True
        if method == "lowrank":  # the SDP of a bipartite graph is tight: the bound is the total weight
            assert result.upper_bound == pytest.approx(total, rel=1e-4)


@pytest.mark.parametrize("n", [2, 5, 8])
@pytest.mark.parametrize("method", ["auto", "exact", "lowrank", "cvxpy"])
def test_solve_zero_graph_warns_and_balances(n, method):
    for given in (np.zeros((n, n)), sp.csr_matrix((n, n))):
        with pytest.warns(UserWarning, match="no edges"):
            result = solve(given, method)
        assert_partition(result.sides, n)
        sides = np.asarray(result.sides)
        assert abs(int((sides == 0).sum()) - int((sides == 1).sum())) <= 1
        assert result.cut == 0.0
        assert result.upper_bound == 0.0
        assert result.gap == 0.0
        assert result.ratio == 1.0
        json.dumps(result.summary())


@pytest.mark.parametrize("to_input", [np.asarray, sp.csr_matrix], ids=["dense", "sparse"])
def test_solve_diagonal_only_graph_counts_as_empty(to_input):
    with pytest.warns(UserWarning, match="no edges"):
        result = solve(to_input(np.diag([1.0, 2.0, 3.0])))
    assert result.cut == 0.0
    sides = list(result.sides)
    assert abs(sides.count(0) - sides.count(1)) <= 1


@pytest.mark.parametrize("method", ["auto", "lowrank"])
def test_solve_isolated_nodes(method):
    n = 9
    w = np.zeros((n, n))
    core = random_graph(5, seed=43)
    nodes = np.array([1, 2, 4, 6, 7])  # 0, 3, 5 and 8 have no edges
    w[np.ix_(nodes, nodes)] = core
    optimum = brute_force(core)
    for given in (w, sp.csr_matrix(w)):
        result = solve(given, method, hyperplanes=200)
        assert_partition(result.sides, n)
        assert result.sides[0] == 0
        assert result.cut == pytest.approx(optimum, abs=1e-9)  # local search finds it on 5 nodes
        assert result.cut == pytest.approx(loop_cut(w, result.sides), abs=1e-9)
        assert result.upper_bound >= optimum - 1e-9
        if method == "auto":
            assert result.summary()["exact_reached"] is True


@pytest.mark.parametrize("method", ["lowrank", "cvxpy", "auto"])
def test_solve_is_deterministic(method):
    w = random_graph(12, seed=44, density=0.5)
    first = quiet_solve(w, method, hyperplanes=100, seed=7)
    second = quiet_solve(w, method, hyperplanes=100, seed=7)
    np.testing.assert_array_equal(first.sides, second.sides)
    assert first.cut == second.cut
    assert first.upper_bound == pytest.approx(second.upper_bound, rel=1e-12)
    assert first.sdp_value == pytest.approx(second.sdp_value, rel=1e-12)


@pytest.mark.parametrize("n, seed, density, integer", [(8, 0, 0.5, True), (12, 1, 0.3, False),
                                                       (18, 2, 0.25, True), (30, 3, 0.2, False)])
def test_solve_dense_and_sparse_agree(n, seed, density, integer):
    w = random_graph(n, seed=1100 + seed, density=density, integer=integer)
    methods = ["lowrank", "auto"] + (["exact"] if n <= MAX_EXACT_N else [])
    for method in methods:
        a = solve(w, method, hyperplanes=200, seed=seed)
        b = solve(sp.csr_matrix(w), method, hyperplanes=200, seed=seed)
        assert a.method == b.method
        assert a.cut == pytest.approx(b.cut, rel=1e-9)
        assert a.upper_bound == pytest.approx(b.upper_bound, rel=1e-6)
        if a.sdp_value is not None:
            assert a.sdp_value == pytest.approx(b.sdp_value, rel=1e-6)
        assert loop_cut(w, b.sides) == pytest.approx(b.cut, abs=1e-9)


# --------------------------------------------------------------------------- solve: the tabu polish


@pytest.mark.parametrize("n, method", [(26, "lowrank"), (26, "auto"), (10, "lowrank")])
def test_solve_polish_none_is_the_gw_pipeline_as_before(n, method):
    """polish="none" gives exactly what the SDP, the certificate and round_and_polish give on their own."""
    w = random_graph(n, seed=1700 + n, density=0.4)
    result = solve(w, method, hyperplanes=200, seed=3, polish="none")
    vectors, sdp_value, iterations = lowrank_sdp(w, seed=3)
    bound, certified = dual_bound(w, vectors)
    sides, rounded = round_and_polish(w, vectors, 200, 3)
    assert result.method == "lowrank"  # n = 26 is above auto's exact_max_n
    assert result.cut == result.rounded_cut == rounded
    np.testing.assert_array_equal(result.sides, sides if sides[0] == 0 else 1 - sides)
    assert result.polished_cut is None
    assert result.summary()["polished_cut"] is None
    assert "polish" not in result.seconds
    assert (result.upper_bound, result.sdp_bound, result.sdp_value, result.iterations, result.certified) == (
        bound, bound, sdp_value, iterations, certified)


def sparse_unit_graph() -> np.ndarray:
    """n = 200, about 600 unit edges: large and sparse enough that GW's cut (486) is not the best (487+)."""
    return (random_graph(200, seed=1710, density=0.03) > 0).astype(np.float64)


@pytest.mark.parametrize("to_input", [np.asarray, sp.csr_matrix], ids=["dense", "sparse"])
def test_polish_raises_the_cut_and_leaves_the_bound_alone(to_input):
    w = sparse_unit_graph()
    plain = solve(to_input(w), "lowrank", hyperplanes=200, seed=1, polish="none")
    polished = solve(to_input(w), "lowrank", hyperplanes=200, seed=1)  # polish="tabu" is the default
    assert (polished.upper_bound, polished.sdp_bound, polished.sdp_value, polished.certified) == (
        plain.upper_bound, plain.sdp_bound, plain.sdp_value, plain.certified)
    assert polished.rounded_cut == plain.cut  # the GW cut before the polish, as reports show it
    assert polished.polished_cut > plain.cut  # on this graph tabu finds a strictly better cut than GW
    assert polished.cut == polished.polished_cut
    assert polished.cut == pytest.approx(loop_cut(w, polished.sides), abs=1e-9)
    assert polished.cut <= polished.upper_bound
    assert polished.gap < plain.gap
    assert polished.seconds["polish"] >= 0 and "polish" not in plain.seconds
    summary = json.loads(json.dumps(polished.summary()))
    assert summary["polished_cut"] == polished.polished_cut
    assert summary["rounded_cut"] == plain.cut


def test_polish_budget_keywords_reach_the_search():
    w = sparse_unit_graph()  # the default budget polishes GW's 486 to 487 or more (test above)
    one = solve(w, "lowrank", hyperplanes=200, seed=1, polish_iterations=1)
    # the rounded cut is a local optimum: the first flip loses, and one flip without improvement ends it
    assert one.polished_cut == one.rounded_cut == one.cut
    # a budget of flips it never reaches: the time cap ends the polish (the default cap is 3 s)
    capped = solve(w, "lowrank", hyperplanes=200, seed=1, polish_seconds=0.05, polish_iterations=10**9)
    assert capped.seconds["polish"] < 1.0
    assert capped.rounded_cut <= capped.polished_cut <= capped.upper_bound


def test_polish_does_nothing_for_exact():
    w = random_graph(9, seed=1720, density=0.5)
    for polish in ("tabu", "none"):
        result = solve(w, "exact", polish=polish)
        assert result.method == "exact"
        assert result.polished_cut is None and "polish" not in result.seconds
        assert result.cut == pytest.approx(brute_force(w), abs=1e-9)


@pytest.mark.parametrize("n, seed", [(8, 0), (14, 1), (18, 2)])
def test_auto_small_graph_stays_exact_with_polish(n, seed):
    w = random_graph(n, seed=1730 + seed, density=0.5)
    optimum = exact_maxcut(w)[1]
    result = solve(w, "auto", hyperplanes=100, seed=seed)
    assert result.method == "exact"
    assert result.cut == pytest.approx(optimum, abs=1e-9) and result.upper_bound == result.exact
    assert result.rounded_cut <= result.polished_cut <= optimum + 1e-9
    assert result.polished_cut == pytest.approx(optimum, abs=1e-9)  # tabu reaches the optimum this small
    assert result.cut == pytest.approx(loop_cut(w, result.sides), abs=1e-9)
    assert {"sdp", "certificate", "rounding", "polish", "exact", "total"} <= set(result.seconds)


def test_unknown_polish_is_a_one_line_error():
    w = random_graph(4, seed=0)
    for polish in ("Tabu", "sa", "", None):
        for method in ("auto", "exact"):  # checked even where the polish would be skipped
            with pytest.raises(AuxcutError, match="polish") as exc:
                solve(w, method, polish=polish)
            message = str(exc.value)
            assert "tabu, none" in message and repr(polish) in message
            assert "\n" not in message


def test_bad_polish_budget_is_an_error():
    w = random_graph(4, seed=0)
    for seconds in (0.0, -1.0, float("nan")):
        with pytest.raises(AuxcutError, match="polish_seconds"):
            solve(w, polish_seconds=seconds)
    with pytest.raises(AuxcutError, match="polish_iterations"):
        solve(w, polish_iterations=0)


# --------------------------------------------------------------------------- read_graph


def write_edge_list(path: Path, n: int, rows: list[str]) -> Path:
    path.write_text(f"{n} {len(rows)}\n" + "".join(f"{r}\n" for r in rows))
    return path


def test_read_graph_edge_list_with_and_without_weights(tmp_path):
    graph = write_edge_list(tmp_path / "g.txt", 5, ["1 2 2.5", "2 3", "3 4 0.25", "4 5", "1 5 3"])
    w = read_graph(graph)
    assert sp.issparse(w)
    expected = np.zeros((5, 5))
    for i, j, wt in [(1, 2, 2.5), (2, 3, 1.0), (3, 4, 0.25), (4, 5, 1.0), (1, 5, 3.0)]:
        expected[i - 1, j - 1] = expected[j - 1, i - 1] = wt
    np.testing.assert_array_equal(w.toarray(), expected)


def test_read_graph_repeated_edges_add_up(tmp_path):
    graph = write_edge_list(tmp_path / "g.txt", 3, ["1 2 1.5", "1 2 2", "2 1", "2 3 4", "3 2 0.5"])
    w = read_graph(graph).toarray()
    assert w[0, 1] == w[1, 0] == pytest.approx(1.5 + 2 + 1)
    assert w[1, 2] == w[2, 1] == pytest.approx(4.5)
    assert w[0, 2] == 0.0
    assert edge_count(check_weights(read_graph(graph))) == 2


def test_read_graph_dense_files(tmp_path):
    w = random_graph(5, seed=1200, density=0.6)
    np.save(tmp_path / "g.npy", w)
    np.savetxt(tmp_path / "g.csv", w, delimiter=",")
    np.testing.assert_array_equal(read_graph(tmp_path / "g.npy"), w)
    np.testing.assert_allclose(read_graph(tmp_path / "g.csv"), w, rtol=1e-15)


def test_read_graph_skips_comments_and_blank_lines(tmp_path):
    graph = tmp_path / "g.txt"
    graph.write_text("# a comment\n3 2\n\n1 2 2\n  # another\n2 3\n\n")
    np.testing.assert_array_equal(read_graph(graph).toarray(), [[0, 2, 0], [2, 0, 1], [0, 1, 0]])


def test_read_graph_out_of_range_names_the_line(tmp_path):
    graph = write_edge_list(tmp_path / "g.txt", 4, ["1 2", "2 3", "3 5 1.0", "1 4"])
    with pytest.raises(AuxcutError, match=r"line 4: node out of range 1\.\.4"):
        read_graph(graph)
    graph = write_edge_list(tmp_path / "h.txt", 4, ["0 2"])
    with pytest.raises(AuxcutError, match=r"line 2: node out of range"):
        read_graph(graph)


def test_read_graph_line_numbers_count_comments_and_blank_lines(tmp_path):
    graph = tmp_path / "g.txt"
    graph.write_text("# comment\n\n3 2\n1 2\n\n2 4 1.5\n")  # the bad edge is on line 6 of the file
    with pytest.raises(AuxcutError, match=r"line 6: node out of range"):
        read_graph(graph)


@pytest.mark.parametrize("n", [2_000_000_000, MAX_NODES + 1, 0, -3])
def test_read_graph_refuses_a_node_count_outside_the_limit(tmp_path, n):
    """The header is checked before an (n, n) matrix is built: 2e9 nodes was a 7.45 GiB allocation error."""
    graph = write_edge_list(tmp_path / "g.txt", n, ["1 2"])
    with pytest.raises(AuxcutError, match=rf"line 1: header says {n} nodes; expected 1 to {MAX_NODES:,}"):
        read_graph(graph)


def test_read_graph_takes_the_largest_edge_list_allowed(tmp_path):
    graph = write_edge_list(tmp_path / "g.txt", MAX_NODES, ["1 2", f"{MAX_NODES - 1} {MAX_NODES}"])
    assert read_graph(graph).shape == (MAX_NODES, MAX_NODES)


# --------------------------------------------------------------------------- command line


def run_cli(args):
    """`auxcut maxcut ARGS`: exit code, stdout, stderr."""
    result = CliRunner().invoke(auxcut, ["maxcut", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def check_report(report: dict, w: np.ndarray, method: str | None = None):
    assert CLI_KEYS <= set(report)
    assert SUMMARY_KEYS <= set(report)
    n = len(w)
    assert report["n"] == n
    assert report["edges"] == sum(1 for i in range(n) for j in range(i + 1, n) if w[i, j] > 0)
    if method is not None:
        assert report["method"] == method
    optimum = brute_force(w)
    assert report["cut"] <= optimum + 1e-9
    assert report["upper_bound"] >= optimum - 1e-9
    assert report["cut"] <= report["upper_bound"] + 1e-9
    assert report["gap"] == pytest.approx((report["upper_bound"] - report["cut"]) / report["upper_bound"])
    if report["sdp_value"] is not None:
        assert report["cut"] >= GW_ALPHA * report["sdp_value"]
    assert report["seconds"]["total"] >= 0


def read_partition(path) -> list[int]:
    lines = path.read_text().splitlines()
    assert all(line in {"0", "1"} for line in lines)
    return [int(line) for line in lines]


def test_cli_npy(tmp_path):
    w = random_graph(7, seed=50, density=0.6)
    graph = tmp_path / "g.npy"
    np.save(graph, w)
    out = tmp_path / "sub" / "part.txt"
    code, stdout, stderr = run_cli([graph, "--out", out, "--hyperplanes", 100])
    assert code == 0, stderr
    report = json.loads(stdout)
    check_report(report, w, "exact")  # auto on n <= 20 enumerates
    assert report["cut"] == pytest.approx(brute_force(w), abs=1e-9)
    sides = read_partition(out)
    assert len(sides) == 7
    assert cut_value(w, np.array(sides)) == pytest.approx(report["cut"], abs=1e-9)


def test_cli_csv(tmp_path):
    w = random_graph(6, seed=51, integer=True)
    graph = tmp_path / "g.csv"
    np.savetxt(graph, w, delimiter=",")
    out = tmp_path / "part.txt"
    code, stdout, stderr = run_cli([graph, "--out", out])
    assert code == 0, stderr
    report = json.loads(stdout)
    check_report(report, w)
    sides = read_partition(out)
    assert len(sides) == 6
    assert cut_value(w, np.array(sides)) == pytest.approx(report["cut"], abs=1e-9)


def test_cli_edge_list(tmp_path):
    edges = [(1, 2, 3.0), (2, 3, 1.5), (1, 3, 2.0), (3, 4, 4.0), (4, 5, 0.5), (2, 5, 1.0)]
    n = 6  # node 6 is isolated
    graph = write_edge_list(tmp_path / "g.txt", n, [f"{i} {j} {wt}" for i, j, wt in edges])
    w = np.zeros((n, n))
    for i, j, wt in edges:
        w[i - 1, j - 1] = w[j - 1, i - 1] = wt
    out = tmp_path / "part.txt"
    code, stdout, stderr = run_cli([graph, "--out", out])
    assert code == 0, stderr
    report = json.loads(stdout)
    check_report(report, w)
    assert report["edges"] == len(edges)
    sides = read_partition(out)
    assert len(sides) == n
    assert loop_cut(w, sides) == pytest.approx(report["cut"], abs=1e-9)
    # the same graph as a dense matrix gives the same answer
    dense_file = tmp_path / "g.npy"
    np.save(dense_file, w)
    code, stdout2, _ = run_cli([dense_file])
    assert code == 0
    assert json.loads(stdout2)["cut"] == pytest.approx(report["cut"], abs=1e-9)


def test_cli_edge_list_unweighted_and_repeated(tmp_path):
    rows = ["1 2", "2 3", "3 4", "4 5", "5 1", "1 2", "3 1 2.5"]  # 1-2 twice, then a weighted chord
    graph = write_edge_list(tmp_path / "g.txt", 5, rows)
    w = np.zeros((5, 5))
    for row in rows:
        parts = row.split()
        i, j, wt = int(parts[0]) - 1, int(parts[1]) - 1, float(parts[2]) if len(parts) == 3 else 1.0
        w[i, j] += wt
        w[j, i] += wt
    assert w[0, 1] == 2.0
    code, stdout, stderr = run_cli([graph, "--method", "exact"])
    assert code == 0, stderr
    report = json.loads(stdout)
    check_report(report, w, "exact")
    assert report["edges"] == 6
    assert report["cut"] == pytest.approx(slow_brute_force(w), abs=1e-9)


@pytest.mark.parametrize("method", ["exact", "lowrank", "cvxpy"])
def test_cli_methods(tmp_path, method):
    w = random_graph(8, seed=52, density=0.5, integer=True)
    graph = tmp_path / "g.npy"
    np.save(graph, w)
    out = tmp_path / "part.txt"
    code, stdout, stderr = run_cli([graph, "--method", method, "--hyperplanes", 100, "--out", out])
    assert code == 0, stderr
    report = json.loads(stdout)
    check_report(report, w, method)
    assert report["graph"] == str(graph)
    assert loop_cut(w, read_partition(out)) == pytest.approx(report["cut"], abs=1e-9)
    if method == "exact":
        assert report["cut"] == pytest.approx(brute_force(w), abs=1e-9)
        assert report["gap"] == 0.0
    else:
        assert report["upper_bound"] == pytest.approx(report["sdp_value"], rel=1e-3)


def test_cli_auto_above_exact_max_n(tmp_path):
    w = random_graph(9, seed=53, density=0.5)
    graph = tmp_path / "g.npy"
    np.save(graph, w)
    code, stdout, stderr = run_cli([graph, "--exact-max-n", 5, "--seed", 3])
    assert code == 0, stderr
    report = json.loads(stdout)
    check_report(report, w, "lowrank")
    assert report["exact"] is None


def test_cli_polish_flag(tmp_path):
    n = 60  # above --exact-max-n: the cut is GW's, with or without the polish
    w = random_graph(n, seed=59, density=0.3, integer=True)
    graph = tmp_path / "g.npy"
    np.save(graph, w)
    reports = {}
    for polish in ("none", "tabu", None):
        out = tmp_path / f"part-{polish}.txt"
        code, stdout, stderr = run_cli([graph, "--hyperplanes", 100, "--out", out]
                                       + ([] if polish is None else ["--polish", polish]))
        assert code == 0, stderr
        reports[polish] = report = json.loads(stdout)
        assert report["method"] == "lowrank"
        assert loop_cut(w, read_partition(out)) == pytest.approx(report["cut"], abs=1e-9)
    plain, tabu = reports["none"], reports["tabu"]
    assert plain["polished_cut"] is None and "polish" not in plain["seconds"]
    assert tabu["polished_cut"] == tabu["cut"] > plain["cut"]
    assert tabu["rounded_cut"] == plain["cut"] == plain["rounded_cut"]
    assert tabu["upper_bound"] == plain["upper_bound"]
    assert reports[None]["cut"] == tabu["cut"]  # tabu is the default
    code, stdout, stderr = run_cli([graph, "--polish", "annealing"])
    assert code == 2 and stdout == ""
    assert "Invalid value for '--polish'" in stderr


def test_cli_zero_graph_warns(tmp_path):
    graph = tmp_path / "g.npy"
    np.save(graph, np.zeros((4, 4)))
    code, stdout, stderr = run_cli([graph])
    assert code == 0
    assert json.loads(stdout)["cut"] == 0.0
    assert stderr.startswith("warning:") and "no edges" in stderr


def assert_one_line_error(code, stdout, stderr, word=None):
    assert code == 2
    assert stdout == ""
    assert stderr.startswith("error:")
    assert stderr.strip().count("\n") == 0
    assert "Traceback" not in stderr
    if word:
        assert word in stderr


def test_cli_missing_file(tmp_path):
    code, stdout, stderr = run_cli([tmp_path / "nope.txt"])
    assert_one_line_error(code, stdout, stderr, "not found")


@pytest.mark.parametrize(
    "content",
    [
        "3 3\n1 2 1.0\n2 3 1.0\n",  # header promises more edges than listed
        "3 1\n1 x 1.0\n",  # non-numeric node
        "3 1\n1 4 1.0\n",  # node out of range
        "3 1\n0 2 1.0\n",  # 0-based node
        "3 1\n1 2 1.0 7\n",  # too many columns
        "3\n1 2 1.0\n",  # header without the edge count
        "",  # empty file
        "three 1\n1 2 1.0\n",  # non-numeric header
        "3 1\n1 2 -1.0\n",  # negative weight
    ],
)
def test_cli_malformed_edge_list(tmp_path, content):
    graph = tmp_path / "bad.txt"
    graph.write_text(content)
    out = tmp_path / "part.txt"
    code, stdout, stderr = run_cli([graph, "--out", out])
    assert_one_line_error(code, stdout, stderr, str(graph))
    assert not out.exists()


def test_cli_out_of_range_error_names_the_line(tmp_path):
    graph = write_edge_list(tmp_path / "g.txt", 3, ["1 2", "2 3", "3 7"])
    code, stdout, stderr = run_cli([graph])
    assert_one_line_error(code, stdout, stderr, "line 4")
    assert "out of range" in stderr


def test_cli_invalid_matrix(tmp_path):
    graph = tmp_path / "neg.npy"
    np.save(graph, np.array([[0.0, -1.0], [-1.0, 0.0]]))
    code, stdout, stderr = run_cli([graph])
    assert_one_line_error(code, stdout, stderr, "non-negative")


def test_cli_exact_too_large(tmp_path):
    graph = tmp_path / "big.npy"
    np.save(graph, random_graph(25, seed=54, density=0.2))
    out = tmp_path / "part.txt"
    code, stdout, stderr = run_cli([graph, "--method", "exact", "--out", out])
    assert_one_line_error(code, stdout, stderr, "too large")
    assert not out.exists()


@pytest.mark.parametrize("option, value", [("--hyperplanes", 0), ("--seed", -1), ("--exact-max-n", MAX_EXACT_N + 1),
                                           ("--exact-max-n", 100), ("--exact-max-n", -1)])
def test_cli_out_of_range_options_are_usage_errors(tmp_path, option, value):
    """Refused before anything is read or solved; `--exact-max-n 100` used to skip the exact step without a word."""
    graph = tmp_path / "g.npy"
    np.save(graph, random_graph(4, seed=55))
    code, stdout, stderr = run_cli([graph, option, value])
    assert code == 2 and stdout == ""
    assert f"Invalid value for '{option}': {value} is not in the range" in stderr


def test_cli_exact_max_n_at_its_limit_still_enumerates(tmp_path):
    w = random_graph(MAX_EXACT_N, seed=58, density=0.3, integer=True)
    graph = tmp_path / "g.npy"
    np.save(graph, w)
    code, stdout, stderr = run_cli([graph, "--exact-max-n", MAX_EXACT_N, "--hyperplanes", 10])
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["method"] == "exact" and report["cut"] == report["exact"]


def test_cli_out_a_folder_is_refused_before_solving(tmp_path):
    graph = tmp_path / "g.npy"
    np.save(graph, random_graph(4, seed=60))
    code, stdout, stderr = run_cli([graph, "--out", tmp_path])
    assert_one_line_error(code, stdout, stderr, f"--out {tmp_path}: is a folder")
    (tmp_path / "file").write_text("")
    code, stdout, stderr = run_cli([graph, "--out", tmp_path / "file" / "part.txt"])
    assert_one_line_error(code, stdout, stderr, "is a file, not a folder")


def test_cli_edge_list_claiming_too_many_nodes_is_refused_before_allocating(tmp_path):
    graph = write_edge_list(tmp_path / "g.txt", 2_000_000_000, ["1 2"])
    code, stdout, stderr = run_cli([graph])
    assert_one_line_error(code, stdout, stderr, f"header says 2000000000 nodes; expected 1 to {MAX_NODES:,}")


def test_cli_unknown_method_is_a_usage_error(tmp_path):
    graph = tmp_path / "g.npy"
    np.save(graph, random_graph(4, seed=56))
    code, stdout, stderr = run_cli([graph, "--method", "gw"])
    assert code == 2 and stdout == ""
    assert "Invalid value for '--method': 'gw' is not one of" in stderr


def test_cli_subprocess_end_to_end(tmp_path):
    w = random_graph(6, seed=57, density=0.7, integer=True)
    rows = [f"{i + 1} {j + 1} {w[i, j]:g}" for i in range(6) for j in range(i + 1, 6) if w[i, j] > 0]
    graph = write_edge_list(tmp_path / "g.txt", 6, rows)
    proc = subprocess.run([sys.executable, "-m", "auxcut", "maxcut", str(graph), "--hyperplanes", "50"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    check_report(report, w)
    assert report["cut"] == pytest.approx(brute_force(w), abs=1e-9)
    bad = subprocess.run([sys.executable, "-m", "auxcut", "maxcut", str(tmp_path / "missing.txt")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.startswith("error:") and bad.stderr.strip().count("\n") == 0


# --------------------------------------------------------------------------- plot


def test_plot_cut_draws_the_graph():
    from auxcut.method.maxcut.plot import plot_cut

    import matplotlib.pyplot as plt

    w = random_graph(5, seed=58, density=0.8)
    result = solve(w, "exact")
    fig = plot_cut(w, result.sides, [f"c{i}" for i in range(5)], "the cut")
    try:
        ax = fig.axes[0]
        assert ax.get_title() == "the cut"
        assert sorted(t.get_text() for t in ax.texts) == [f"c{i}" for i in range(5)]
    finally:
        plt.close(fig)
