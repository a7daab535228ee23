"""discover: fine labels inside each coarse class, from the base's features of its most certain train images
(entropy over augmentations), reduced with UMAP and clustered with HDBSCAN; scored against the hidden groups. Every
image also gets the nearest fine label of each class, which the confusion graph uses when it is over fine labels."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from auxcut.data import prepared  # noqa: E402
from auxcut.variants import discovery  # noqa: E402
from auxcut.nets import embedding, training  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.core.io import write_csv  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.discovery
    stage.log_params(seed=p.seed, discovery=cfg, base_augment=p.base.augment)
    ds = prepared.load(paths.PREPARED)
    train = ds.indices("train")
    coarse = ds.samples["label"].to_numpy()[train]
    [base], state = training.load_checkpoint(paths.BASE_MODEL)
    mean, std, device = np.asarray(state["mean"]), np.asarray(state["std"]), training.pick_device()
    entropy = discovery.augmented_entropy(base, np.asarray(ds.images[train]), mean, std, cfg.augmentations,
                                          p.base.augment, p.seed, 256, device)
    kept = discovery.most_certain(entropy, coarse, cfg.keep)
    features = embedding.embed(base, np.asarray(ds.images), mean, std, batch_size=256, device=device)  # every split
    fine, names, outcome, layouts = discovery.discover(features[train], coarse, kept, ds.classes, cfg.n_neighbors,
                                                       cfg.n_components, cfg.min_cluster_size, p.seed,
                                                       cfg.reduce)
    clustered = fine != discovery.UNASSIGNED
    nearest = discovery.nearest_within(features, features[train][clustered], fine[clustered], coarse[clustered],
                                       len(ds.classes))
    write_csv(paths.FINE_LABELS, discovery.label_table(len(ds.samples), train, fine, names, kept, entropy, nearest))
    hidden = ds.samples.loc[train, ds.group_columns].rename(columns=lambda c: c.removeprefix("group_")).reset_index(drop=True)
    colour = "race" if "race" in hidden.columns else hidden.columns[0] if len(hidden.columns) else None
    stage.save_plot(paths.PLOTS / "discovery" / "umap.png", discovery.plot_layouts(
        layouts, None if colour is None else hidden[colour], "discovered clusters of the most certain train images"))
    metrics = {
        "fine_labels": len(names), "names": names, "coarse_classes": len(ds.classes),
        "train_images": len(train), "kept": int(kept.sum()), "assigned": int(clustered.sum()),
        "assigned_share": float(clustered.mean()), "by_coarse_class": outcome,
        "agreement": discovery.agreement(fine, hidden) if len(hidden.columns) else {},
        "class_attributes": discovery.fixed_by_class(hidden, coarse),
    }
    if ds.fine_attribute is not None:  # data.coarse merged known classes: they are the fine labels to find
        test = ds.indices("test")
        truth = ds.samples[f"group_{ds.fine_attribute}"].astype(str)
        own = nearest[test, ds.samples["label"].to_numpy()[test]]
        metrics["fine_truth"] = {"attribute": ds.fine_attribute, **discovery.fine_truth(
            fine, truth.iloc[train].reset_index(drop=True), own, truth.iloc[test].reset_index(drop=True))}
    stage.write_metrics(metrics)


if __name__ == "__main__":
    run_stage("discover", main)
