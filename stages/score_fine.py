"""score_fine: the fine-label nets against the base on the test split, coarse accuracy and per group, with paired
bootstrap intervals (its own stage, so that a change of the fairness params rescores without retraining the nets)."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from auxcut.data import prepared  # noqa: E402
from auxcut.method import fairness  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p = stage.params
    stage.log_params(seed=p.seed, fairness=p.fairness)
    ds = prepared.load(paths.PREPARED)
    test = ds.indices("test")
    y = ds.samples["label"].to_numpy()[test]
    groups = ds.samples.loc[test, ds.group_columns].reset_index(drop=True)
    base_pred = np.load(paths.BASE_PROBS)[test].argmax(1)
    rows = fairness.bootstrap_rows(len(test), p.fairness.bootstrap, p.seed)  # shared by every net: paired
    modes = {}
    with np.load(paths.FINE_PROBS) as saved:
        for mode in saved.files:
            pred = saved[mode][test].argmax(1)
            modes[mode] = {"test_accuracy": float((pred == y).mean()),
                           "minus_base": fairness.paired_difference(y, pred, base_pred, groups, rows, p.fairness.ci)}
    stage.write_metrics({"base_accuracy": float((base_pred == y).mean()), "ci": p.fairness.ci,
                         "bootstrap": p.fairness.bootstrap, "modes": modes})


if __name__ == "__main__":
    run_stage("score_fine", main)
