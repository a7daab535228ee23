"""The Goemans-Williamson SDP relaxation, max 1/4 sum_ij W_ij (1 - X_ij) s.t. diag(X) = 1, X PSD,
solved two ways, and a certified upper bound from any approximate solution.

- `lowrank_sdp`: Burer-Monteiro. X = V V^T with unit rows of rank k ~ sqrt(2n) (enough for an
  optimal solution, by Barvinok-Pataki), minimising <W, V V^T> by Riemannian gradient descent on the
  product of spheres with Barzilai-Borwein steps. Every step is two matrix products, dense or sparse.
- `cvxpy_sdp`: the reference: the full n x n SDP in cvxpy with SCS (slow beyond n ~ 200).
- `dual_bound`: a bound that does not trust either solver. The SDP equals max <L/4, X> with L the
  Laplacian; its dual is min sum(y) s.t. Diag(y) - L/4 PSD, and for any such y every cut x in
  {-1, 1}^n has x^T (L/4) x <= x^T Diag(y) x = sum(y). We take y = diag(L X)/4 from the solver's X
  (its multipliers at optimality) and shift it by the smallest eigenvalue of Diag(y) - L/4 (plus a
  floating-point margin) so the dual constraint holds: sum(y) is then a proven upper bound.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from auxcut import AuxcutError
from auxcut.method.maxcut.graph import Weights

DENSE_EIGEN_MAX_N = 4000  # above this the smallest eigenvalue comes from ARPACK instead of LAPACK


def sdp_rank(n: int) -> int:
    return min(n, int(np.ceil(np.sqrt(2 * n))) + 1)


def lowrank_sdp(weights: Weights, *, rank: int | None = None, tol: float = 1e-7, max_iter: int = 5000,
                seed: int = 0) -> tuple[np.ndarray, float, int]:
    """Unit vectors V (n x rank) approximately solving the SDP, the SDP value they reach, and iterations."""
    n = weights.shape[0]
    rank = rank or sdp_rank(n)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, rank))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    total = float(weights.sum())
    wv = np.asarray(weights @ v)
    f = float(np.sum(wv * v))
    degree_max = float(np.asarray(abs(weights).sum(1)).max()) or 1.0
    step, prev_v, prev_g, calm = 1.0 / (2 * degree_max), None, None, 0
    iteration = 0
    for iteration in range(1, max_iter + 1):
        grad = 2.0 * (wv - np.sum(wv * v, axis=1, keepdims=True) * v)  # Riemannian gradient of <W, VV^T>
        if prev_g is not None:
            s, y = v - prev_v, grad - prev_g
            sy = float(np.sum(s * y))
            if sy > 0:
                step = float(np.sum(s * s)) / sy  # Barzilai-Borwein
        prev_v, prev_g = v, grad
        v = v - step * grad
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        wv = np.asarray(weights @ v)
        f_new = float(np.sum(wv * v))
        calm = calm + 1 if abs(f - f_new) <= tol * max(abs(f_new), total * 1e-12, 1e-300) else 0
        f = f_new
        if calm >= 5:
            break
    return v, 0.25 * (total - f), iteration


def cvxpy_sdp(weights: Weights, *, eps: float = 1e-7, max_iters: int = 200_000) -> tuple[np.ndarray, float]:
    """The SDP in cvxpy with SCS; unit-ish vectors from an eigendecomposition of X, and SCS's objective."""
    import cvxpy as cp

    w = weights.toarray() if sp.issparse(weights) else weights
    n = w.shape[0]
    gram = cp.Variable((n, n), symmetric=True)
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(w, 1 - gram)) / 4), [gram >> 0, cp.diag(gram) == 1])
    problem.solve(solver=cp.SCS, eps_abs=eps, eps_rel=eps, max_iters=max_iters)
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or gram.value is None:
        raise AuxcutError(f"max-cut SDP: SCS did not converge (status {problem.status})")
    values, vectors = np.linalg.eigh((gram.value + gram.value.T) / 2)
    v = vectors * np.sqrt(np.clip(values, 0.0, None))
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
    return v, float(problem.value)


def dual_bound(weights: Weights, vectors: np.ndarray) -> tuple[float, bool]:
    """An upper bound on the max cut from unit vectors V, and whether it is proven (see the module doc).

    Proven for n <= DENSE_EIGEN_MAX_N (LAPACK's smallest eigenvalue less a rounding-error margin);
    above that the eigenvalue comes from ARPACK and the bound is as good as its tolerance.
    """
    n = weights.shape[0]
    degree = np.asarray(weights.sum(1)).ravel()
    y = 0.25 * (degree - np.sum(np.asarray(weights @ vectors) * vectors, axis=1))  # diag(L V V^T) / 4
    shift = y - degree / 4  # Diag(y) - L/4 = Diag(y - degree/4) + W/4
    if n <= DENSE_EIGEN_MAX_N:
        m = (weights.toarray() if sp.issparse(weights) else np.array(weights)) / 4
        m[np.diag_indices(n)] += shift
        lam = float(scipy.linalg.eigh(m, eigvals_only=True, subset_by_index=[0, 0], check_finite=False)[0])
        margin = 16 * n * np.finfo(np.float64).eps * float(np.abs(m).sum(1).max())
        proven = True
    else:
        m = sp.csr_matrix(weights) / 4 + sp.diags(shift)
        lam = float(scipy.sparse.linalg.eigsh(m, k=1, which="SA", tol=1e-10, return_eigenvectors=False)[0])
        margin, proven = 1e-8 * float(abs(m).sum(1).max()), False
    return float(y.sum() + n * max(0.0, margin - lam)), proven
