"""Max-cut with a proof of quality: exact where exact is cheap, Goemans-Williamson everywhere else.

`solve(W, method=..., polish=...)` returns the partition, its cut, a certified upper bound on the
max cut, and timings. Methods:
- `exact`: enumeration of every cut (n <= 24).
- `lowrank`: the GW SDP by Burer-Monteiro (fast, dense or sparse), random hyperplane rounding and
  one-flip local search; the bound is a dual certificate (see `auxcut.method.maxcut.sdp`).
- `cvxpy`: the same with the reference SDP in cvxpy + SCS (slow; kept as the baseline).
- `auto`: lowrank, plus the exact optimum when n <= exact_max_n (then the exact cut is returned and
  the GW cut and SDP bound are reported beside it).

Polish (lowrank, cvxpy and auto): `polish="tabu"` (the default) runs one-flip tabu search
(`auxcut.method.maxcut.tabu`) from the best rounded cut, which walks on past the local optimum where
one-flip local search stops; `polish="none"` skips it. The polish only ever raises the cut: the
certified bound comes from the SDP alone and is the same with or without it, `rounded_cut` stays
the GW cut before the polish (so reports can set the GW cut against the bound), `polished_cut` is
the cut after it, and `cut` is the best of all (the exact optimum included, when enumerated). Its
budget: `polish_iterations` flips in a row without a better cut (default
`auxcut.method.maxcut.tabu.default_iterations(n)`), capped at `polish_seconds` of wall time. The result is
reproducible per seed when the iteration budget stops the polish (milliseconds for n <= 30, about a
second for n = 800 on a 2-core machine); a run cut short by the time cap depends on machine speed.
With `method="exact"` there is nothing to polish.

Command line: `auxcut maxcut GRAPH` (in `auxcut.apps.cli`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from auxcut import AuxcutError
from auxcut.method.maxcut.exact import MAX_EXACT_N, exact_maxcut
from auxcut.method.maxcut.graph import check_weights, cut_value, edge_count, read_graph, total_weight
from auxcut.method.maxcut.rounding import hyperplane_cuts, local_search, round_and_polish
from auxcut.method.maxcut.sdp import cvxpy_sdp, dual_bound, lowrank_sdp
from auxcut.method.maxcut.tabu import tabu_search

Method = Literal["auto", "exact", "lowrank", "cvxpy"]
METHODS = ("auto", "exact", "lowrank", "cvxpy")
Polish = Literal["tabu", "none"]
POLISHES = ("tabu", "none")
POLISH_SECONDS = 3.0  # a safety cap: the iteration budget stops n = 800 G-set-like graphs in about a second

__all__ = ["MaxCut", "METHODS", "POLISHES", "solve", "check_weights", "cut_value", "edge_count", "exact_maxcut",
           "hyperplane_cuts", "local_search", "read_graph", "total_weight", "dual_bound", "lowrank_sdp", "cvxpy_sdp",
           "tabu_search"]


@dataclass
class MaxCut:
    method: str
    sides: np.ndarray
    cut: float
    upper_bound: float  # proven: no cut of this graph is larger
    sdp_value: float | None = None  # the SDP objective the solver reached (primal)
    sdp_bound: float | None = None  # the certified dual bound of the SDP relaxation
    rounded_cut: float | None = None  # the GW cut (rounding + local search), before any polish
    polished_cut: float | None = None  # the cut after the tabu polish (None: not polished)
    exact: float | None = None  # the optimum, when enumerated
    certified: bool = True
    iterations: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """(bound - cut) / bound: how far the cut can at most be from optimal."""
        return 0.0 if self.upper_bound <= 0 else (self.upper_bound - self.cut) / self.upper_bound

    @property
    def ratio(self) -> float:
        return 1.0 if self.upper_bound <= 0 else self.cut / self.upper_bound

    def summary(self) -> dict:
        """The scalar fields, JSON-ready (for metrics files and the command line)."""
        return {"method": self.method, "cut": self.cut, "upper_bound": self.upper_bound, "gap": self.gap,
                "cut_over_bound": self.ratio, "sdp_value": self.sdp_value, "sdp_bound": self.sdp_bound,
                "rounded_cut": self.rounded_cut, "polished_cut": self.polished_cut, "exact": self.exact,
                "exact_reached": None if self.exact is None or self.rounded_cut is None
                else bool(self.rounded_cut >= self.exact - 1e-9 * max(1.0, self.exact)),
                "certified": self.certified, "iterations": self.iterations, "seconds": self.seconds}


def _timed(seconds: dict[str, float], key: str, start: float) -> float:
    now = time.perf_counter()
    seconds[key] = now - start
    return now


def solve(weights: object, method: Method = "auto", *, seed: int = 0, hyperplanes: int = 1000,
          exact_max_n: int = 20, tol: float = 1e-7, polish: Polish = "tabu", polish_seconds: float = POLISH_SECONDS,
          polish_iterations: int | None = None) -> MaxCut:
    """The max cut of a non-negative weighted graph (dense array or scipy sparse matrix).

    polish: "tabu" polishes the best rounded cut with tabu search, for at most `polish_iterations`
    flips without improvement (None: `default_iterations(n)`) and `polish_seconds` of wall time;
    "none" returns the GW cut as it is. See the module docstring.
    """
    if method not in METHODS:
        raise AuxcutError(f"max-cut method: expected one of {', '.join(METHODS)}, got {method!r}")
    if polish not in POLISHES:
        raise AuxcutError(f"max-cut polish: expected one of {', '.join(POLISHES)}, got {polish!r}")
    if hyperplanes < 1:
        raise AuxcutError(f"max-cut hyperplanes: expected at least 1, got {hyperplanes}")
    if not polish_seconds > 0:
        raise AuxcutError(f"max-cut polish_seconds: expected a positive number, got {polish_seconds}")
    if polish_iterations is not None and polish_iterations < 1:
        raise AuxcutError(f"max-cut polish_iterations: expected at least 1 (or None), got {polish_iterations}")
    start = clock = time.perf_counter()
    w = check_weights(weights)
    n = w.shape[0]
    seconds: dict[str, float] = {}
    if total_weight(w) == 0:
        warnings.warn("max-cut: the graph has no edges (no off-diagonal weight); using a balanced split", stacklevel=2)
        return MaxCut("exact", np.arange(n) % 2, cut=0.0, upper_bound=0.0, rounded_cut=0.0, exact=0.0,
                      seconds={"total": time.perf_counter() - start})
    if method == "exact":
        sides, value = exact_maxcut(w)
        _timed(seconds, "exact", clock)
        seconds["total"] = time.perf_counter() - start
        return MaxCut("exact", _canonical(sides), value, value, exact=value, seconds=seconds)

    if method == "cvxpy":
        vectors, sdp_value = cvxpy_sdp(w)
        iterations = None
    else:
        vectors, sdp_value, iterations = lowrank_sdp(w, tol=tol, seed=seed)
    clock = _timed(seconds, "sdp", clock)
    bound, certified = dual_bound(w, vectors)
    clock = _timed(seconds, "certificate", clock)
    sides, rounded = round_and_polish(w, vectors, hyperplanes, seed)
    clock = _timed(seconds, "rounding", clock)
    cut, polished = rounded, None
    if polish == "tabu":
        # never below the rounded cut: tabu_search returns its start when it finds nothing better.
        # target: a cut that reaches the certified bound is optimal, and the search can stop there
        sides, polished = tabu_search(w, sides, seconds=polish_seconds, max_iterations=polish_iterations, seed=seed,
                                      target=bound if certified else None)
        cut = polished
        clock = _timed(seconds, "polish", clock)
    result = MaxCut("cvxpy" if method == "cvxpy" else "lowrank", _canonical(sides), cut, bound, sdp_value, bound,
                    rounded, polished, certified=certified, iterations=iterations, seconds=seconds)
    if method == "auto" and n <= min(exact_max_n, MAX_EXACT_N):
        exact_sides, value = exact_maxcut(w)
        _timed(seconds, "exact", clock)
        result.method, result.exact, result.upper_bound, result.certified = "exact", value, value, True
        if value > result.cut:
            result.sides, result.cut = _canonical(exact_sides), value
    seconds["total"] = time.perf_counter() - start
    return result


def _canonical(sides: np.ndarray) -> np.ndarray:
    """The same partition with node 0 on side 0, so equal cuts compare equal."""
    sides = np.asarray(sides, dtype=np.int64)
    return 1 - sides if sides[0] == 1 else sides
