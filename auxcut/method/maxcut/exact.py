"""The exact max-cut by enumeration: every cut is scored, in vectorised chunks."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from auxcut import AuxcutError
from auxcut.method.maxcut.graph import Weights

MAX_EXACT_N = 24  # 2^23 cuts: about two seconds; each extra node doubles it


def exact_maxcut(weights: Weights, chunk: int = 1 << 16) -> tuple[np.ndarray, float]:
    """The optimum over all 2^(n-1) cuts (the last node is fixed on side 0, which loses nothing)."""
    n = weights.shape[0]
    if n > MAX_EXACT_N:
        raise AuxcutError(f"exact max-cut enumerates 2^(n-1) cuts; n={n} is too large (at most {MAX_EXACT_N})")
    w = weights.toarray() if sp.issparse(weights) else weights
    total, best_value, best_code = w.sum(), -1.0, 0
    shifts = np.arange(n - 1, dtype=np.int64)
    for start in range(0, 1 << (n - 1), chunk):
        codes = np.arange(start, min(start + chunk, 1 << (n - 1)), dtype=np.int64)
        x = np.empty((len(codes), n))
        x[:, : n - 1] = 2.0 * ((codes[:, None] >> shifts) & 1) - 1.0
        x[:, n - 1] = -1.0
        values = 0.25 * (total - np.einsum("bi,bi->b", x @ w, x))
        i = int(np.argmax(values))
        if values[i] > best_value + 1e-12:
            best_value, best_code = float(values[i]), int(codes[i])
    sides = np.zeros(n, dtype=np.int64)
    sides[: n - 1] = (best_code >> shifts) & 1
    return sides, best_value
