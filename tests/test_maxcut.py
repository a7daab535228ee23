"""Tests for auxcut.maxcut, checked against brute force and hand-built graphs."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from auxcut import AuxcutError
from auxcut.maxcut import (
    check_weights,
    cut_value,
    exact_maxcut,
    goemans_williamson,
    hyperplane_rounding,
    local_search,
    main,
)

GW_ALPHA = 0.878


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


def loop_cut(w: np.ndarray, sides) -> float:
    """Cut value by a plain double loop over the edges i < j."""
    n = len(w)
    return float(sum(w[i, j] for i in range(n) for j in range(i + 1, n) if sides[i] != sides[j]))


def brute_force(w: np.ndarray) -> float:
    """Max cut by trying every assignment in {0,1}^n."""
    return max(loop_cut(w, sides) for sides in itertools.product((0, 1), repeat=len(w)))


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


def test_check_weights_message_names_source():
    with pytest.raises(AuxcutError, match=r"^my_graph\.npy: "):
        check_weights(np.zeros((2, 3)), where="my_graph.npy")


def test_check_weights_zeroes_diagonal_without_touching_input():
    w = random_graph(6, seed=1)
    with_diag = w.copy()
    np.fill_diagonal(with_diag, np.arange(1, 7, dtype=float))
    before = with_diag.copy()
    out = check_weights(with_diag)
    assert np.all(np.diag(out) == 0)
    off = ~np.eye(6, dtype=bool)
    np.testing.assert_array_equal(out[off], w[off])
    np.testing.assert_array_equal(with_diag, before)  # input not modified
    assert out.dtype == np.float64


def test_check_weights_drops_negative_diagonal():
    # The diagonal is dropped before the sign check, so a negative self-loop is not an error.
    w = np.array([[-5.0, 1.0], [1.0, -2.0]])
    out = check_weights(w)
    np.testing.assert_array_equal(out, [[0.0, 1.0], [1.0, 0.0]])


def test_check_weights_symmetrises_tiny_asymmetry():
    w = random_graph(5, seed=2)
    w[0, 1] += 1e-14
    out = check_weights(w)
    np.testing.assert_array_equal(out, out.T)
    np.testing.assert_allclose(out, w, atol=1e-13)


def test_check_weights_accepts_integer_lists():
    out = check_weights([[0, 2], [2, 0]])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0.0, 2.0], [2.0, 0.0]])


# --------------------------------------------------------------------------- cut_value


@pytest.mark.parametrize("seed", range(6))
def test_cut_value_matches_double_loop(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 12))
    w = random_graph(n, seed=seed, density=0.6)
    for _ in range(5):
        sides = rng.integers(0, 2, size=n)
        assert cut_value(w, sides) == pytest.approx(loop_cut(w, sides), abs=1e-12)


def test_cut_value_trivial_partitions():
    w = random_graph(7, seed=3)
    assert cut_value(w, np.zeros(7, dtype=int)) == pytest.approx(0.0, abs=1e-12)
    assert cut_value(w, np.ones(7, dtype=int)) == pytest.approx(0.0, abs=1e-12)
    # One node alone on its side cuts exactly its incident edges.
    sides = np.zeros(7, dtype=int)
    sides[4] = 1
    assert cut_value(w, sides) == pytest.approx(w[4].sum())


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
    sides, value = exact_maxcut(w)
    assert value == pytest.approx(brute_force(w), abs=1e-9)
    assert len(sides) == n
    assert set(np.unique(sides)) <= {0, 1}
    assert loop_cut(w, sides) == pytest.approx(value, abs=1e-9)
    assert sides[-1] == 0  # the last node is the one fixed on side 0


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
    with pytest.raises(AuxcutError, match="too large"):
        exact_maxcut(np.zeros((25, 25)))


# --------------------------------------------------------------------------- local_search


@pytest.mark.parametrize("seed", range(8))
def test_local_search_improves_to_local_optimum(seed):
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(3, 16))
    w = random_graph(n, seed=seed, density=float(rng.uniform(0.3, 1.0)))
    start = rng.integers(0, 2, size=n)
    before = loop_cut(w, start)
    out = local_search(w, start)
    assert out.shape == (n,)
    assert set(np.unique(out)) <= {0, 1}
    after = loop_cut(w, out)
    assert after >= before - 1e-12
    # no single flip improves the result
    for i in range(n):
        flipped = out.copy()
        flipped[i] = 1 - flipped[i]
        assert loop_cut(w, flipped) <= after + 1e-9


def test_local_search_leaves_optimum_alone_and_escapes_zero_cut():
    w = random_graph(8, seed=21)
    best, value = exact_maxcut(w)
    assert loop_cut(w, local_search(w, best)) == pytest.approx(value)
    # everyone on one side cuts nothing; on a graph with positive weights, one flip must help
    out = local_search(w, np.zeros(8, dtype=int))
    assert loop_cut(w, out) > 0


# --------------------------------------------------------------------------- goemans_williamson


@pytest.mark.parametrize("n", range(5, 15))
def test_goemans_williamson_bounds(n):
    density = 0.4 if n % 2 else 1.0
    w = random_graph(n, seed=300 + n, density=density, integer=n % 3 == 0)
    result = goemans_williamson(w, hyperplanes=200, seed=n)
    sides = np.asarray(result.sides)
    assert sides.shape == (n,)
    assert set(np.unique(sides)) <= {0, 1}
    assert sides[0] == 0
    assert result.cut == pytest.approx(loop_cut(w, sides), abs=1e-9)
    assert result.cut <= result.sdp_bound * (1 + 1e-6)
    assert result.cut >= GW_ALPHA * result.sdp_bound
    optimum = brute_force(w) if n <= 10 else exact_maxcut(w)[1]
    assert result.exact == pytest.approx(optimum, abs=1e-9)
    assert result.cut <= result.exact + 1e-9
    assert result.exact_reached == bool(np.isclose(result.cut, result.exact, rtol=1e-9, atol=1e-9))
    assert result.ratio == pytest.approx(result.cut / result.sdp_bound)
    # the SDP bound is a relaxation: it is at least the optimum (up to solver accuracy)
    assert result.sdp_bound >= optimum * (1 - 1e-6)


def test_goemans_williamson_no_exact_above_limit():
    w = random_graph(6, seed=40)
    result = goemans_williamson(w, hyperplanes=50, exact_max_n=4)
    assert result.exact is None
    assert result.exact_reached is None
    assert result.cut == pytest.approx(loop_cut(w, result.sides))


def test_goemans_williamson_complete_bipartite_cuts_everything():
    rng = np.random.default_rng(41)
    a, b = 3, 4
    w = np.zeros((a + b, a + b))
    w[:a, a:] = rng.uniform(0.5, 2.0, size=(a, b))
    w = w + w.T
    perm = rng.permutation(a + b)  # hide the parts behind a random node order
    w = w[np.ix_(perm, perm)]
    part = (perm >= a).astype(int)
    result = goemans_williamson(w, hyperplanes=100)
    total = w.sum() / 2
    assert result.cut == pytest.approx(total, rel=1e-9)
    assert result.exact_reached is True
    sides = np.asarray(result.sides)
    # both parts land on opposite sides
    assert len(set(sides[part == 0])) == 1
    assert len(set(sides[part == 1])) == 1
    assert sides[part == 0][0] != sides[part == 1][0]


@pytest.mark.parametrize("n", [2, 5, 8])
def test_goemans_williamson_zero_graph_warns_and_balances(n):
    with pytest.warns(UserWarning, match="no edges"):
        result = goemans_williamson(np.zeros((n, n)))
    sides = np.asarray(result.sides)
    assert sides.shape == (n,)
    assert set(np.unique(sides)) <= {0, 1}
    assert abs(int((sides == 0).sum()) - int((sides == 1).sum())) <= 1
    assert result.cut == 0.0
    assert result.exact == 0.0


def test_goemans_williamson_diagonal_only_graph_counts_as_empty():
    with pytest.warns(UserWarning, match="no edges"):
        result = goemans_williamson(np.diag([1.0, 2.0, 3.0]))
    assert result.cut == 0.0
    assert abs(result.sides.count(0) - result.sides.count(1)) <= 1


def test_goemans_williamson_isolated_nodes():
    n = 9
    w = np.zeros((n, n))
    core = random_graph(5, seed=43)
    nodes = np.array([1, 2, 4, 6, 7])  # 0, 3, 5 and 8 have no edges
    w[np.ix_(nodes, nodes)] = core
    result = goemans_williamson(w, hyperplanes=200)
    assert len(result.sides) == n
    assert result.sides[0] == 0
    assert result.cut == pytest.approx(brute_force(core), abs=1e-9)
    assert result.cut == pytest.approx(loop_cut(w, result.sides), abs=1e-9)
    assert result.exact_reached is True


def test_goemans_williamson_is_deterministic():
    w = random_graph(12, seed=44, density=0.5)
    first = goemans_williamson(w, hyperplanes=100, seed=7)
    second = goemans_williamson(w, hyperplanes=100, seed=7)
    assert first.sides == second.sides
    assert first.cut == second.cut
    assert first.sdp_bound == pytest.approx(second.sdp_bound, rel=1e-12)


def test_hyperplane_rounding_is_deterministic_per_seed():
    rng = np.random.default_rng(45)
    w = random_graph(10, seed=45)
    vectors = rng.standard_normal((10, 10))
    a = hyperplane_rounding(w, vectors, 64, np.random.default_rng(3))
    b = hyperplane_rounding(w, vectors, 64, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0, 1}


def test_hyperplane_rounding_picks_best_hyperplane():
    # Vectors on a line: every hyperplane gives the same split {x>0} vs {x<0} (or its mirror).
    w = random_graph(6, seed=46)
    vectors = np.array([[1.0], [-1.0], [2.0], [-0.5], [0.3], [-3.0]])
    sides = hyperplane_rounding(w, vectors, 16, np.random.default_rng(0))
    expected = np.array([1, 0, 1, 0, 1, 0])
    assert np.array_equal(sides, expected) or np.array_equal(sides, 1 - expected)


# --------------------------------------------------------------------------- command line

CLI_KEYS = {"n", "edges", "cut", "sdp_bound"}


def run_cli(capsys, args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_report(report: dict, w: np.ndarray):
    assert CLI_KEYS <= set(report)
    n = len(w)
    assert report["n"] == n
    assert report["edges"] == sum(1 for i in range(n) for j in range(i + 1, n) if w[i, j] > 0)
    optimum = brute_force(w)
    assert report["cut"] <= optimum + 1e-9
    assert report["cut"] >= GW_ALPHA * report["sdp_bound"]
    assert report["cut"] <= report["sdp_bound"] * (1 + 1e-6)


def read_partition(path) -> list[int]:
    lines = path.read_text().splitlines()
    assert all(line in {"0", "1"} for line in lines)
    return [int(line) for line in lines]


def test_cli_npy(tmp_path, capsys):
    w = random_graph(7, seed=50, density=0.6)
    graph = tmp_path / "g.npy"
    np.save(graph, w)
    out = tmp_path / "sub" / "part.txt"
    code, stdout, stderr = run_cli(capsys, [graph, "--out", out, "--hyperplanes", 100])
    assert code == 0, stderr
    report = json.loads(stdout)
    check_report(report, w)
    sides = read_partition(out)
    assert len(sides) == 7
    assert cut_value(w, np.array(sides)) == pytest.approx(report["cut"], abs=1e-9)


def test_cli_csv(tmp_path, capsys):
    w = random_graph(6, seed=51, integer=True)
    graph = tmp_path / "g.csv"
    np.savetxt(graph, w, delimiter=",")
    out = tmp_path / "part.txt"
    code, stdout, stderr = run_cli(capsys, [graph, "--out", out])
    assert code == 0, stderr
    report = json.loads(stdout)
    check_report(report, w)
    sides = read_partition(out)
    assert len(sides) == 6
    assert cut_value(w, np.array(sides)) == pytest.approx(report["cut"], abs=1e-9)


def test_cli_edge_list(tmp_path, capsys):
    edges = [(1, 2, 3.0), (2, 3, 1.5), (1, 3, 2.0), (3, 4, 4.0), (4, 5, 0.5), (2, 5, 1.0)]
    n = 6  # node 6 is isolated
    lines = [f"{n} {len(edges)}"] + [f"{i} {j} {wt}" for i, j, wt in edges]
    graph = tmp_path / "g.txt"
    graph.write_text("\n".join(lines) + "\n")
    w = np.zeros((n, n))
    for i, j, wt in edges:
        w[i - 1, j - 1] = w[j - 1, i - 1] = wt
    out = tmp_path / "part.txt"
    code, stdout, stderr = run_cli(capsys, [graph, "--out", out])
    assert code == 0, stderr
    report = json.loads(stdout)
    check_report(report, w)
    assert report["edges"] == len(edges)
    sides = read_partition(out)
    assert len(sides) == n
    assert loop_cut(w, sides) == pytest.approx(report["cut"], abs=1e-9)
    # the same graph as a dense matrix gives the same answer
    dense = tmp_path / "g.npy"
    np.save(dense, w)
    code, stdout2, _ = run_cli(capsys, [dense])
    assert code == 0
    assert json.loads(stdout2)["cut"] == pytest.approx(report["cut"], abs=1e-9)


def assert_one_line_error(code, stdout, stderr, word=None):
    assert code == 2
    assert stdout == ""
    assert stderr.startswith("error:")
    assert stderr.strip().count("\n") == 0
    assert "Traceback" not in stderr
    if word:
        assert word in stderr


def test_cli_missing_file(tmp_path, capsys):
    code, stdout, stderr = run_cli(capsys, [tmp_path / "nope.txt"])
    assert_one_line_error(code, stdout, stderr, "not found")


@pytest.mark.parametrize(
    "content",
    [
        "3 3\n1 2 1.0\n2 3 1.0\n",  # header promises more edges than listed
        "3 1\n1 x 1.0\n",  # non-numeric node
        "3 1\n1 4 1.0\n",  # node out of range
        "3 1\n0 2 1.0\n",  # 0-based node
        "3\n1 2 1.0\n",  # header without the edge count
        "",  # empty file
        "three 1\n1 2 1.0\n",  # non-numeric header
    ],
)
def test_cli_malformed_edge_list(tmp_path, capsys, content):
    graph = tmp_path / "bad.txt"
    graph.write_text(content)
    out = tmp_path / "part.txt"
    code, stdout, stderr = run_cli(capsys, [graph, "--out", out])
    assert_one_line_error(code, stdout, stderr, str(graph))
    assert not out.exists()


def test_cli_invalid_matrix(tmp_path, capsys):
    graph = tmp_path / "neg.npy"
    np.save(graph, np.array([[0.0, -1.0], [-1.0, 0.0]]))
    code, stdout, stderr = run_cli(capsys, [graph])
    assert_one_line_error(code, stdout, stderr, "non-negative")


def test_local_search_ignores_self_loops():
    """A non-zero diagonal used to make single flips cycle forever."""
    w = np.array([[5.0, 1.0, 0.0], [1.0, 5.0, 2.0], [0.0, 2.0, 3.0]])
    sides = local_search(w, np.array([0, 0, 0]))
    off = w - np.diag(np.diag(w))
    assert cut_value(off, sides) == 3.0


def test_non_numeric_matrix_is_a_clear_error():
    with pytest.raises(AuxcutError, match="numeric"):
        check_weights(np.array([["a", "b"], ["c", "d"]]))
