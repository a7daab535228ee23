"""Tests for auxcut.method.confusion on scikit-learn's digits and on hand-made counts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix

from conftest import digits_halves
from auxcut.method.confusion import confusion_counts, confusion_graph, confusion_weights, plot_confusion


@pytest.fixture(scope="module")
def digits_probs():
    """Validation probabilities of a deliberately weak digits classifier (so there are confusions)."""
    x_fit, y_fit, x_held, y_held = digits_halves()
    model = LogisticRegression(C=0.01, max_iter=500).fit(x_fit, y_fit)
    return y_held, model.predict_proba(x_held)


def manual_counts(y_true, y_pred, k):
    counts = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        counts[t, p] += 1
    return counts


def test_confusion_counts_on_digits(digits_probs):
    y_true, probs = digits_probs
    counts = confusion_counts(y_true, probs)
    y_pred = probs.argmax(1)
    assert counts.shape == (10, 10)
    np.testing.assert_array_equal(counts, confusion_matrix(y_true, y_pred, labels=np.arange(10)))
    np.testing.assert_array_equal(counts, manual_counts(y_true, y_pred, 10))
    assert counts.sum() == len(y_true)
    assert np.trace(counts) == (y_pred == y_true).sum()
    assert (counts - np.diag(np.diag(counts))).sum() > 0  # the weak model does confuse classes


def test_confusion_counts_keeps_absent_classes():
    # 5 classes in the probabilities, but class 4 never occurs and is never predicted, class 3 only predicted
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 3, size=60)
    probs = rng.random((60, 5))
    probs[:, 4] = 0.0
    probs /= probs.sum(1, keepdims=True)
    counts = confusion_counts(y_true, probs)
    assert counts.shape == (5, 5)
    np.testing.assert_array_equal(counts, manual_counts(y_true, probs.argmax(1), 5))
    assert counts[4].sum() == 0 and counts[:, 4].sum() == 0
    assert counts[3].sum() == 0


def test_confusion_counts_hand_example():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    probs = np.array(
        [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.0, 0.3, 0.7], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]]
    )
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_array_equal(confusion_counts(y_true, probs), expected)


def test_confusion_weights_properties():
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 20, size=(7, 7))
    before = counts.copy()
    weights = confusion_weights(counts)
    assert weights.shape == (7, 7)
    assert weights.dtype == np.float64
    np.testing.assert_array_equal(weights, weights.T)
    np.testing.assert_array_equal(np.diag(weights), 0)
    for i in range(7):
        for j in range(7):
            if i != j:
                assert weights[i, j] == counts[i, j] + counts[j, i]
    np.testing.assert_array_equal(counts, before)


def test_confusion_weights_hand_example():
    counts = np.array([[5, 2, 0], [1, 7, 3], [0, 0, 4]])
    expected = np.array([[0.0, 3.0, 0.0], [3.0, 0.0, 3.0], [0.0, 3.0, 0.0]])
    np.testing.assert_array_equal(confusion_weights(counts), expected)


def test_confusion_graph_matches_weights():
    rng = np.random.default_rng(3)
    k = 8
    counts = rng.integers(0, 4, size=(k, k)) * (rng.random((k, k)) < 0.3)
    counts[5, :] = 0
    counts[:, 5] = 0  # class 5 is never confused: an isolated node
    counts[np.diag_indices(k)] = 50
    names = [f"class_{i}" for i in range(k)]
    graph = confusion_graph(counts, names)
    assert isinstance(graph, nx.Graph) and not graph.is_directed()
    assert graph.number_of_nodes() == k
    assert sorted(graph.nodes) == list(range(k))
    assert {i: graph.nodes[i]["name"] for i in graph.nodes} == dict(enumerate(names))
    expected = {
        (i, j): float(counts[i, j] + counts[j, i])
        for i in range(k)
        for j in range(i + 1, k)
        if counts[i, j] + counts[j, i] > 0
    }
    got = {(min(i, j), max(i, j)): d["weight"] for i, j, d in graph.edges(data=True)}
    assert got == expected
    assert graph.degree(5) == 0
    assert not any(graph.has_edge(i, i) for i in range(k))


def test_confusion_graph_on_digits(digits_probs):
    y_true, probs = digits_probs
    counts = confusion_counts(y_true, probs)
    graph = confusion_graph(counts, [str(d) for d in range(10)])
    np.testing.assert_array_equal(nx.to_numpy_array(graph, nodelist=range(10)), confusion_weights(counts))


@pytest.mark.parametrize("k", [4, 35])
def test_plot_confusion_returns_figure(k):
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 10, size=(k, k))
    counts[0] = 0  # a class with no samples must not divide by zero
    fig = plot_confusion(counts, [f"c{i}" for i in range(k)], "title here")
    try:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert ax.get_title() == "title here"
        image = ax.get_images()[0].get_array()
        assert np.isfinite(image).all()
        np.testing.assert_allclose(np.asarray(image)[1:].sum(1), 1.0)
        # counts are written into non-zero cells only for small class counts
        texts = [t for t in ax.texts]
        assert len(texts) == (np.count_nonzero(counts) if k <= 30 else 0)
    finally:
        plt.close(fig)


# --- the graph over discovered fine labels (params confusion.labels: data/fine_labels.csv) ---------------------------


def fine_labels_file(tmp_path, coarse: np.ndarray, nearest: np.ndarray, names: list[str]):
    """A data/fine_labels.csv as `discover` writes it: the clustered images name their fine label."""
    import pandas as pd

    fine = nearest[np.arange(len(coarse)), coarse].copy()
    fine[::3] = -1  # noise and uncertain images have no fine label of their own, but still a nearest one
    table = pd.DataFrame({"fine": fine, "fine_name": [names[k] if k >= 0 else "" for k in fine]})
    for c in range(nearest.shape[1]):
        table[f"nearest_in_{c}"] = nearest[:, c]
    path = tmp_path / "fine_labels.csv"
    table.to_csv(path, index=False)
    return str(path)


def test_the_fine_label_graph_refines_the_base_confusion(tmp_path, digits_probs):
    from auxcut.method.confusion import graph_nodes

    y_true, probs = digits_probs
    # two fine labels per digit (2c, 2c+1), each image's nearest one drawn at random within every class
    rng = np.random.default_rng(0)
    nearest = 2 * np.arange(10)[None, :] + rng.integers(0, 2, size=(len(y_true), 10))
    names = [f"{c}/c{k}" for c in range(10) for k in range(2)]
    path = fine_labels_file(tmp_path, y_true, nearest, names)
    nodes = graph_nodes(path, y_true, [str(c) for c in range(10)])
    fine = nodes.labels
    assert nodes.names == names
    np.testing.assert_array_equal(fine, nearest[np.arange(len(y_true)), y_true])
    assert (fine // 2 == y_true).all()  # every image sits in a fine label of its own class
    fine_probs = nodes.probs(probs)
    assert fine_probs.shape == (len(y_true), 20)
    np.testing.assert_allclose(fine_probs.sum(1), 1.0)
    counts = confusion_counts(fine, fine_probs)
    # summing each class's fine labels gives back the base's own confusion matrix
    coarse = counts.reshape(10, 2, 10, 2).sum(axis=(1, 3))
    np.testing.assert_array_equal(coarse, confusion_counts(y_true, probs))
    # the base cannot tell a class's fine labels apart: no weight between them
    for c in range(10):
        assert counts[2 * c, 2 * c + 1] == 0 and counts[2 * c + 1, 2 * c] == 0
    # the given classes are the labels and probabilities as they are
    given = graph_nodes("data/prepared/samples.csv", y_true, [str(c) for c in range(10)])
    assert given.names == [str(c) for c in range(10)] and given.labels is y_true and given.probs(probs) is probs


def test_a_stale_fine_label_file_is_one_line(tmp_path):
    from auxcut import AuxcutError
    from auxcut.method.confusion import graph_nodes

    coarse = np.array([0, 1, 0, 1])
    path = fine_labels_file(tmp_path, coarse, np.array([[0, 1]] * 4), ["0/c0", "1/c0"])
    with pytest.raises(AuxcutError, match=r"fine_labels.csv: expected 5 rows .* got 4 rows.*dvc repro discover"):
        graph_nodes(path, np.array([0, 1, 0, 1, 0]), ["0", "1"])
    with pytest.raises(AuxcutError, match=r"columns for 3 classes, got 4 rows and 2 such columns"):
        graph_nodes(path, coarse, ["0", "1", "2"])
    with pytest.raises(AuxcutError, match=r"for 2 classes and 4 images, the base predicts 3 classes for 4"):
        graph_nodes(path, coarse, ["0", "1"]).probs(np.full((4, 3), 1 / 3))
