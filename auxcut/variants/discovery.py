"""Fine labels discovered inside coarse classes, from a CNN trained on the coarse labels.

1. Uncertainty over augmentations: every train image is classified under `augmentations` random shifts (and flips
   where the base trained with them: faces, not digits);
   the entropy of the mean probabilities measures how unsure the base is. Per coarse class the most certain
   `keep` share is clustered (uncertain images sit between clusters and blur them).
2. Per coarse class, the base's pooled features of those images are reduced with UMAP (umap-learn) and clustered
   with HDBSCAN (scikit-learn's: no further dependency; the hdbscan package gives the same algorithm); with
   `reduce="none"` (an ablation) HDBSCAN clusters the features themselves. A cluster is
   a fine label named `<coarse>/c<k>`; HDBSCAN's noise and the uncertain images get no fine label (-1), which the
   masked multi-head loss skips.
Fallbacks, each recorded per coarse class in the metrics instead of failing the run: a class with too few kept
images for a UMAP neighbourhood, or where HDBSCAN finds no cluster (all noise) or a single one, keeps one fine label
that is the coarse class itself.
3. Every image (all splits) gets, for each coarse class, the nearest fine label of that class: the one whose centroid
   (mean feature of its members) is closest. Within its own class that is the image's fine label when the confusion
   graph is over fine labels (auxcut.method.confusion.graph_nodes); within the class the base predicts, it is where the
   base's mistake lands.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from torch import nn

from auxcut import AuxcutError
from auxcut.nets import training

UNASSIGNED = -1
REDUCERS = ("umap", "none")


@torch.no_grad()
def augmented_entropy(model: nn.Module, images: np.ndarray, mean: np.ndarray, std: np.ndarray, augmentations: int,
                      flip: bool, seed: int, batch_size: int, device: torch.device) -> np.ndarray:
    """(N,) entropy of the class probabilities averaged over `augmentations` random shifts (and, with `flip`,
    horizontal flips) of each image."""
    model = model.to(device).eval()
    generator = torch.Generator().manual_seed(seed)
    out = []
    # Shifts and flips move pixel values without changing them, so they commute with the per-channel normalisation.
    for x in training.normalised_batches(images, mean, std, batch_size):
        probs = torch.zeros(len(x), model.arch["n_outputs"])
        for _ in range(augmentations):
            probs += model(training.flip_and_shift(x, generator, flip=flip).to(device)).float().softmax(1).cpu()
        probs /= augmentations
        out.append(-(probs * probs.clamp_min(1e-12).log()).sum(1).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def most_certain(entropy: np.ndarray, coarse: np.ndarray, keep: float) -> np.ndarray:
    """Boolean mask: per coarse class, the `keep` share of its images with the lowest entropy (at least one)."""
    kept = np.zeros(len(entropy), dtype=bool)
    for label in np.unique(coarse):
        rows = np.flatnonzero(coarse == label)
        n = max(1, int(round(keep * len(rows))))
        kept[rows[np.argsort(entropy[rows], kind="stable")[:n]]] = True
    return kept


def cluster(features: np.ndarray, n_neighbors: int, n_components: int, min_cluster_size: int,
            seed: int, reduce: str = "umap") -> tuple[np.ndarray, np.ndarray | None, str]:
    """Cluster labels (-1 noise), the 2-D layout for the plot (None when skipped), and what happened: `clusters`, or the
    fallback taken (`too few images`, `all noise`, `one cluster`), where every image gets cluster 0. `reduce`: umap
    (HDBSCAN on the UMAP layout) or none (HDBSCAN on the features; the plot shows their first two principal
    components)."""
    if reduce not in REDUCERS:
        raise AuxcutError(f"discovery.reduce: expected one of {', '.join(REDUCERS)}, got {reduce!r}")
    n = len(features)
    if n <= max(n_neighbors, min_cluster_size, n_components + 1):
        return np.zeros(n, dtype=int), None, "too few images"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap says a seed turns off its parallelism: that is the point
        if reduce == "umap":
            os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "auxcut-numba"))
            import umap  # imported here: numba compiles it on first use, which only this stage should pay for

            clustered = umap.UMAP(n_neighbors=n_neighbors, n_components=n_components, min_dist=0.0,
                                  random_state=seed).fit_transform(features)
            layout = clustered
        else:
            clustered = features
            layout = PCA(n_components=2, random_state=seed).fit_transform(features)
        labels = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(clustered)
    found = int(labels.max()) + 1
    if found == 0:
        return np.zeros(n, dtype=int), layout, "all noise"
    if found == 1:
        return np.zeros(n, dtype=int), layout, "one cluster"
    return labels, layout, "clusters"


def discover(features: np.ndarray, coarse: np.ndarray, kept: np.ndarray, classes: list[str], n_neighbors: int,
             n_components: int, min_cluster_size: int, seed: int,
             reduce: str = "umap") -> tuple[np.ndarray, list[str], dict, dict]:
    """Fine labels for the rows (UNASSIGNED where not kept or noise), their names, per coarse class what happened,
    and the layouts (per coarse class: rows and 2-D coordinates, for the plots)."""
    fine = np.full(len(coarse), UNASSIGNED)
    names: list[str] = []
    outcome, layouts = {}, {}
    for label, name in enumerate(classes):
        rows = np.flatnonzero((coarse == label) & kept)
        if len(rows) == 0:
            outcome[name] = {"kept": 0, "fine_labels": 0, "noise": 0, "outcome": "no images"}
            continue
        labels, layout, what = cluster(features[rows], n_neighbors, n_components, min_cluster_size, seed, reduce)
        found = int(labels.max()) + 1
        fine[rows[labels >= 0]] = len(names) + labels[labels >= 0]
        names += [f"{name}/c{k}" for k in range(found)]
        outcome[name] = {"kept": int(len(rows)), "fine_labels": found, "noise": int((labels < 0).sum()), "outcome": what}
        if layout is not None:
            layouts[name] = (rows, layout[:, :2], labels, what)
    if not names:
        raise AuxcutError("discover: no coarse class has a kept train image; raise discovery.keep")
    return fine, names, outcome, layouts


def nearest_within(features: np.ndarray, member_features: np.ndarray, fine: np.ndarray, coarse: np.ndarray,
                   n_classes: int) -> np.ndarray:
    """(images, classes): for every image and coarse class, the fine label of that class whose centroid is nearest
    (Euclidean, in the base's feature space). `member_features`, `fine` and `coarse` are the clustered images."""
    found = int(fine.max()) + 1
    centroids = np.stack([member_features[fine == k].mean(0) for k in range(found)])
    owner = np.array([coarse[fine == k][0] for k in range(found)])
    missing = sorted(set(range(n_classes)) - set(owner.tolist()))
    if missing:
        raise AuxcutError(f"discover: coarse class(es) {missing} have no fine label; raise discovery.keep")
    # |x - c|^2 without the |x|^2 every centroid shares, and without an (images, fine labels, features) array
    distance = (centroids ** 2).sum(1)[None, :] - 2 * features @ centroids.T
    nearest = np.empty((len(features), n_classes), dtype=np.int64)
    for label in range(n_classes):
        own = np.flatnonzero(owner == label)
        nearest[:, label] = own[distance[:, own].argmin(1)]
    return nearest


def label_table(n_images: int, train: np.ndarray, fine: np.ndarray, names: list[str], kept: np.ndarray,
                entropy: np.ndarray, nearest: np.ndarray) -> pd.DataFrame:
    """data/fine_labels.csv, a row per image of every split: its fine label and the label's name (train images that
    were clustered; UNASSIGNED and "" elsewhere), whether it was among the most certain train images, its entropy over
    augmentations (train only), and per coarse class c the nearest fine label of c (nearest_in_<c>). `fine`, `kept`
    and `entropy` are over the train images, in `train` order."""
    labels = np.full(n_images, UNASSIGNED)
    labels[train] = fine
    return pd.DataFrame({
        "fine": labels, "fine_name": [names[k] if k >= 0 else "" for k in labels],
        "certain": np.isin(np.arange(n_images), train[kept]),
        "entropy": pd.Series(entropy, index=train).reindex(range(n_images)).to_numpy(),
        **{f"nearest_in_{c}": nearest[:, c] for c in range(nearest.shape[1])}})


def fixed_by_class(hidden: pd.DataFrame, coarse: np.ndarray) -> list[str]:
    """The attributes every coarse class has one value of (UTKFace's age when the age bucket is the class): the fine
    labels nest inside them, so agreeing with them says nothing of what was discovered."""
    return [c for c in hidden.columns if (hidden[c].groupby(coarse).nunique() <= 1).all()]


def fine_truth(fine: np.ndarray, truth: pd.Series, test_nearest: np.ndarray, test_truth: pd.Series) -> dict[str, dict]:
    """Where data.coarse merged known classes: ARI and NMI of the discovered fine labels against the original classes,
    on the clustered train images (`fine`, UNASSIGNED elsewhere) and on every test image, through its nearest fine
    label within its own coarse class (`test_nearest`): what the fine labels would call images never clustered."""
    assigned = fine != UNASSIGNED
    return {"clustered_train": {"images": int(assigned.sum()),
                                "ari": float(adjusted_rand_score(truth[assigned], fine[assigned])),
                                "nmi": float(normalized_mutual_info_score(truth[assigned], fine[assigned]))},
            "test": {"images": len(test_nearest), "ari": float(adjusted_rand_score(test_truth, test_nearest)),
                     "nmi": float(normalized_mutual_info_score(test_truth, test_nearest))}}


def agreement(fine: np.ndarray, hidden: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Adjusted Rand index and NMI of the assigned fine labels against each hidden attribute (and each pair of them,
    e.g. race x gender), on the images that have a fine label."""
    assigned = fine != UNASSIGNED
    columns = list(hidden.columns)
    targets = {c: hidden[c] for c in columns}
    for i, a in enumerate(columns):
        for b in columns[i + 1:]:
            targets[f"{a} x {b}"] = hidden[a].astype(str) + " / " + hidden[b].astype(str)
    return {name: {"ari": float(adjusted_rand_score(t[assigned], fine[assigned])),
                   "nmi": float(normalized_mutual_info_score(t[assigned], fine[assigned]))}
            for name, t in targets.items()}


def plot_layouts(layouts: dict, hidden: pd.Series | None, title: str):
    """One row per coarse class (at most 6): its UMAP layout coloured by discovered cluster, and by a hidden
    attribute when there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(layouts)[:6]
    cols = 2 if hidden is not None else 1
    fig, axes = plt.subplots(max(1, len(names)), cols, figsize=(4.2 * cols, 3.4 * max(1, len(names))), squeeze=False)
    for r, name in enumerate(names):
        rows, xy, labels, what = layouts[name]
        ax = axes[r, 0]
        noise = labels < 0
        ax.scatter(xy[noise, 0], xy[noise, 1], s=4, color="lightgrey", label="noise")
        ax.scatter(xy[~noise, 0], xy[~noise, 1], s=4, c=[plt.cm.tab10(k % 10) for k in labels[~noise]])
        found = int(labels.max()) + 1 if what == "clusters" else 0
        ax.set_title(f"{name}: {found} clusters (grey: noise)" if found else f"{name}: {what}, kept as one label",
                     fontsize=9)
        if hidden is not None:
            values = hidden.to_numpy()[rows]
            ax = axes[r, 1]
            for k, value in enumerate(sorted(set(values))):
                mask = values == value
                ax.scatter(xy[mask, 0], xy[mask, 1], s=4, label=str(value), color=plt.cm.tab10(k % 10))
            ax.set_title(f"{name}: by hidden {hidden.name}", fontsize=9)
            ax.legend(fontsize=7, markerscale=2, loc="best")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    return fig
