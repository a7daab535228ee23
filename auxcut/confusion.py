"""The base model's validation confusion matrix, read as a weighted graph between classes."""

from __future__ import annotations

import networkx as nx
import numpy as np
from sklearn.metrics import confusion_matrix


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
