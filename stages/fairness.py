"""fairness: base argmax, control head and stacked head on the same held-out test split."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut.method import confusion, fairness  # noqa: E402
from auxcut.data import prepared  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p = stage.params
    stage.log_params(seed=p.seed, fairness=p.fairness)
    frame = pd.read_csv(paths.STACKED)
    test = (frame["split"] == "test").to_numpy()
    y = frame["target"].to_numpy()[test]
    groups = frame.loc[test, [c for c in frame.columns if c.startswith("group_")]].reset_index(drop=True)
    probs = {"base": frame[[c for c in frame.columns if c.startswith("base_")]].to_numpy()[test],
             "control": np.load(paths.CONTROL_PROBS)[test], "stacked": np.load(paths.STACKED_PROBS)[test]}
    preds = {name: pr.argmax(1) for name, pr in probs.items()}
    rows = fairness.bootstrap_rows(len(y), p.fairness.bootstrap, p.seed)  # shared by all: comparisons are paired
    reports = {name: fairness.predictor_report(y, pred, groups, rows, p.fairness.ci) for name, pred in preds.items()}
    differences = {f"{a}_minus_{b}": fairness.paired_difference(y, preds[a], preds[b], groups, rows, p.fairness.ci)
                   for a, b in (("control", "base"), ("stacked", "control"), ("stacked", "base"))}
    classes = prepared.load(paths.PREPARED).classes
    for name in ("base", "stacked"):
        counts = confusion.confusion_counts(y, probs[name])
        stage.save_plot(paths.PLOTS / "fairness" / f"confusion_{name}_test.png",
                        confusion.plot_confusion(counts, classes, f"{name}, test split"))
    for attribute in reports["base"]["groups"]:
        stage.save_plot(paths.PLOTS / "fairness" / f"accuracy_by_{attribute}.png", fairness.plot_group_accuracy(
            reports, attribute, f"test accuracy by {attribute} ({int(p.fairness.ci * 100)}% bootstrap intervals)"))
    stage.write_metrics({
        "test_rows": int(test.sum()),
        "head": p.head.type,
        "gap_convention": fairness.GAP_CONVENTION,
        "ci": p.fairness.ci,
        "bootstrap": p.fairness.bootstrap,
        "predictors": reports,
        "differences": differences,
    })


if __name__ == "__main__":
    run_stage("fairness", main)
