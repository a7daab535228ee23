"""robustness: base, control and stacked head, and the missing-feature heads, on the test split and on each of its
occluded copies: accuracy and per-group accuracy with bootstrap intervals."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import joblib  # noqa: E402
import numpy as np  # noqa: E402

from auxcut.data import prepared  # noqa: E402
from auxcut.nets import training  # noqa: E402
from auxcut.method import fairness  # noqa: E402
from auxcut.variants import missing, occlusion, robustness  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.pipeline.predictor import MAX_BATCH, Predictor  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p = stage.params
    stage.log_params(seed=p.seed, fairness=p.fairness)
    ds = prepared.load(paths.PREPARED)
    saved = np.load(paths.OCCLUDED)
    test = saved["rows"]
    sets = {"none": None, **{name: saved[name] for name in saved.files if name != "rows"}}
    y = ds.samples["label"].to_numpy()[test]
    groups = ds.samples.loc[test, ds.group_columns].reset_index(drop=True)
    final = Predictor.from_files(paths.BASE_MODEL, paths.AUX_MODEL, paths.STACKED_HEAD, ds.classes)
    control = joblib.load(paths.CONTROL_HEAD)
    fc_heads = joblib.load(paths.MISSING_HEADS)
    [base], state = training.load_checkpoint(paths.BASE_MODEL)
    mean, std, device = np.asarray(state["mean"]), np.asarray(state["std"]), training.pick_device()
    images = np.asarray(ds.images[test])
    rows = fairness.bootstrap_rows(len(y), p.fairness.bootstrap, p.seed)  # shared by every set and predictor
    scored = {}
    for name, mask in sets.items():
        shown = images if mask is None else occlusion.occlude(images, mask)
        inputs = np.concatenate([final.head_inputs(shown[i:i + MAX_BATCH]) for i in range(0, len(shown), MAX_BATCH)])
        features = {kind: missing.features_of(base, kind, shown, mean, std, device)
                    for kind in {head.map for head in fc_heads.values()}}
        probs = robustness.predictions(inputs, features, len(ds.classes), control, final.head, fc_heads)
        scored[name] = robustness.score_set(y, probs, groups, rows, p.fairness.ci)
    stage.save_plot(paths.PLOTS / "robustness" / "accuracy.png", robustness.plot_accuracy(scored, p.fairness.ci))
    stage.write_metrics({
        "test_rows": len(test),
        "ci": p.fairness.ci,
        "bootstrap": p.fairness.bootstrap,
        "gap_convention": fairness.GAP_CONVENTION,
        "sets": scored,
        "aim": {kind: robustness.aim(scored, kind) for kind in fc_heads if kind != "present"},
        "published": {"accuracy": robustness.PUBLISHED_ACCURACY, "delta_over_base": robustness.PUBLISHED_DELTA},
    })


if __name__ == "__main__":
    run_stage("robustness", main)
