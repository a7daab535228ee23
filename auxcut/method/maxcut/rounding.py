"""From SDP vectors to a cut: Goemans-Williamson random hyperplanes, then one-flip local search."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from auxcut.method.maxcut.graph import Weights, cut_value


def hyperplane_cuts(weights: Weights, vectors: np.ndarray, hyperplanes: int, rng: np.random.Generator,
                    keep: int = 1, chunk: int = 256) -> list[np.ndarray]:
    """The `keep` best of `hyperplanes` random hyperplane cuts of the unit vectors (scored in chunks)."""
    total = weights.sum()
    scores, signs = [], []
    for start in range(0, hyperplanes, chunk):
        normals = rng.standard_normal((vectors.shape[1], min(chunk, hyperplanes - start)))
        x = np.where(vectors @ normals >= 0, 1.0, -1.0)
        values = 0.25 * (total - np.einsum("nh,nh->h", x, np.asarray(weights @ x)))
        best = np.argsort(values)[::-1][:keep]
        scores.extend(values[best])
        signs.extend(x[:, b] for b in best)
    order = np.argsort(scores)[::-1][:keep]
    return [(signs[i] > 0).astype(np.int64) for i in order]


def local_search(weights: Weights, sides: np.ndarray) -> np.ndarray:
    """Flip the single node that gains most until no flip gains (each flip strictly raises the cut)."""
    if sp.issparse(weights):
        weights = sp.csr_matrix(weights, copy=True)
        weights.setdiag(0.0)  # self-loops never cross a cut; left in, they make flips cycle
        weights.eliminate_zeros()
    else:
        weights = weights - np.diag(np.diag(weights))
    x = 2.0 * np.asarray(sides, dtype=np.float64) - 1.0
    field = np.asarray(weights @ x, dtype=np.float64).ravel()
    while True:
        gain = x * field  # flipping node i raises the cut by x_i (W x)_i
        i = int(np.argmax(gain))
        if gain[i] <= 1e-12 * max(1.0, abs(field).max()):
            break
        if sp.issparse(weights):  # symmetric: row i is column i
            lo, hi = weights.indptr[i], weights.indptr[i + 1]
            field[weights.indices[lo:hi]] -= 2.0 * x[i] * weights.data[lo:hi]
        else:
            field -= 2.0 * x[i] * weights[:, i]
        x[i] = -x[i]
    return (x > 0).astype(np.int64)


def round_and_polish(weights: Weights, vectors: np.ndarray, hyperplanes: int, seed: int,
                     polish: int = 8) -> tuple[np.ndarray, float]:
    """The best cut after polishing each of the `polish` best hyperplane cuts with local search."""
    rng = np.random.default_rng(seed)
    best_sides, best_cut = None, -1.0
    for sides in hyperplane_cuts(weights, vectors, hyperplanes, rng, keep=polish):
        sides = local_search(weights, sides)
        value = cut_value(weights, sides)
        if value > best_cut:
            best_sides, best_cut = sides, value
    return best_sides, best_cut
