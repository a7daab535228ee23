"""Max-cut benchmark: auxcut's solver (GW, and GW + tabu polish) against cvxpy+SCS GW, networkx
one_exchange and random cuts, all measured in this one run on this machine. Prints two markdown tables.

    python bench/maxcut.py                 # the standard set (a few minutes on 2 cores)
    python bench/maxcut.py --quick         # small sizes only, plus the G-set-like graphs
    python bench/maxcut.py --gset DIR      # also G-set files found in DIR (G1, G2, ... edge lists)

Graphs: confusion-like (dense, Poisson counts decaying with class distance, like a classifier's
confusion matrix) at n = 15, 30, 100, 200, 1000, and sparse random unweighted graphs at n = 800, 2000.

G-set-like graphs (second table; always run, since no G-set files ship with auxcut): generated with
the parameters of G-set instances, unit weights:
- G1/G2/G3-like: rudy-style random graphs G(800, 6%): exactly 19176 of the 319600 pairs, drawn
  uniformly (three seeds), as G1-G3 have.
- G11-like: the 20 x 40 two-dimensional torus (800 nodes, 1600 edges). The real G11 has +-1 weights,
  which this engine does not take; with unit weights an even torus is bipartite, so its max cut is all
  1600 edges and the SDP bound is tight: a check that the pipeline reaches a known optimum.
- G14-like: 800 nodes, 4694 unit edges. rudy's planar generator is not available, and 4694 is more
  than any planar graph on 800 nodes has (3n - 6 = 2394), so the proxy is the union of two random
  planar graphs (Delaunay triangulations of two independent sets of random points on the same 800
  nodes), thinned at random to 4694 edges.
For each: GW alone (the baseline), GW + tabu, the certified SDP bound, cut / bound, and for G1-G3-like
the cut against the real instance's best known cut, as a proxy (see the table's note).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auxcut.method.maxcut import check_weights, edge_count, read_graph, solve  # noqa: E402

# Best cuts published for G-set instances with non-negative weights (Benlic & Hao's breakout local search, 2013).
GSET_BEST = {"G1": 11624, "G2": 11620, "G3": 11622, "G4": 11646, "G5": 11631, "G14": 3064, "G15": 3050,
             "G16": 3052, "G17": 3047, "G22": 13359, "G23": 13344, "G24": 13337, "G25": 13340, "G26": 13328,
             "G43": 6660, "G44": 6650, "G45": 6654, "G46": 6649, "G47": 6657}
GSET_AIM = 0.995  # G1-G3-like: GW + tabu should reach this fraction of the best known cut ...
GSET_AIM_SECONDS = 5.0  # ... in at most this many seconds (SDP, certificate, rounding and polish)
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


def undirected(n: int, rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
    """The unit-weight graph with the edges rows[k] - cols[k] (a pair listed twice is one edge)."""
    upper = sp.coo_matrix((np.ones(len(rows)), (np.minimum(rows, cols), np.maximum(rows, cols))), shape=(n, n)).tocsr()
    upper.data[:] = 1.0
    return (upper + upper.T).tocsr()


def rudy_random(n: int, density: float, seed: int) -> sp.csr_matrix:
    """G(n, m): m = round(density * n(n-1)/2) distinct pairs drawn uniformly, unit weights (rudy-style, as G1-G3)."""
    rng = np.random.default_rng(seed)
    pairs = n * (n - 1) // 2
    codes = rng.choice(pairs, size=round(density * pairs), replace=False)
    rows, cols = np.triu_indices(n, 1)
    return undirected(n, rows[codes], cols[codes])


def torus(rows: int, cols: int) -> sp.csr_matrix:
    """The rows x cols two-dimensional torus, unit weights: every node joined to its 4 grid neighbours."""
    node = np.arange(rows * cols).reshape(rows, cols)
    right, down = np.roll(node, -1, axis=1), np.roll(node, -1, axis=0)
    return undirected(rows * cols, np.concatenate([node.ravel(), node.ravel()]),
                      np.concatenate([right.ravel(), down.ravel()]))


def planar_union(n: int, edges: int, seed: int) -> sp.csr_matrix:
    """Two random planar graphs on the same n nodes (Delaunay triangulations of two sets of uniform random
    points), united and thinned at random to `edges` edges, unit weights."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(2):
        simplices = Delaunay(rng.random((n, 2))).simplices
        for a, b in ((0, 1), (1, 2), (0, 2)):
            pairs.append(np.stack([simplices[:, a], simplices[:, b]], axis=1))
    both = np.unique(np.sort(np.concatenate(pairs), axis=1), axis=0)  # each edge once
    if len(both) < edges:
        raise SystemExit(f"planar_union: only {len(both)} edges, asked for {edges}")
    keep = both[rng.choice(len(both), size=edges, replace=False)]
    return undirected(n, keep[:, 0], keep[:, 1])


