"""Fine-label discovery without DVC: the certainty filter, UMAP + HDBSCAN inside coarse classes on real digits, the
fallbacks of degenerate classes, and the coarse-only UTKFace scheme."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from auxcut import AuxcutError
from auxcut.variants import discovery
from auxcut.data import faces, sources
from auxcut.nets.models import ConvNet
from conftest import DIGITS, digits_halves


def test_most_certain_keeps_the_lowest_entropy_share_of_each_class():
    entropy = np.array([0.9, 0.1, 0.5, 0.3, 0.2, 0.8, 0.7])
    coarse = np.array([0, 0, 0, 0, 1, 1, 1])
    kept = discovery.most_certain(entropy, coarse, 0.5)
    assert kept.tolist() == [False, True, False, True, True, False, True]  # 2 of 4 and round(1.5) = 2 of 3
    assert discovery.most_certain(entropy, coarse, 0.01).sum() == 2  # at least one per class


def test_entropy_over_augmentations_is_seeded_and_bounded():
    torch.manual_seed(0)
    net = ConvNet((1, 8, 8), 4, 4)
    images = np.random.default_rng(0).integers(0, 256, (12, 1, 8, 8), dtype=np.uint8)
    args = (np.array([0.5]), np.array([0.3]))
    a = discovery.augmented_entropy(net, images, *args, 3, False, 0, 5, torch.device("cpu"))
    assert a.shape == (12,) and (a >= 0).all() and (a <= np.log(4) + 1e-6).all()
    np.testing.assert_array_equal(a, discovery.augmented_entropy(net, images, *args, 3, False, 0, 5, torch.device("cpu")))
    assert not np.array_equal(a, discovery.augmented_entropy(net, images, *args, 3, True, 1, 5, torch.device("cpu")))


def test_discovers_the_digits_inside_two_coarse_classes():
    # Coarse labels: digits 0-4 and 5-9; the digits themselves are hidden, as race and gender are on UTKFace.
    x, y, _, _ = digits_halves()
    coarse = (y >= 5).astype(int)
    kept = np.ones(len(y), dtype=bool)
    fine, names, outcome, layouts = discovery.discover(x, coarse, kept, ["low", "high"], 15, 2, 15, 0)
    assert outcome["low"]["outcome"] == outcome["high"]["outcome"] == "clusters"
    assert len(names) == outcome["low"]["fine_labels"] + outcome["high"]["fine_labels"] >= 6
    assert names[0] == "low/c0" and all(n.startswith(("low/", "high/")) for n in names)
    assigned = fine != discovery.UNASSIGNED
    assert (coarse[assigned] == (fine[assigned] >= outcome["low"]["fine_labels"])).all()  # fine labels nest in coarse
    hidden = pd.DataFrame({"digit": y, "parity": y % 2, "half": coarse})
    assert discovery.fixed_by_class(hidden, coarse) == ["half"]  # the class fixes it: not hidden
    scores = discovery.agreement(fine, hidden[["digit", "parity"]])
    assert scores["digit"]["ari"] > 0.7 and scores["digit"]["nmi"] > 0.7  # the hidden digits, found
    assert scores["parity"]["ari"] < 0.3 and "digit x parity" in scores
    assert set(layouts) == {"low", "high"} and layouts["low"][1].shape[1] == 2 and layouts["low"][3] == "clusters"


def test_without_umap_hdbscan_clusters_the_features_themselves():
    # discovery.reduce none, the ablation: the clusters are HDBSCAN's on the features, the plot their first two
    # principal components; UMAP's clusters differ from them
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA

    x, y, _, _ = digits_halves()
    low = x[y < 5]
    labels, layout, what = discovery.cluster(low, 15, 2, 15, 0, reduce="none")
    direct = HDBSCAN(min_cluster_size=15, copy=True).fit_predict(low)
    assert what == "clusters" and layout.shape == (len(low), 2)
    np.testing.assert_array_equal(labels, direct)
    np.testing.assert_allclose(np.abs(layout), np.abs(PCA(n_components=2, random_state=0).fit_transform(low)), atol=1e-6)
    umap_labels, umap_layout, _ = discovery.cluster(low, 15, 2, 15, 0)
    assert not np.array_equal(umap_labels, labels) and not np.allclose(np.abs(umap_layout), np.abs(layout))
    with pytest.raises(AuxcutError, match="discovery.reduce: expected one of umap, none, got 'pca'"):
        discovery.cluster(low, 15, 2, 15, 0, reduce="pca")


def test_every_image_gets_the_nearest_fine_label_of_each_class():
    # fine labels = the digits, inside coarse classes 0-4 and 5-9; the held-out half is assigned by nearest centroid
    x_fit, y_fit, x_held, y_held = digits_halves()
    nearest = discovery.nearest_within(x_held, x_fit, y_fit, (y_fit >= 5).astype(int), 2)
    assert nearest.shape == (len(y_held), 2)
    assert set(nearest[:, 0]) <= set(range(5)) and set(nearest[:, 1]) <= set(range(5, 10))
    own = nearest[np.arange(len(y_held)), (y_held >= 5).astype(int)]
    assert (own == y_held).mean() > 0.85  # nearest centroid within the right half finds the hidden digit
    centroids = np.stack([x_fit[y_fit == d].mean(0) for d in range(10)])
    for row in range(0, len(y_held), 97):  # against the distances written out
        distance = ((centroids - x_held[row]) ** 2).sum(1)
        assert nearest[row, 0] == distance[:5].argmin() and nearest[row, 1] == 5 + distance[5:].argmin()
    with pytest.raises(AuxcutError, match=r"coarse class\(es\) \[2\] have no fine label; raise discovery.keep"):
        discovery.nearest_within(x_held, x_fit, y_fit, (y_fit >= 5).astype(int), 3)


def test_the_fine_label_file_has_a_row_per_image_and_fine_labels_on_train_only():
    train = np.array([1, 3, 4])  # of six images; fine labels, certainty and entropy are over these, in this order
    nearest = np.arange(12).reshape(6, 2)
    table = discovery.label_table(6, train, np.array([1, -1, 0]), ["a/c0", "a/c1"], np.array([True, False, True]),
                                  np.array([0.1, 0.9, 0.2]), nearest)
    assert list(table.columns) == ["fine", "fine_name", "certain", "entropy", "nearest_in_0", "nearest_in_1"]
    assert list(table["fine"]) == [-1, 1, -1, -1, 0, -1]
    assert list(table["fine_name"]) == ["", "a/c1", "", "", "a/c0", ""]
    assert list(table["certain"]) == [False, True, False, False, True, False]
    np.testing.assert_array_equal(table["entropy"], [np.nan, 0.1, np.nan, 0.9, 0.2, np.nan])
    np.testing.assert_array_equal(table[["nearest_in_0", "nearest_in_1"]], nearest)


def test_degenerate_classes_fall_back_to_one_fine_label():
    rng = np.random.default_rng(0)
    features = np.vstack([rng.normal(size=(8, 5)), rng.normal(size=(300, 5))])
    coarse = np.array([0] * 8 + [1] * 300)
    fine, names, outcome, _ = discovery.discover(features, coarse, np.ones(len(coarse), bool), ["tiny", "blob"],
                                                 15, 2, 10, 0)
    assert outcome["tiny"]["outcome"] == "too few images" and names[0] == "tiny/c0" and (fine[:8] == 0).all()
    labels, _, what = discovery.cluster(rng.normal(size=(300, 5)), 15, 2, 290, 0)
    assert what in ("all noise", "one cluster") and (labels == 0).all()  # no cluster that big: one label, no error


def test_utkface_age_scheme_is_the_three_buckets():
    assert faces.class_names("age") == list(faces.AGE_BUCKETS)
    assert [faces.class_index(faces.FaceLabels(age, 0, 3), "age") for age in (25, 26, 45, 46)] == [0, 1, 1, 2]


def test_discovery_on_merged_digits_is_scored_against_the_hidden_digits():
    ds = sources.prepare("digits", DIGITS, "age_race", None, 8, {"train": 0.6, "val": 0.2, "test": 0.2},
                         seed=0, coarse_groups=[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])  # data.coarse
    features = ds.images.reshape(len(ds.images), -1) / 255.0  # the pixels stand in for a base's features
    label, truth = ds.samples["label"].to_numpy(), ds.samples[f"group_{ds.fine_attribute}"]
    train, test = ds.indices("train"), ds.indices("test")
    kept = np.ones(len(train), dtype=bool)
    fine, names, outcome, _ = discovery.discover(features[train], label[train], kept, ds.classes, 15, 2, 10, 0)
    clustered = fine != discovery.UNASSIGNED
    nearest = discovery.nearest_within(features, features[train][clustered], fine[clustered], label[train][clustered],
                                       len(ds.classes))
    own = nearest[test, label[test]]
    scores = discovery.fine_truth(fine, truth.iloc[train].reset_index(drop=True), own,
                                  truth.iloc[test].reset_index(drop=True))
    assert scores["clustered_train"]["images"] == clustered.sum() and scores["test"]["images"] == len(test)
    assert scores["clustered_train"]["ari"] > 0.7 and scores["clustered_train"]["nmi"] > 0.7
    assert scores["test"]["ari"] > 0.6  # the test digits, named by the nearest fine label of their half
    shuffled = discovery.fine_truth(fine, truth.iloc[train].sample(frac=1, random_state=0).reset_index(drop=True),
                                    own, truth.iloc[test].sample(frac=1, random_state=0).reset_index(drop=True))
    assert abs(shuffled["clustered_train"]["ari"]) < 0.05 and abs(shuffled["test"]["ari"]) < 0.05
