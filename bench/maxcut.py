"""Max-cut benchmark: auxcut's solver against cvxpy+SCS GW, networkx one_exchange and random cuts,
all measured in this one run on this machine. Prints one table (markdown).

    python bench/maxcut.py                 # the standard set (a few minutes on 2 cores)
    python bench/maxcut.py --quick         # small sizes only
    python bench/maxcut.py --gset DIR      # also G-set files found in DIR (G1, G2, ... edge lists)

Graphs: confusion-like (dense, Poisson counts decaying with class distance, like a classifier's
confusion matrix) at n = 15, 30, 100, 200, 1000, and sparse random unweighted graphs at n = 800, 2000.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auxcut.maxcut import edge_count, read_graph, solve  # noqa: E402

# Best cuts published for G-set instances with non-negative weights (Benlic & Hao's breakout local search, 2013).
GSET_BEST = {"G1": 11624, "G2": 11620, "G3": 11622, "G4": 11646, "G5": 11631, "G14": 3064, "G15": 3050,
             "G16": 3052, "G17": 3047, "G22": 13359, "G23": 13344, "G24": 13337, "G25": 13340, "G26": 13328,
             "G43": 6660, "G44": 6650, "G45": 6654, "G46": 6649, "G47": 6657}
CVXPY_MAX_N = 200  # SCS takes minutes and Clarabel runs out of memory beyond this here
# networkx's one_exchange re-scores the whole cut for every candidate flip, O(n^2 m) from the empty cut:
# beyond this it takes minutes (n = 200 dense, 2e4 edges: 40 s here).
ONE_EXCHANGE_MAX_WORK = 1e9


def confusion_like(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    distance = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    counts = rng.poisson(40.0 * np.exp(-distance / max(2.0, n / 10)) + 0.3).astype(np.float64)
    weights = counts + counts.T
    np.fill_diagonal(weights, 0.0)
    return weights


def sparse_random(n: int, degree: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = int(n * degree / 2)
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = a != b
    upper = sp.coo_matrix((np.ones(keep.sum()), (np.minimum(a, b)[keep], np.maximum(a, b)[keep])), shape=(n, n)).tocsr()
    upper.data[:] = 1.0  # unweighted: repeated pairs are one edge
    return (upper + upper.T).tocsr()


def best_random(weights, tries: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    x = np.where(rng.random((weights.shape[0], tries)) < 0.5, 1.0, -1.0)
    return float((0.25 * (weights.sum() - np.einsum("nh,nh->h", x, np.asarray(weights @ x)))).max())


def rows_for(name: str, weights, seed: int) -> list[dict]:
    n = weights.shape[0]
    rows = []
    exact = solve(weights, "exact").cut if n <= 20 else None
    timed = {}
    for method in ("lowrank", "cvxpy"):
        if method == "cvxpy" and n > CVXPY_MAX_N:
            rows.append({"graph": name, "n": n, "method": "cvxpy+SCS GW", "note": f"skipped: n > {CVXPY_MAX_N}"})
            continue
        repeats = 3 if method == "lowrank" else 1  # fast runs: best of 3, to damp timer noise
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = solve(weights, method, seed=seed, exact_max_n=0)
            seconds.append(time.perf_counter() - start)
        timed[method] = (min(seconds), result)
        rows.append({"graph": name, "n": n, "method": "auxcut lowrank GW" if method == "lowrank" else "cvxpy+SCS GW",
                     "seconds": timed[method][0], "sdp": result.sdp_value, "bound": result.upper_bound,
                     "cut": result.cut, "exact": exact})
    if exact is not None:  # what the maxcut stage runs on small class counts: GW plus enumeration
        start = time.perf_counter()
        result = solve(weights, "auto", seed=seed)
        rows.append({"graph": name, "n": n, "method": "auxcut auto (GW + exact)", "seconds": time.perf_counter() - start,
                     "sdp": result.sdp_value, "bound": result.upper_bound, "cut": result.cut, "exact": exact})
    if "cvxpy" in timed:
        lowrank_s, lowrank = timed["lowrank"]
        cvxpy_s, cvxpy = timed["cvxpy"]
        rows[0]["note"] = (f"{cvxpy_s / lowrank_s:.0f}x faster than cvxpy; SDP value "
                           f"{(lowrank.sdp_value - cvxpy.sdp_value) / cvxpy.sdp_value:+.2e} vs cvxpy")
    if n * n * edge_count(weights) <= ONE_EXCHANGE_MAX_WORK:
        graph = nx.from_scipy_sparse_array(sp.csr_matrix(weights)) if sp.issparse(weights) else nx.from_numpy_array(weights)
        start = time.perf_counter()
        value, _ = nx.algorithms.approximation.one_exchange(graph, weight="weight", seed=seed)
        rows.append({"graph": name, "n": n, "method": "networkx one_exchange", "seconds": time.perf_counter() - start,
                     "cut": float(value), "exact": exact})
    else:
        rows.append({"graph": name, "n": n, "method": "networkx one_exchange",
                     "note": "skipped: n^2 x edges > 1e9 (minutes in pure Python)"})
    start = time.perf_counter()
    rows.append({"graph": name, "n": n, "method": "best of 100 random cuts", "cut": best_random(weights, 100, seed),
                 "seconds": time.perf_counter() - start, "exact": exact})
    return rows


def fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def table(rows: list[dict], reference: dict[str, float]) -> str:
    lines = ["| graph | n | method | seconds | SDP value | certified bound | cut | cut / bound | cut / exact "
             "| cut / best published | note |", "|" + "---|" * 11]
    # rows without a bound of their own (baselines) are measured against the lowrank certificate
    bounds = {r["graph"]: r["bound"] for r in rows if r.get("bound") and r["method"] == "auxcut lowrank GW"}
    for r in rows:
        bound = r.get("bound") or bounds.get(r["graph"])
        cut = r.get("cut")
        lines.append("| " + " | ".join([
            r["graph"], str(r["n"]), r["method"], fmt(r.get("seconds"), ".3f"), fmt(r.get("sdp"), ".6g"),
            fmt(r.get("bound"), ".6g"), fmt(cut, ".6g"),
            fmt(None if cut is None or not bound else cut / bound, ".4f"),
            fmt(None if cut is None or not r.get("exact") else cut / r["exact"], ".4f"),
            fmt(None if cut is None or r["graph"] not in reference else cut / reference[r["graph"]], ".4f"),
            r.get("note", "")]) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n <= 200 only")
    parser.add_argument("--gset", type=Path, help="folder with G-set edge-list files named G1, G2, ... (any suffix)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    graphs = [(f"confusion-{n}", confusion_like(n, args.seed)) for n in (15, 30, 100, 200, 1000)]
    graphs += [(f"sparse-{n}", sparse_random(n, 12.0, args.seed)) for n in (800, 2000)]
    if args.quick:
        graphs = [(name, w) for name, w in graphs if w.shape[0] <= 200]
    reference: dict[str, float] = {}
    if args.gset:
        for path in sorted(args.gset.iterdir()):
            if path.stem in GSET_BEST:
                graphs.append((path.stem, read_graph(path)))
                reference[path.stem] = GSET_BEST[path.stem]
    for method in ("lowrank", "cvxpy", "exact"):  # warm up imports and solver set-up outside the timings
        solve(confusion_like(8, 1), method)
    rows = []
    for name, weights in graphs:
        print(f"... {name}", file=sys.stderr, flush=True)
        rows.extend(rows_for(name, weights, args.seed))
    print(table(rows, reference))
    if not args.gset:
        print("\nG-set: not run (pass --gset DIR with the instance files; none ship with auxcut).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
