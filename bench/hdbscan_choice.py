"""Which HDBSCAN for fine-label discovery: scikit-learn's (already a dependency) or the hdbscan package?

    python bench/hdbscan_choice.py [--out bench/results/hdbscan_choice.md]

On scikit-learn's digits, two coarse classes (digits 0-4 and 5-9) are laid out with UMAP as the discover stage does,
then clustered by both implementations with the same min_cluster_size: wall time (best of 3, as a ratio to
scikit-learn's measured in the same run), clusters found, noise share, and how far the two labellings agree (ARI).
The hdbscan package is not a dependency of auxcut; install it next to it to run the comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.cluster import HDBSCAN
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score


def best_of(fn, repeats: int = 3) -> tuple[float, np.ndarray]:
    times, labels = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        labels = fn()
        times.append(time.perf_counter() - start)
    return min(times), labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--min-cluster-size", type=int, default=15)
    args = parser.parse_args()
    try:
        import hdbscan
    except ImportError:
        print("the hdbscan package is not installed: pip install hdbscan to compare", file=sys.stderr)
        return 2
    import umap

    x, y = load_digits(return_X_y=True)
    rows = ["| coarse class | images | sklearn s | hdbscan s | hdbscan / sklearn time | clusters (sklearn / hdbscan) | "
            "noise (sklearn / hdbscan) | ARI between them | ARI vs digit (sklearn / hdbscan) |", "|---" * 9 + "|"]
    for name, mask in (("0-4", y < 5), ("5-9", y >= 5)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layout = umap.UMAP(n_neighbors=15, n_components=2, min_dist=0.0, random_state=0).fit_transform(x[mask])
        t_sk, a = best_of(lambda: HDBSCAN(min_cluster_size=args.min_cluster_size, copy=True).fit_predict(layout))
        t_hd, b = best_of(lambda: hdbscan.HDBSCAN(min_cluster_size=args.min_cluster_size).fit_predict(layout))
        rows.append(f"| {name} | {mask.sum()} | {t_sk:.3f} | {t_hd:.3f} | {t_hd / t_sk:.2f} | {a.max() + 1} / {b.max() + 1} | "
                    f"{(a < 0).mean():.1%} / {(b < 0).mean():.1%} | {adjusted_rand_score(a, b):.3f} | "
                    f"{adjusted_rand_score(y[mask], a):.3f} / {adjusted_rand_score(y[mask], b):.3f} |")
    text = "\n".join(rows) + "\n"
    print(text)
    if args.out:
        args.out.write_text("# HDBSCAN: scikit-learn's against the hdbscan package\n\n`python bench/hdbscan_choice.py`\n\n"
                            + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
