"""Max-cut of a weighted graph: Goemans-Williamson (SDP in cvxpy + random hyperplanes + one-flip
local search), with the exact optimum by enumeration where that is cheap.

Command line: `python -m auxcut.maxcut GRAPH [--out PARTITION]`, GRAPH a dense .npy/.csv weight
matrix or an edge list (first line `n m`, then `i j w`, 1-based, as in the G-set instances).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from auxcut import AuxcutError


def check_weights(weights: np.ndarray, where: str = "weights") -> np.ndarray:
    """A valid max-cut instance: square, symmetric, finite, non-negative, n >= 2. The diagonal is dropped."""
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise AuxcutError(f"{where}: expected a numeric matrix") from None
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise AuxcutError(f"{where}: expected a square matrix, got shape {w.shape}")
    if w.shape[0] < 2:
        raise AuxcutError(f"{where}: a cut needs at least 2 nodes, got {w.shape[0]}")
    if not np.isfinite(w).all():
        raise AuxcutError(f"{where}: weights must be finite (found NaN or inf)")
    w = w.copy()
    np.fill_diagonal(w, 0.0)
    if (w < 0).any():
        raise AuxcutError(f"{where}: weights must be non-negative (min {w.min():g})")
    if not np.allclose(w, w.T, rtol=1e-9, atol=1e-12):
        raise AuxcutError(f"{where}: matrix is not symmetric; pass W + W.T (or an edge list)")
    return (w + w.T) / 2


def cut_value(weights: np.ndarray, sides: np.ndarray) -> float:
    """Total weight of the edges whose ends lie on different sides (sides: 0/1 per node)."""
    x = 2.0 * np.asarray(sides, dtype=np.float64) - 1.0
    return float(0.25 * (weights.sum() - x @ weights @ x))


def exact_maxcut(weights: np.ndarray, chunk: int = 1 << 16) -> tuple[np.ndarray, float]:
    """The optimum by vectorised enumeration of all 2^(n-1) cuts (the last node is fixed on side 0)."""
    n = weights.shape[0]
    if n > 24:
        raise AuxcutError(f"exact max-cut enumerates 2^(n-1) cuts; n={n} is too large (at most 24)")
    total, best_value, best_code = weights.sum(), -1.0, 0
    shifts = np.arange(n - 1, dtype=np.int64)
    for start in range(0, 1 << (n - 1), chunk):
        codes = np.arange(start, min(start + chunk, 1 << (n - 1)), dtype=np.int64)
        x = np.ones((len(codes), n))
        x[:, : n - 1] = 2.0 * ((codes[:, None] >> shifts) & 1) - 1.0
        x[:, n - 1] = -1.0
        values = 0.25 * (total - np.einsum("bi,bi->b", x @ weights, x))
        i = int(np.argmax(values))
        if values[i] > best_value + 1e-12:
            best_value, best_code = float(values[i]), int(codes[i])
    sides = np.zeros(n, dtype=np.int64)
    sides[: n - 1] = (best_code >> shifts) & 1
    return sides, best_value


def local_search(weights: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """Flip the single node that gains most until no flip gains (each flip strictly raises the cut)."""
    weights = weights - np.diag(np.diag(weights))  # self-loops never cross a cut; left in, they make flips cycle
    x = 2.0 * np.asarray(sides, dtype=np.float64) - 1.0
    field = weights @ x
    while True:
        gain = x * field  # flipping node i raises the cut by x_i (W x)_i
        i = int(np.argmax(gain))
        if gain[i] <= 1e-12:
            break
        field -= 2.0 * x[i] * weights[:, i]
        x[i] = -x[i]
    return (x > 0).astype(np.int64)


def sdp_relaxation(weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Solve max 1/4 sum W_ij (1 - X_ij) s.t. X PSD, diag(X) = 1 with SCS; return unit vectors and the bound."""
    import cvxpy as cp

    n = weights.shape[0]
    gram = cp.Variable((n, n), symmetric=True)
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(weights, 1 - gram)) / 4), [gram >> 0, cp.diag(gram) == 1])
    problem.solve(solver=cp.SCS, eps_abs=1e-7, eps_rel=1e-7, max_iters=200_000)
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or gram.value is None:
        raise AuxcutError(f"max-cut SDP: SCS did not converge (status {problem.status})")
    values, vectors = np.linalg.eigh((gram.value + gram.value.T) / 2)
    return vectors * np.sqrt(np.clip(values, 0.0, None)), float(problem.value)


