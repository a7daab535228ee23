"""The base model's validation confusion matrix, read as a weighted graph between classes -- the given classes, or
the fine labels `discover` found inside them (params `confusion.labels`)."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd

from auxcut import AuxcutError

# params `confusion.labels` names the file whose labels are the graph's nodes (dvc.yaml makes it a dep): this one, the
# given classes, or data/fine_labels.csv, the fine labels `discover` found inside them
GIVEN_CLASSES = "data/prepared/samples.csv"


@dataclass(frozen=True)
class GraphNodes:
    """The confusion graph's nodes: their names, every image's node, and (fine labels only) per image and given class
    the nearest fine label of that class, from discover's nearest_in_<class> columns."""

    names: list[str]
    labels: np.ndarray
    nearest: np.ndarray | None = None

    def probs(self, base_probs: np.ndarray) -> np.ndarray:
        """The base's probabilities over the nodes. The base cannot tell fine labels apart, so each class's
        probability goes to the image's nearest fine label of that class: a mistake lands in the nearest part of the
        class the base predicted, and summing a class's fine labels gives back the base's own confusion matrix."""
        if self.nearest is None:
            return base_probs
        if self.nearest.shape != base_probs.shape:
            raise AuxcutError(f"nearest fine labels for {self.nearest.shape[1]} classes and {len(self.nearest)} images, "
                              f"the base predicts {base_probs.shape[1]} classes for {len(base_probs)}; "
                              f"re-run `dvc repro discover`")
        probs = np.zeros((len(base_probs), len(self.names)))
        probs[np.arange(len(base_probs))[:, None], self.nearest] = base_probs  # a class's fine labels are its own
        return probs


def graph_nodes(labels_file: str, labels: np.ndarray, classes: list[str]) -> GraphNodes:
    """The graph's nodes (params confusion.labels): the given classes, or the discovered fine labels, where each image
    sits at the nearest fine label of its own class."""
    if labels_file == GIVEN_CLASSES:
        return GraphNodes(list(classes), labels)
    table = pd.read_csv(labels_file)
    columns = sorted((c for c in table.columns if c.startswith("nearest_in_")), key=lambda c: int(c.rsplit("_", 1)[1]))
    if len(table) != len(labels) or len(columns) != len(classes):
        raise AuxcutError(f"{labels_file}: expected {len(labels)} rows and nearest_in_<class> columns for "
                          f"{len(classes)} classes, got {len(table)} rows and {len(columns)} such columns; "
                          f"re-run `dvc repro discover`")
    nearest = table[columns].to_numpy()
    named = table[table["fine"] >= 0].drop_duplicates("fine").sort_values("fine")
    return GraphNodes(named["fine_name"].astype(str).tolist(), nearest[np.arange(len(labels)), labels], nearest)


def confusion_counts(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """C[i, j] = number of samples of class i predicted as class j (argmax of probs)."""
    # by counting (true, predicted) pairs in numpy: scikit-learn's confusion_matrix gives the same, but importing it
    # costs every stage that reads the graph (maxcut, relabel, train_aux, ...) seconds of start-up
    n_classes = probs.shape[1]
    pairs = np.asarray(y_true, dtype=np.int64) * n_classes + probs.argmax(1)
    return np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


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
