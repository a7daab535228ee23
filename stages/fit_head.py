"""fit_head: the head on the stacked set, and the same head on base outputs alone (the control), fit on val;
the final predictor (base + aux + stacked head) is logged to MLflow and registered as auxcut-<data source>."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import accuracy_score, log_loss  # noqa: E402

from auxcut.data import prepared  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.pipeline import predictor  # noqa: E402
from auxcut.method import stacking  # noqa: E402
from auxcut.method.hierarchy import ClassTree  # noqa: E402
from auxcut.core.io import atomic_path, read_json, save_npy  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p = stage.params
    stage.log_params(seed=p.seed, head=p.head)
    frame = pd.read_csv(paths.STACKED)
    n_classes = sum(c.startswith("base_") for c in frame.columns)
    val = (frame["split"] == "val").to_numpy()
    y = frame["target"].to_numpy()
    metrics = {"type": p.head.type, "aux_features": p.head.aux_features, "fit_on": "val", "val_rows": int(val.sum())}
    signs = ClassTree.from_json(read_json(paths.CUT), str(paths.CUT)).path_signs() if p.head.aux_features == "paths" else None
    for name, with_aux, model_path, probs_path in (("control", False, paths.CONTROL_HEAD, paths.CONTROL_PROBS),
                                                   ("stacked", True, paths.STACKED_HEAD, paths.STACKED_PROBS)):
        x = stacking.features(frame, with_aux)
        head = stacking.make_head(p.head.type, p.head.C, p.head.max_iter, p.seed,
                                  signs if with_aux else None).fit(x[val], y[val])
        probs = stacking.predict_all_classes(head, x, n_classes)
        with atomic_path(model_path) as tmp:
            joblib.dump(head, tmp)
        save_npy(probs_path, probs)
        stage.tracker.log_artifact(model_path, "model")
        metrics[name] = {"features": int(head[:-1].transform(x[:1]).shape[1]), "val_accuracy": float(accuracy_score(y[val], probs[val].argmax(1))),
                         "val_log_loss": float(log_loss(y[val], np.clip(probs[val], 1e-12, 1), labels=np.arange(n_classes)))}
    # The final predictor (base + aux + stacked head) as one servable MLflow model, registered per data set.
    ds = prepared.load(paths.PREPARED)
    example = np.asarray(ds.images[ds.indices("test")[:2]])
    stage.tracker.log_model(lambda: predictor.log_pyfunc(paths.BASE_MODEL, paths.AUX_MODEL, paths.STACKED_HEAD,
                                                         ds.classes, example, f"auxcut-{p.data.source}"))
    stage.write_metrics(metrics)


if __name__ == "__main__":
    run_stage("fit_head", main)