def hyperplane_rounding(weights: np.ndarray, vectors: np.ndarray, hyperplanes: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Best of `hyperplanes` random hyperplane cuts of the SDP vectors (all scored at once)."""
    normals = rng.standard_normal((vectors.shape[1], hyperplanes))
    x = np.where(vectors @ normals >= 0, 1.0, -1.0)
    values = 0.25 * (weights.sum() - np.einsum("nh,nh->h", x, weights @ x))
    return (x[:, int(np.argmax(values))] > 0).astype(np.int64)


@dataclass
class CutResult:
    sides: list[int]
    cut: float
    sdp_bound: float
    ratio: float
    exact: float | None
    exact_reached: bool | None
    seconds: float
    method: str = "goemans_williamson"


def goemans_williamson(weights: np.ndarray, *, hyperplanes: int = 1000, seed: int = 0,
                       exact_max_n: int = 20) -> CutResult:
    """GW max-cut with one-flip polish; for n <= exact_max_n also the exact optimum for comparison."""
    start = time.perf_counter()
    weights = check_weights(weights)
    n = weights.shape[0]
    if weights.sum() == 0:
        warnings.warn("max-cut: the graph has no edges (no off-diagonal weight); using a balanced split", stacklevel=2)
        sides = np.arange(n) % 2
        exact = 0.0 if n <= min(exact_max_n, 24) else None
        return CutResult(sides.tolist(), 0.0, 0.0, 1.0, exact, True if exact is not None else None,
                         time.perf_counter() - start)
    vectors, bound = sdp_relaxation(weights)
    sides = local_search(weights, hyperplane_rounding(weights, vectors, hyperplanes, np.random.default_rng(seed)))
    if sides[0] == 1:
        sides = 1 - sides  # canonical: the first class is on side 0
    cut = cut_value(weights, sides)
    exact, reached = None, None
    if n <= min(exact_max_n, 24):  # enumeration beyond 24 nodes takes minutes
        exact = exact_maxcut(weights)[1]
        reached = bool(cut >= exact - 1e-9 * max(1.0, exact))
    return CutResult(sides.tolist(), cut, bound, cut / bound, exact, reached, time.perf_counter() - start)


def plot_cut(weights: np.ndarray, sides: np.ndarray, names: list[str], title: str):
    """The graph with both sides coloured; cut edges drawn solid, uncut ones faint; width ~ weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    graph = nx.from_numpy_array(weights)
    pos = nx.circular_layout(sorted(graph.nodes, key=lambda i: (sides[i], i)))
    fig, ax = plt.subplots(figsize=(7, 7))
    top = max(weights.max(), 1e-9)
    cut_edges = [(i, j) for i, j in graph.edges if sides[i] != sides[j]]
    kept_edges = [(i, j) for i, j in graph.edges if sides[i] == sides[j]]
    for edges, style in ((kept_edges, dict(edge_color="0.75", style="dotted")), (cut_edges, dict(edge_color="tab:red"))):
        nx.draw_networkx_edges(graph, pos, edgelist=edges, ax=ax,
                               width=[0.5 + 4 * weights[i, j] / top for i, j in edges], **style)
    colors = ["tab:blue" if s == 0 else "tab:orange" for s in sides]
    nx.draw_networkx_nodes(graph, pos, node_color=colors, node_size=300, ax=ax)
    nx.draw_networkx_labels(graph, pos, labels={i: names[i] for i in graph.nodes}, font_size=7, ax=ax)
    ax.set_title(title)
    ax.axis("off")
    return fig


def read_graph(path: Path) -> np.ndarray:
    """A dense .npy / .csv matrix, or an edge list `n m` then `i j w` lines (1-based)."""
    if not path.is_file():
        raise AuxcutError(f"{path}: file not found")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix == ".csv":
            return np.loadtxt(path, delimiter=",", ndmin=2)
        lines = [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        n, m = int(lines[0][0]), int(lines[0][1])
        if len(lines) - 1 != m:
            raise AuxcutError(f"{path}: header says {m} edges, found {len(lines) - 1}")
        weights = np.zeros((n, n))
        for k, row in enumerate(lines[1:], start=2):
            i, j, w = int(row[0]) - 1, int(row[1]) - 1, float(row[2]) if len(row) > 2 else 1.0
            if not (0 <= i < n and 0 <= j < n):
                raise AuxcutError(f"{path}: line {k}: node out of range 1..{n}")
            weights[i, j] += w
            if i != j:
                weights[j, i] += w
        return weights
    except (ValueError, IndexError) as exc:
        raise AuxcutError(f"{path}: not a dense .npy/.csv matrix or an 'n m' + 'i j w' edge list ({exc})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m auxcut.maxcut", description=__doc__.split("\n\n")[0])
    parser.add_argument("graph", type=Path, help="dense .npy/.csv weight matrix or 'n m' / 'i j w' edge list")
    parser.add_argument("--hyperplanes", type=int, default=1000, help="random hyperplanes to round with (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exact-max-n", type=int, default=20, help="also enumerate the exact optimum up to this n")
    parser.add_argument("--out", type=Path, help="write the partition here, one 0/1 per line (node order)")
    args = parser.parse_args(argv)
    try:
        weights = check_weights(read_graph(args.graph), where=str(args.graph))
        result = goemans_williamson(weights, hyperplanes=args.hyperplanes, seed=args.seed, exact_max_n=args.exact_max_n)
    except AuxcutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {k: v for k, v in asdict(result).items() if k != "sides"}
    report.update(n=weights.shape[0], edges=int(np.count_nonzero(np.triu(weights, 1))))
    print(json.dumps(report, indent=2))
    if args.out:
        from auxcut.io import atomic_path

        with atomic_path(args.out) as tmp:
            tmp.write_text("".join(f"{s}\n" for s in result.sides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