def gset_like(seed: int) -> list[tuple[str, sp.csr_matrix, str | None]]:
    """(name, graph, the real G-set instance whose best known cut it is measured against, as a proxy)."""
    graphs = [(f"G{k}-like", rudy_random(800, 0.06, seed + k), f"G{k}") for k in (1, 2, 3)]
    graphs.append(("G11-like", torus(20, 40), None))
    graphs.append(("G14-like", planar_union(800, 4694, seed + 14), None))
    return graphs


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
        seconds, result = timed_solve(weights, method, seed, repeats, polish="none")  # GW as it is: the baseline
        timed[method] = (seconds, result)
        rows.append({"graph": name, "n": n, "method": "auxcut lowrank GW" if method == "lowrank" else "cvxpy+SCS GW",
                     "seconds": seconds, "sdp": result.sdp_value, "bound": result.upper_bound,
                     "cut": result.cut, "exact": exact})
    gw_seconds, gw = timed["lowrank"]
    seconds, result = timed_solve(weights, "lowrank", seed, 1, polish="tabu")
    rows.append({"graph": name, "n": n, "method": "auxcut lowrank GW + tabu", "seconds": seconds,
                 "sdp": result.sdp_value, "bound": result.upper_bound, "cut": result.cut, "exact": exact,
                 "note": f"cut {result.cut / gw.cut:.4f}x GW's, time {seconds / gw_seconds:.1f}x GW's"})
    if exact is not None:  # what the maxcut stage runs on small class counts: GW, the polish and enumeration
        start = time.perf_counter()
        result = solve(weights, "auto", seed=seed)
        rows.append({"graph": name, "n": n, "method": "auxcut auto (GW + tabu + exact)",
                     "seconds": time.perf_counter() - start,
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


def timed_solve(weights, method: str, seed: int, repeats: int, polish: str):
    """The fastest of `repeats` identical solves (to damp timer noise), and its result."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = solve(weights, method, seed=seed, exact_max_n=0, polish=polish)
        seconds.append(time.perf_counter() - start)
    return min(seconds), result


def gset_row(name: str, weights, seed: int, best: float | None, proxy: bool) -> dict:
    """GW alone (best of 3) and GW + tabu (one run: the polish is deterministic unless its time cap stops it)."""
    weights = check_weights(weights)
    gw_seconds, gw = timed_solve(weights, "lowrank", seed, 3, polish="none")
    seconds, polished = timed_solve(weights, "lowrank", seed, 1, polish="tabu")
    assert polished.upper_bound == gw.upper_bound  # the polish never touches the certificate
    return {"graph": name, "n": weights.shape[0], "edges": edge_count(weights), "gw_seconds": gw_seconds,
            "gw_cut": gw.cut, "seconds": seconds, "polish_seconds": polished.seconds.get("polish"),
            "cut": polished.cut, "bound": polished.upper_bound, "certified": polished.certified,
            "best": best, "proxy": proxy}


def gset_table(rows: list[dict]) -> str:
    lines = ["| graph | n | edges | GW s | GW cut | GW / bound | GW + tabu s (of which tabu) | GW + tabu cut "
             "| cut / bound | cut / GW cut | time / GW time | certified SDP bound | cut / best known | aim |",
             "|" + "---|" * 14]
    for r in rows:
        ratio = None if r["best"] is None else r["cut"] / r["best"]
        aim = "" if ratio is None else ("met" if ratio >= GSET_AIM and r["seconds"] <= GSET_AIM_SECONDS else "missed")
        best = "" if ratio is None else f"{ratio:.4f} ({'proxy: ' if r['proxy'] else ''}{r['best']:g})"
        lines.append("| " + " | ".join([
            r["graph"], str(r["n"]), str(r["edges"]), f"{r['gw_seconds']:.3f}", f"{r['gw_cut']:g}",
            f"{r['gw_cut'] / r['bound']:.4f}", f"{r['seconds']:.3f} ({r['polish_seconds']:.3f})", f"{r['cut']:g}",
            f"{r['cut'] / r['bound']:.4f}", f"{r['cut'] / r['gw_cut']:.4f}", f"{r['seconds'] / r['gw_seconds']:.1f}",
            f"{r['bound']:.6g}" + ("" if r["certified"] else " (not proven)"), best, aim]) + " |")
    return "\n".join(lines)


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
    parser.add_argument("--quick", action="store_true", help="n <= 200 only, plus the G-set-like graphs")
    parser.add_argument("--gset", type=Path, help="folder with G-set edge-list files named G1, G2, ... (any suffix)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    graphs = [(f"confusion-{n}", confusion_like(n, args.seed)) for n in (15, 30, 100, 200, 1000)]
    graphs += [(f"sparse-{n}", sparse_random(n, 12.0, args.seed)) for n in (800, 2000)]
    if args.quick:
        graphs = [(name, w) for name, w in graphs if w.shape[0] <= 200]
    reference: dict[str, float] = {}
    gset_files = []
    if args.gset:
        for path in sorted(args.gset.iterdir()):
            if path.stem in GSET_BEST:
                graphs.append((path.stem, read_graph(path)))
                gset_files.append((path.stem, graphs[-1][1]))
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
    like = []
    for name, weights, real in gset_like(args.seed):
        print(f"... {name}", file=sys.stderr, flush=True)
        like.append(gset_row(name, weights, args.seed, GSET_BEST.get(real), proxy=True))
    for name, weights in gset_files:
        print(f"... {name} (file)", file=sys.stderr, flush=True)
        like.append(gset_row(name, weights, args.seed, GSET_BEST[name], proxy=False))
    print(f"\nG-set-like graphs (aim: G1-G3-like cut >= {GSET_AIM} x best known in <= {GSET_AIM_SECONDS:g} s):\n")
    print(gset_table(like))
    return 0


if __name__ == "__main__":
    sys.exit(main())
