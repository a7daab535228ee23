"""train_missing: fresh fully connected heads on the frozen base backbone, trained on its bounded features as they
are (present), on the features the image lacks (missing), or on both; the features are its pooled embedding or its
last conv map (missing.map)."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import joblib  # noqa: E402
import numpy as np  # noqa: E402

from auxcut.data import prepared  # noqa: E402
from auxcut.nets import backbones, training  # noqa: E402
from auxcut.variants import missing  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.core.io import atomic_path  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.missing
    stage.log_params(seed=p.seed, missing=cfg)
    ds = prepared.load(paths.PREPARED)
    labels = ds.samples["label"].to_numpy()
    [base], state = training.load_checkpoint(paths.BASE_MODEL)
    mean, std = np.asarray(state["mean"]), np.asarray(state["std"])
    features = missing.features_of(base, cfg.map, ds.images, mean, std, training.pick_device())
    train, val, test = (ds.indices(s) for s in prepared.SPLITS)
    base_probs = np.load(paths.BASE_PROBS)
    heads, metrics = {}, {"features": int(features.shape[1]), "cap_quantile": cfg.cap_quantile, "heads": {},
                          "base_accuracy": {s: float((base_probs[r].argmax(1) == labels[r]).mean())
                                            for s, r in (("val", val), ("test", test))}}
    spatial = cfg.map == "spatial"
    if spatial:  # (the pooled heads' metrics stay as they were before missing.map existed)
        activation = backbones.last_map(base)[1]
        metrics.update(map=cfg.map, activation=activation)
    for kind in cfg.features:
        if spatial:
            head = missing.SpatialMissingHead(kind, activation, len(ds.classes), cfg.hidden, cfg.lr, cfg.momentum,
                                              cfg.alpha, cfg.max_iter, cfg.batch_size, cfg.cap_quantile, p.seed
                                              ).fit(features[train], labels[train], features[val], labels[val])
        else:
            head = missing.MissingFeatureHead(kind, len(ds.classes), cfg.hidden, cfg.alpha, cfg.max_iter,
                                              cfg.cap_quantile, p.seed).fit(features[train], labels[train])
        heads[kind] = head
        metrics["heads"][kind] = {
            "parameters": head.n_parameters, "iterations": head.iterations,
            **{f"{s}_accuracy": float((head.predict_proba(features[r]).argmax(1) == labels[r]).mean())
               for s, r in (("val", val), ("test", test))}}
        if spatial:
            metrics["heads"][kind].update(best_epoch=head.best_epoch, history=head.history)
    with atomic_path(paths.MISSING_HEADS) as tmp:
        joblib.dump(heads, tmp)
    stage.tracker.log_artifact(paths.MISSING_HEADS, "model")
    stage.write_metrics(metrics)


if __name__ == "__main__":
    run_stage("train_missing", main)
