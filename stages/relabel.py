"""relabel: every sample gets the binary label of its class's (or fine label's) side of the cut (of each cut, for a tree of cuts:
node_<k> is the side at node k, -1 where the sample's class is not under that node)."""

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
from auxcut.method.hierarchy import ClassTree  # noqa: E402
from auxcut.core.io import read_json, write_csv  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def side_shares(labels: pd.Series, split: pd.Series) -> dict:
    """Per split, the share of side 1 and of the majority side among the images the node splits."""
    share = labels[labels >= 0].groupby(split[labels >= 0]).mean()
    return {"side_1_share": {s: float(share.get(s, np.nan)) for s in prepared.SPLITS},
            "majority_rate": {s: float(max(share.get(s, np.nan), 1 - share.get(s, np.nan))) for s in prepared.SPLITS}}


def main(stage: Stage) -> None:
    ds = prepared.load(paths.PREPARED)
    samples = ds.samples[["label", "split"]].copy()
    tree = ClassTree.from_json(read_json(paths.CUT), str(paths.CUT))
    source = stage.params.confusion.labels
    graph = confusion.graph_nodes(source, samples["label"].to_numpy(), ds.classes)
    if graph.names != tree.names:
        raise AuxcutError(f"{paths.CUT}: its {len(tree.names)} classes are not the {len(graph.names)} nodes of {source} "
                          f"(confusion.labels); re-run `dvc repro maxcut`")
    columns = [f"node_{k}" for k in range(len(tree.nodes))]
    samples[columns] = tree.node_labels(graph.labels)
    write_csv(paths.RELABELED, samples)
    nodes = [{"node": k, "images": {s: int(((samples[c] >= 0) & (samples["split"] == s)).sum()) for s in prepared.SPLITS},
              **side_shares(samples[c], samples["split"])} for k, c in enumerate(columns)]
    # the root's shares at the top level, as in the one-cut method
    stage.write_metrics({**{k: v for k, v in nodes[0].items() if k not in ("node", "images")}, "nodes": nodes})


if __name__ == "__main__":
    run_stage("relabel", main)
