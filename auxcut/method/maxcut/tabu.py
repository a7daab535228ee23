"""Tabu search over single flips: a polish that walks on past the local optima one-flip search stops at.

One-flip local search (`auxcut.method.maxcut.rounding.local_search`) stops at the first cut that no single
flip improves. Tabu search keeps flipping: every iteration it flips the node whose flip changes the
cut most (the least loss when every flip loses), and forbids flipping that node back for a few
iterations (its tenure) so the walk cannot fall straight back into the optimum it left. A tabu
flip is still allowed when it would give a cut better than any found so far (aspiration), since
such a move cannot be a return to a visited cut. The best cut seen on the way is returned.

Tenure: n/100 plus a uniform draw from 1..10 for each move: a size-proportional part plus a small
random one, the form of tenure of the one-flip tabu searches for binary quadratic programs by Glover,
Lu and Hao (diversification-driven tabu search, 2010), whose method Kochenberger et al. ran on the
G-set ("Solving large scale Max Cut problems via tabu search", J. Heuristics 2013). The random part
keeps the walk from settling into a cycle of fixed length. Longer tenures (n/50 ... n/5) did no
better on G1-G3-like graphs (bench/results/maxcut.md).

Bookkeeping (x in {-1, +1}^n, W symmetric with zero diagonal): flipping node i changes the cut by
gain_i = x_i (W x)_i. After flipping i, gain_i changes sign and every neighbour j of i moves by
-2 x_i x_j W_ij; nothing else changes. So one iteration is one argmax over the gains plus an update
of the neighbours of the flipped node (a sparse row) or one vector operation (a dense row).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from auxcut import AuxcutError
from auxcut.method.maxcut.graph import Weights, cut_value

TENURE_RANDOM = 10  # tenure = n // 100 + a uniform draw from 1..TENURE_RANDOM
RESYNC_EVERY = 1 << 14  # recompute the gains from scratch this often, so float drift cannot build up
CLOCK_EVERY = 64  # read the clock this often: the time cap is a safety net, checking it every move costs


def default_iterations(n: int) -> int:
    """The default stall limit (iterations without a better cut) for an n-node graph.

    Sized on this project's 2-core machine (bench/results/maxcut.md): n = 30 stops within about ten
    milliseconds, G-set-like n = 800 graphs in 0.5 to 1.2 s.
    """
    return max(1_000, 50 * n)


def tabu_search(weights: Weights, sides: np.ndarray, *, seconds: float = 5.0, max_iterations: int | None = None,
                seed: int = 0, target: float | None = None) -> tuple[np.ndarray, float]:
    """The best cut found by one-flip tabu search from `sides`, and its value (== cut_value of it).

    weights: as `check_weights` returns them (dense float array or CSR matrix; symmetric, non-negative,
    zero diagonal). sides: the start, 0/1 per node. Stops after `max_iterations` flips in a row without
    a better cut (default `default_iterations(n)`) or after `seconds` of wall time, whichever comes
    first. For a given seed the result is the same every run when the iteration limit stops it; the
    time limit is a safety cap and makes the result depend on the machine's speed.
    target: a proven upper bound on the max cut (the SDP certificate): the search stops as soon as
    it finds a cut that reaches it (up to float noise), since nothing can beat that cut.
    The returned cut is never worse than the start (it is the start when nothing better was found).
    """
    n = weights.shape[0]
    start_sides = np.asarray(sides)
    if start_sides.shape != (n,) or not np.isin(start_sides, (0, 1)).all():
        raise AuxcutError(f"tabu search: sides must be 0/1 per node ({n} nodes), got shape {start_sides.shape}")
    if max_iterations is None:
        max_iterations = default_iterations(n)
    if max_iterations < 1:
        raise AuxcutError(f"tabu search: max_iterations must be at least 1, got {max_iterations}")
    if not seconds > 0:
        raise AuxcutError(f"tabu search: seconds must be positive, got {seconds}")
    start_sides = start_sides.astype(np.int64)
    start_cut = cut_value(weights, start_sides)
    # an improvement must beat float noise, or a cut equal to the best could count as better forever
    tol = 1e-9 * max(1.0, float(abs(weights).sum()) / 2)
    # a cut that reaches a proven upper bound is optimal: searching on cannot find better
    goal = np.inf if target is None else target - tol
    if start_cut >= goal:
        return start_sides, start_cut
    deadline = time.perf_counter() + seconds
    rng = np.random.default_rng(seed)

    sparse = sp.issparse(weights)
    if sparse:
        w = sp.csr_matrix(weights)
        # per-node views of the CSR row (= column, W is symmetric), built once: slicing indptr every
        # iteration costs more than the update itself on graphs of average degree ~50
        rows = [(w.indices[w.indptr[i]:w.indptr[i + 1]], w.data[w.indptr[i]:w.indptr[i + 1]]) for i in range(n)]
    else:
        w = np.ascontiguousarray(weights, dtype=np.float64)  # row i is contiguous: the update reads it
    x = 2.0 * start_sides - 1.0
    gain = x * np.asarray(w @ x).ravel()
    # the gains of the moves allowed now: a tabu node's entry is -inf (so argmax skips it)
    allowed = gain.copy()
    tabu_until = np.zeros(n, dtype=np.int64)  # node i is tabu while iteration < tabu_until[i]
    release: dict[int, list[int]] = {}  # iteration -> nodes whose tenure ends then
    cut = best_cut = start_cut
    best_x = x.copy()
    tenures = n // 100 + rng.integers(1, TENURE_RANDOM + 1, size=4096)  # drawn in blocks: one call is slow
    stall = 0
    iteration = 0
    while stall < max_iterations:
        for j in release.pop(iteration, ()):  # tenures ending now (a renewed tenure leaves a stale entry)
            if tabu_until[j] == iteration:
                allowed[j] = gain[j]
        i = int(np.argmax(gain))  # the best move of all: take it if it is allowed or aspirated
        if tabu_until[i] > iteration and cut + gain[i] <= best_cut + tol:
            i = int(np.argmax(allowed))
            if allowed[i] == -np.inf:  # every node tabu (tenure >= n on tiny graphs): take the best move
                i = int(np.argmax(gain))
        cut += gain[i]
        xi = x[i]
        if sparse:
            neighbours, values = rows[i]
            gain[neighbours] -= (2.0 * xi) * x[neighbours] * values
            allowed[neighbours] = np.where(tabu_until[neighbours] > iteration, -np.inf, gain[neighbours])
        else:
            gain -= (2.0 * xi) * x * w[i]  # w[i, i] = 0 leaves gain[i] alone; it flips sign below
            np.copyto(allowed, gain, where=tabu_until <= iteration)
        gain[i] = -gain[i]
        x[i] = -xi
        tenure = int(tenures[iteration % tenures.size])
        if iteration % tenures.size == tenures.size - 1:
            tenures = n // 100 + rng.integers(1, TENURE_RANDOM + 1, size=tenures.size)
        tabu_until[i] = iteration + 1 + tenure
        release.setdefault(iteration + 1 + tenure, []).append(i)
        allowed[i] = -np.inf
        iteration += 1
        if cut > best_cut + tol:
            best_cut, stall = cut, 0
            best_x[:] = x
            if best_cut >= goal:
                break
        else:
            stall += 1
        if iteration % RESYNC_EVERY == 0:
            gain = x * np.asarray(w @ x).ravel()
            allowed = np.where(tabu_until > iteration, -np.inf, gain)
            cut = cut_value(w, (x > 0).astype(np.int64))
        if iteration % CLOCK_EVERY == 0 and time.perf_counter() > deadline:
            break
    best_sides = (best_x > 0).astype(np.int64)
    value = cut_value(weights, best_sides)
    if value < start_cut:  # only float drift could do this; the start is then the honest answer
        return start_sides, start_cut
    return best_sides, value
