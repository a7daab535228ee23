"""Weighted graphs for max-cut: validation, cut values, and reading files (dense or G-set edge lists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from auxcut import AuxcutError

Weights = np.ndarray | sp.csr_matrix
SYMMETRY_TOLERANCE = 1e-9  # relative: rounding noise is averaged away, anything larger is an error
# The most nodes an edge list may declare: five times the largest G-set instance (G81, n = 20000). The lowrank SDP
# holds an n x sqrt(2n) matrix (360 MB at this n); the header is checked before anything of size n is allocated.
MAX_NODES = 100_000


def check_weights(weights: object, where: str = "weights") -> Weights:
    """A valid instance: square, symmetric, finite, non-negative, n >= 2; the diagonal is dropped.

    Dense input stays a float64 array; scipy sparse input becomes a float64 CSR matrix.
    """
    if sp.issparse(weights):
        w = sp.csr_matrix(weights, dtype=np.float64)
        values = w.data
    else:
        try:
            w = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError):
            raise AuxcutError(f"{where}: expected a numeric matrix") from None
        values = w
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise AuxcutError(f"{where}: expected a square matrix, got shape {w.shape}")
    n = w.shape[0]
    if n < 2:
        raise AuxcutError(f"{where}: a cut needs at least 2 nodes, got {n}")
    if not np.isfinite(values).all():
        raise AuxcutError(f"{where}: weights must be finite (found NaN or inf)")
    if sp.issparse(w):
        w = w.copy()
        w.setdiag(0.0)
        w.eliminate_zeros()
        if w.nnz and w.data.min() < 0:
            raise AuxcutError(f"{where}: weights must be non-negative (min {w.data.min():g})")
        asym = abs(w - w.T)
        if asym.nnz and asym.max() > SYMMETRY_TOLERANCE * max(1.0, abs(w).max()):
            raise AuxcutError(f"{where}: matrix is not symmetric; pass W + W.T (or an edge list)")
        return ((w + w.T) / 2).tocsr()
    w = w.copy()
    np.fill_diagonal(w, 0.0)
    if (w < 0).any():
        raise AuxcutError(f"{where}: weights must be non-negative (min {w.min():g})")
    if np.abs(w - w.T).max() > SYMMETRY_TOLERANCE * max(1.0, np.abs(w).max()):
        raise AuxcutError(f"{where}: matrix is not symmetric; pass W + W.T (or an edge list)")
    return (w + w.T) / 2


def total_weight(weights: Weights) -> float:
    """Sum of all edge weights (each undirected edge once)."""
    return float(weights.sum()) / 2


def cut_value(weights: Weights, sides: np.ndarray) -> float:
    """Total weight of the edges whose ends lie on different sides (sides: 0/1 per node)."""
    x = 2.0 * np.asarray(sides, dtype=np.float64) - 1.0
    return float(0.25 * (weights.sum() - x @ (weights @ x)))


def edge_count(weights: Weights) -> int:
    return int(sp.triu(weights, 1).nnz) if sp.issparse(weights) else int(np.count_nonzero(np.triu(weights, 1)))


def read_graph(path: Path) -> Weights:
    """A dense .npy / .csv matrix, or an edge list: `n m`, then m lines `i j [w]` (1-based; w defaults to 1), with
    n at most MAX_NODES."""
    if not path.is_file():
        raise AuxcutError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".csv":
            return np.loadtxt(path, delimiter=",", ndmin=2)
        return _read_edge_list(path)
    except (ValueError, IndexError, OSError) as exc:
        raise AuxcutError(f"{path}: not a dense .npy/.csv matrix or an 'n m' + 'i j w' edge list ({exc})") from None


def _read_edge_list(path: Path) -> sp.csr_matrix:
    # (line number in the file, fields), skipping blank lines and # comments
    lines = [(number, line.split()) for number, line in enumerate(path.read_text().splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines or len(lines[0][1]) != 2:
        raise AuxcutError(f"{path}: line {lines[0][0] if lines else 1}: expected 'n m' (nodes, edges)")
    n, m = int(lines[0][1][0]), int(lines[0][1][1])
    if not 1 <= n <= MAX_NODES:
        raise AuxcutError(f"{path}: line {lines[0][0]}: header says {n} nodes; expected 1 to {MAX_NODES:,} "
                          "(auxcut's limit for an edge list)")
    if len(lines) - 1 != m:
        raise AuxcutError(f"{path}: header says {m} edges, found {len(lines) - 1}")
    rows, cols, vals = np.empty(m, np.int64), np.empty(m, np.int64), np.ones(m)
    for k, (number, row) in enumerate(lines[1:]):
        if len(row) not in (2, 3):
            raise AuxcutError(f"{path}: line {number}: expected 'i j' or 'i j w'")
        rows[k], cols[k] = int(row[0]) - 1, int(row[1]) - 1
        if len(row) == 3:
            vals[k] = float(row[2])
    bad = np.flatnonzero((rows < 0) | (rows >= n) | (cols < 0) | (cols >= n))
    if bad.size:
        raise AuxcutError(f"{path}: line {lines[bad[0] + 1][0]}: node out of range 1..{n}")
    upper = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()  # repeated edges add up
    return (upper + upper.T).tocsr()
