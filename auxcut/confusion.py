"""The base model's validation confusion matrix, read as a weighted graph between classes -- the given classes, or
the fine labels `discover` found inside them (params `confusion.labels`)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from auxcut import AuxcutError

# params `confusion.labels` names the file whose labels are the graph's nodes (dvc.yaml makes it a dep): this one, the
# given classes, or data/fine_labels.csv, the fine labels `discover` found inside them
GIVEN_CLASSES = "data/prepared/samples.csv"


def _nearest_fine(labels_file: str, n_images: int) -> tuple[np.ndarray, list[str]]:
    """Per image and coarse class, the nearest fine label of that class (discover's nearest_in_<class> columns), and
    the fine labels' names."""
    table = pd.read_csv(labels_file)
    columns = sorted((c for c in table.columns if c.startswith("nearest_in_")), key=lambda c: int(c.rsplit("_", 1)[1]))
    if len(table) != n_images or not columns:
        raise AuxcutError(f"{labels_file}: expected {n_images} rows with nearest_in_<class> columns, got {len(table)} "
                          f"rows and {len(columns)} such columns; re-run `dvc repro discover`")
    named = table[table["fine"] >= 0].drop_duplicates("fine").sort_values("fine")
    return table[columns].to_numpy(), named["fine_name"].astype(str).tolist()


def graph_nodes(labels_file: str, labels: np.ndarray, classes: list[str]) -> tuple[list[str], np.ndarray]:
    """The graph's nodes and every image's node: the given classes, or the discovered fine labels, where each image
    sits at the nearest fine label of its class."""
    if labels_file == GIVEN_CLASSES:
        return list(classes), labels
    nearest, names = _nearest_fine(labels_file, len(labels))
    return names, nearest[np.arange(len(labels)), labels]


def node_probs(labels_file: str, base_probs: np.ndarray) -> np.ndarray:
    """The base's probabilities over the graph's nodes. The base cannot tell fine labels apart, so each class's
    probability goes to the image's nearest fine label of that class: a mistake lands in the nearest part of the
    class the base predicted, and summing a class's fine labels gives back the base's own confusion matrix."""
    if labels_file == GIVEN_CLASSES:
        return base_probs
    nearest, names = _nearest_fine(labels_file, len(base_probs))
    if nearest.shape[1] != base_probs.shape[1]:
        raise AuxcutError(f"{labels_file}: nearest fine labels for {nearest.shape[1]} classes, the base predicts "
                          f"{base_probs.shape[1]}; re-run `dvc repro discover`")
    probs = np.zeros((len(base_probs), len(names)))
    probs[np.arange(len(base_probs))[:, None], nearest] = base_probs  # a class's fine labels are its own: no clash
    return probs


def confusion_counts(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """C[i, j] = number of samples of class i predicted as class j (argmax of probs)."""
    n_classes = probs.shape[1]
    return confusion_matrix(y_true, probs.argmax(1), labels=np.arange(n_classes))


def confusion_weights(counts: np.ndarray) -> np.ndarray:
    """Symmetric edge weights W = C + C^T with the diagonal (correct predictions) ignored."""
    weights = (counts + counts.T).astype(np.float64)
    np.fill_diagonal(weights, 0.0)
    return weights


def confusion_graph(counts: np.ndarray, names: list[str]) -> nx.Graph:
    """Classes as nodes, an edge wherever two classes are confused, weighted by C[i,j] + C[j,i]."""
    weights = confusion_weights(counts)
    graph = nx.Graph()
    graph.add_nodes_from((i, {"name": name}) for i, name in enumerate(names))
    rows, cols = np.nonzero(np.triu(weights, 1))
    graph.add_weighted_edges_from((int(i), int(j), float(weights[i, j])) for i, j in zip(rows, cols))
    return graph


def plot_confusion(counts: np.ndarray, names: list[str], title: str):
    """Row-normalised heatmap with the raw counts written in the cells (for small class counts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=90, fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    return fig
