"""relabel: every sample gets the binary label of its class's side of the cut."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut import AuxcutError, data, paths  # noqa: E402
from auxcut.io import read_json, write_csv  # noqa: E402
from auxcut.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    samples = pd.read_csv(paths.PREPARED / "samples.csv", usecols=["label", "split"])
    cut = read_json(paths.CUT)
    sides = np.asarray(cut["sides"], dtype=np.int64)
    if samples["label"].max() >= len(sides):
        raise AuxcutError(f"{paths.CUT}: has {len(sides)} classes but the data has label {samples['label'].max()}")
    samples["aux_label"] = sides[samples["label"].to_numpy()]
    write_csv(paths.RELABELED, samples)
    share = samples.groupby("split")["aux_label"].mean()
    stage.write_metrics({
        "side_1_share": {s: float(share[s]) for s in data.SPLITS},
        "majority_rate": {s: float(max(share[s], 1 - share[s])) for s in data.SPLITS},
    })


if __name__ == "__main__":
    run_stage("relabel", main)
