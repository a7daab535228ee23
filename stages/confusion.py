"""confusion: the base model's confusion matrix on val, the graph the max-cut will split (over the given classes,
or over the fine labels `discover` found inside them: params confusion.labels)."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut import AuxcutError  # noqa: E402
from auxcut.method import confusion  # noqa: E402
from auxcut.data import prepared  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.core.io import write_csv  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    ds = prepared.load(paths.PREPARED)
    source = stage.params.confusion.labels
    nodes = confusion.graph_nodes(source, ds.samples["label"].to_numpy(), ds.classes)
    names, labels, probs = nodes.names, nodes.labels, nodes.probs(np.load(paths.BASE_PROBS))
    val = ds.indices("val")
    present = np.bincount(labels[val], minlength=len(names))
    if (present == 0).any():
        missing = [names[k] for k in np.flatnonzero(present == 0)]
        hint = "" if source == confusion.GIVEN_CLASSES else " (raise discovery.min_cluster_size for fewer, larger ones)"
        raise AuxcutError(f"{source}: {missing} have no validation samples; the confusion graph needs every node{hint}")
    counts = confusion.confusion_counts(labels[val], probs[val])
    write_csv(paths.CONFUSION, pd.DataFrame(counts, index=names, columns=names).rename_axis("true").reset_index())
    weights = confusion.confusion_weights(counts)
    upper = np.triu(weights, 1)
    order = np.argsort(upper, axis=None)[::-1][:5]
    pairs = [{"classes": [names[i], names[j]], "weight": float(upper[i, j])}
             for i, j in zip(*np.unravel_index(order, upper.shape)) if upper[i, j] > 0]
    stage.save_plot(paths.PLOTS / "confusion" / "base_val.png",
                    confusion.plot_confusion(counts, names, "base model, validation split"))
    stage.write_metrics({
        "nodes": "classes" if source == confusion.GIVEN_CLASSES else "fine labels",
        "n_nodes": len(names),
        "val_accuracy": float(np.trace(counts) / counts.sum()),
        "val_samples": int(counts.sum()),
        "confused_pairs": int(np.count_nonzero(upper)),
        "off_diagonal_weight": float(upper.sum()),
        "most_confused": pairs,
    })


if __name__ == "__main__":
    run_stage("confusion", main)
