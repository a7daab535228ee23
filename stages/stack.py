"""stack: the new data set, base class probabilities + aux probabilities -> original class (with aux.mode head,
the class probabilities of the net that carries the cut heads)."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from auxcut.data import prepared  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.method import stacking  # noqa: E402
from auxcut.core.io import write_csv  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    ds = prepared.load(paths.PREPARED)
    frame = stacking.stack(np.load(paths.CLASS_PROBS), np.load(paths.AUX_PROBS), ds.samples)
    write_csv(paths.STACKED, frame)
    base = stacking.features(frame, with_aux=False)
    stage.write_metrics({
        "rows": {s: int((frame["split"] == s).sum()) for s in prepared.SPLITS},
        "features": int(stacking.features(frame, with_aux=True).shape[1]),
        "aux_columns": int(stacking.features(frame, with_aux=True).shape[1] - base.shape[1]),
        "max_probability_sum_error": float(np.abs(base.sum(1) - 1).max()),
    })


if __name__ == "__main__":
    run_stage("stack", main)
