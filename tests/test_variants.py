"""The aux variants of issue 10 end to end on digits, as params-selected variants of the one DVC pipeline: a tree of
cuts with an aux per cut and a path head, and the other objectives and views. Each test changes params.yaml in the
shared pipeline copy, checks what ran and what came out, and puts the params back (DVC's run-cache restores the rest)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import cached_stages, ran_stages, repro, run, set_params

# a new tree changes the cut labels, which the attribute heads and the early exits read too, and new auxes and heads,
# which robustness scores under occlusion
AFTER_MAXCUT = ["maxcut", "relabel", "train_aux", "stack", "fit_head", "fairness", "train_attributes", "train_exits",
                "robustness"]


def metrics(repo: Path, stage: str) -> dict:
    return json.loads((repo / "metrics" / f"{stage}.json").read_text())


@pytest.fixture
def variant(pipeline):
    """The pipeline copy, with params.yaml and every output put back after the test."""
    repo, env, _ = pipeline
    original = (repo / "params.yaml").read_text()
    yield repo, env
    (repo / "params.yaml").write_text(original)
    restored = repro(repo, env)
    assert ran_stages(restored) == [], restored


def test_depth_two_tree_with_residual_auxes_and_a_path_head(variant):
    repo, env = variant
    set_params(repo, maxcut__depth=2, aux__width=4, aux__objective="residual", aux__strength=2.0, aux__view="low",
               head__aux_features="paths")
    output = repro(repo, env)
    assert ran_stages(output) == AFTER_MAXCUT
    tree = json.loads((repo / "data" / "cut.json").read_text())
    nodes = tree["nodes"]
    assert tree["format"] == "auxcut class tree 1" and tree["depth"] == 2 and 2 <= len(nodes) <= 3
    root = nodes[0]
    assert root["classes"] == list(range(10)) and root["sides"] == tree["sides"]
    for node in nodes[1:]:  # each child splits one side of the root, on its own
        assert node["parent"] == 0 and node["classes"] == [c for c, s in zip(root["classes"], root["sides"])
                                                            if s == node["branch"]]
        assert node["cut"]["cut"] <= node["cut"]["upper_bound"] + 1e-9
    # every image gets its side at each cut, -1 under the cuts its class is not in
    relabeled = pd.read_csv(repo / "data" / "relabeled.csv")
    for k, node in enumerate(nodes):
        under = relabeled["label"].isin(node["classes"])
        assert (relabeled.loc[~under, f"node_{k}"] == -1).all()
        sides = dict(zip(node["classes"], node["sides"]))
        assert (relabeled.loc[under, f"node_{k}"] == relabeled.loc[under, "label"].map(sides)).all()
    aux_probs = np.load(repo / "data" / "predictions" / "aux.npy")
    assert aux_probs.shape == (1797, len(nodes)) and ((aux_probs >= 0) & (aux_probs <= 1)).all()
    stacked = pd.read_csv(repo / "data" / "stacked.csv")
    assert [c for c in stacked.columns if c.startswith("aux_")] == [f"aux_{k}" for k in range(len(nodes))]
    aux = metrics(repo, "train_aux")
    assert (aux["auxes"], aux["objective"], aux["view"]) == (len(nodes), "residual", "low")
    assert aux["base_over_aux_parameters"] >= 10  # all the auxes together
    assert aux["parameters"] == sum(node["parameters"] for node in aux["nodes"])
    assert [node["node"] for node in aux["nodes"]] == list(range(len(nodes)))
    assert 0 <= aux["base_agreement"]["aux_side_accuracy"] <= 1
    # the path head sees one path log-probability per class instead of the node probabilities
    head = metrics(repo, "fit_head")
    assert head["aux_features"] == "paths" and head["stacked"]["features"] == head["control"]["features"] + 10
    cut = metrics(repo, "maxcut")
    assert cut["depth"] == 2 and sorted(c for leaf in cut["leaves"] for c in leaf) == [str(d) for d in range(10)]
    assert (repo / "plots" / "maxcut" / "tree.png").stat().st_size > 0
    # the final predictor chains the base, every aux (on its view) and the path head exactly as the pipeline did
    from auxcut.data import prepared
    from auxcut.core import paths
    from auxcut.pipeline.predictor import Predictor

    ds = prepared.load(repo / paths.PREPARED)
    classes = [str(c) for c in range(10)]
    predictor = Predictor.from_files(repo / paths.BASE_MODEL, repo / paths.AUX_MODEL, repo / paths.STACKED_HEAD, classes)
    rows = ds.indices("test")[:40]
    np.testing.assert_allclose(predictor.predict_proba(np.asarray(ds.images[rows])),
                               np.load(repo / paths.STACKED_PROBS)[rows], atol=1e-6)
    summary = run([sys.executable, "-m", "auxcut", "summary"], repo, env)
    assert "tree of cuts" in summary.stdout and "residual / low" in summary.stdout, summary.stdout + summary.stderr


def test_decorrelated_aux_on_the_center_view(variant):
    repo, env = variant
    set_params(repo, aux__view="center")  # first the plain aux on the same view, to compare with
    repro(repo, env, "train_aux")
    plain = metrics(repo, "train_aux")
    assert (plain["objective"], plain["view"]) == ("plain", "center")
    set_params(repo, aux__objective="decorrelated", aux__strength=1.0)
    output = repro(repo, env)
    assert ran_stages(output) == ["train_aux", "stack", "fit_head", "fairness", "robustness"]
    aux = metrics(repo, "train_aux")
    assert (aux["auxes"], aux["objective"], aux["view"]) == (1, "decorrelated", "center")
    assert np.load(repo / "data" / "predictions" / "aux.npy").shape == (1797, 1)
    agreement = aux["base_agreement"]
    assert set(agreement) == {"aux_side_accuracy", "base_side_accuracy", "probability_correlation", "error_correlation"}
    # the penalty did its job: the aux errs less where the base errs than the plain aux does
    assert agreement["error_correlation"] < plain["base_agreement"]["error_correlation"] - 0.02


def test_a_tree_over_the_parameter_budget_is_one_line_before_training(variant):
    repo, env = variant
    set_params(repo, maxcut__depth=2)  # three auxes of the default width 8: about 5x fewer parameters than the base
    result = run(["dvc", "repro"], repo, env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("auxcut train_aux: error")]
    assert len(lines) == 1 and "aux.width=8" in lines[0] and "aux.width 5 fits" in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    # the tree was cut (or restored from the run-cache), and nothing after train_aux ran
    assert "maxcut" in ran_stages(result.stdout) + cached_stages(result.stdout)
    assert "Running stage 'stack'" not in result.stdout


# --- issue 11: one backbone, many heads ------------------------------------------------------------------------------


def test_aux_as_cut_heads_on_the_base_with_a_depth_two_tree(variant):
    repo, env = variant
    # separate auxes of width 8 for three cuts would be over the parameter budget: as heads they add a few dozen
    set_params(repo, aux__mode="head", maxcut__depth=2)
    output = repro(repo, env)
    # the depth-2 tree's stages may come from DVC's run-cache (an earlier test cut it); the aux and what reads it run
    assert ran_stages(output)[:4] == ["train_aux", "stack", "fit_head", "fairness"]
    assert sorted(ran_stages(output) + cached_stages(output)) == sorted(AFTER_MAXCUT)
    n_nodes = len(json.loads((repo / "data" / "cut.json").read_text())["nodes"])
    aux = metrics(repo, "train_aux")
    assert (aux["mode"], aux["auxes"], aux["inference"]["forward_passes"]) == ("head", n_nodes, 1)
    import torch

    from auxcut.core import paths
    from auxcut.nets import training
    from auxcut.pipeline.predictor import Predictor

    [net], state = training.load_checkpoint(repo / paths.AUX_MODEL)
    assert state["mode"] == "head" and net.arch["n_outputs"] == 10 + 2 * n_nodes
    [base], _ = training.load_checkpoint(repo / paths.BASE_MODEL)
    width = net.classifier[1].in_features
    assert aux["parameters"] == 2 * n_nodes * (width + 1) and aux["base_over_aux_parameters"] > 10
    assert sum(p.numel() for p in net.parameters()) == aux["base_parameters"] + aux["parameters"]
    assert not torch.equal(net.features[0].weight, base.features[0].weight)  # fine-tuned jointly, backbone too
    # each cut head is scored on the images of its cut's classes, and learned its split
    for node in aux["nodes"]:
        assert node["accuracy"]["test"] > node["majority_rate"]["test"]
    class_probs = np.load(repo / paths.CLASS_PROBS)
    stacked = pd.read_csv(repo / paths.STACKED)
    np.testing.assert_allclose(stacked[[f"base_{k}" for k in range(10)]].to_numpy(), class_probs, atol=1e-9)
    assert np.load(repo / paths.AUX_PROBS).shape == (1797, n_nodes)
    # the served predictor runs the one net once and gives the pipeline's stacked probabilities
    predictor = Predictor.from_files(repo / paths.BASE_MODEL, repo / paths.AUX_MODEL, repo / paths.STACKED_HEAD,
                                     [str(c) for c in range(10)])
    assert predictor.joint_cuts == n_nodes and predictor.auxes == []
    from auxcut.data import prepared

    rows = prepared.load(repo / paths.PREPARED).indices("test")[:40]
    images = np.load(repo / paths.PREPARED / "images.npy")[rows]
    np.testing.assert_allclose(predictor.predict_proba(images), np.load(repo / paths.STACKED_PROBS)[rows], atol=1e-6)


def test_attribute_heads_with_hidden_labels_against_a_net_per_attribute(variant):
    repo, env = variant
    set_params(repo, attributes__hidden=[0.0, 0.9], attributes__epochs=8)
    output = repro(repo, env)
    assert ran_stages(output) == ["train_attributes"]
    m = metrics(repo, "train_attributes")
    assert m["attributes"] == ["digit", "cut"] and m["hidden"] == [0.0, 0.9]
    full, most = m["by_fraction"]
    train = metrics(repo, "prepare")["split"]["train"]
    assert full["known_train_labels"] == {"digit": train, "cut": train}
    for name in ("digit", "cut"):
        assert abs(most["known_train_labels"][name] / train - 0.1) < 0.03  # 90% of each attribute's labels hidden
        assert full["shared"]["accuracy"][name] > full["majority"][name] + 0.2
        assert full["separate"]["accuracy"][name] > full["majority"][name] + 0.2
        diff = full["difference"][name]
        assert diff["low"] <= diff["mean"] <= diff["high"]
        assert diff["mean"] == pytest.approx(full["shared"]["accuracy"][name] - full["separate"]["accuracy"][name])
    # fewer labels, worse digits: from 10% of the labels neither the shared nor the separate net does as well
    assert most["shared"]["accuracy"]["digit"] < full["shared"]["accuracy"]["digit"]
    assert full["shared"]["parameters"] < full["separate"]["parameters"]
    # One net with two heads against a net per attribute costs about half the FLOPs: counted, not timed (the measured
    # images/s are recorded, but a timing on a shared 2-core runner is no test: CI failed once at 1.29x for 1.3x).
    for row in (full, most):
        assert row["shared"]["flops_per_image"] < 0.6 * row["separate"]["flops_per_image"], row
    from auxcut.core import paths
    from auxcut.nets import training

    nets, state = training.load_checkpoint(repo / paths.ATTRIBUTES_MODEL)
    assert len(nets) == 2 and state["attributes"] == ["digit", "cut"] and nets[0].arch["n_outputs"] == 12
    assert (repo / "plots" / "attributes" / "accuracy.png").stat().st_size > 0


def test_early_exits_on_a_given_grouping(variant):
    repo, env = variant
    set_params(repo, exits__groups=[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], exits__epochs=6)
    output = repro(repo, env)
    assert ran_stages(output) == ["train_exits"]
    m = metrics(repo, "train_exits")
    [exit_] = m["exits"]
    assert exit_["groups"] == ["0+1+2+3+4", "5+6+7+8+9"] and exit_["after_layer"] == 1
    assert 0 < exit_["flops_ratio"] < 1 < m["final_flops_ratio"]
    assert exit_["test_accuracy"] > 0.8  # a two-way split of the digits from the first conv layer
    assert m["full_accuracy"]["test"] == m["base_accuracy"]  # frozen backbone: the final exit is the base
    curve = pd.read_csv(repo / "plots" / "exits" / "curve.csv")
    thresholds = yaml.safe_load((repo / "params.yaml").read_text())["exits"]["thresholds"]
    assert len(curve) == len(thresholds) + 1
    assert {"accuracy", "coarse_share", "coarse_right", "fine_right", "flops", "val_accuracy"} <= set(curve.columns)
    never = curve[curve["threshold_1"].isna()].iloc[0]  # no early answer: the full net, with the exit evaluated
    assert never["accuracy"] == pytest.approx(m["full_accuracy"]["test"]) and never["coarse_share"] == 0
    frontier = pd.DataFrame(m["frontier"])
    assert frontier["flops"].is_monotonic_increasing and frontier["accuracy"].is_monotonic_increasing
    point = m["operating_point"]
    assert point["picked_on"] == "val" and set(m["aim"]) >= {"met", "flops_at_most_60_percent"}
    assert (repo / "plots" / "exits" / "curve.png").stat().st_size > 0
    import torch

    from auxcut.core import paths
    from auxcut.data import prepared
    from auxcut.nets import training
    from auxcut.variants import exits

    [base], _ = training.load_checkpoint(repo / paths.BASE_MODEL)
    [frozen], _ = training.load_checkpoint(repo / paths.EXITS_MODEL, exits.build)
    for key, value in frozen.base.state_dict().items():  # frozen: the final exit is the base, weights and statistics
        assert torch.equal(value, base.state_dict()[key]), key
    # joint: the backbone trains with the exits, from the base's weights
    set_params(repo, exits__backbone="joint")
    assert ran_stages(repro(repo, env, "train_exits")) == ["train_exits"]
    joint = metrics(repo, "train_exits")
    [net], state = training.load_checkpoint(repo / paths.EXITS_MODEL, exits.build)
    assert joint["backbone"] == "joint" and not net.frozen and joint["full_flops"] == m["full_flops"]
    assert not torch.equal(net.base.features[0].weight, base.features[0].weight)
    assert 1 <= joint["best_epoch"] <= joint["epochs_run"] == len(pd.read_csv(repo / "plots" / "exits" / "history.csv"))
    # the reported accuracies are the saved net's: its coarse exit and its final exit on test
    ds = prepared.load(repo / paths.PREPARED)
    test, labels = ds.indices("test"), ds.samples["label"].to_numpy()
    heads = training.Heads(net.head_sizes)
    outputs = exits.ExitOutputs.split(training.predict_proba(
        net, np.asarray(ds.images[test]), np.asarray(state["mean"]), np.asarray(state["std"]), task=heads,
        batch_size=256, device=torch.device("cpu")), heads.sizes)
    assert joint["full_accuracy"]["test"] == pytest.approx((outputs.fine.argmax(1) == labels[test]).mean())
    coarse_truth = (labels[test] >= 5).astype(int)  # the grouping set above
    assert joint["exits"][0]["test_accuracy"] == pytest.approx((outputs.coarse[0].argmax(1) == coarse_truth).mean())
    assert joint["full_accuracy"]["test"] > 0.5


def test_a_grouping_that_misses_classes_is_one_line_before_any_training(variant):
    repo, env = variant
    set_params(repo, exits__groups=[[0, 1, 2], [3, 4]])
    result = run(["dvc", "repro"], repo, env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "error" in line and "exits.groups" in line]
    assert len(lines) == 1 and "leaves classes [5, 6, 7, 8, 9] out" in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and ran_stages(result.stdout) == ["train_exits"]


def test_early_exits_on_confusion_clusters(variant):
    """exits.groups clusters (issue 25): the exit's groups are the clusters of the base's val confusion graph, which
    leave it less of the confusion to tell apart than the top max-cut's sides (a group count the classes cannot take
    is refused when params are read: test_heads.py)."""
    repo, env = variant
    [tree_exit] = metrics(repo, "train_exits")["exits"]  # the default grouping: the top cut's two sides
    set_params(repo, exits__groups="clusters", exits__n_groups=3, exits__epochs=3)
    assert ran_stages(repro(repo, env)) == ["train_exits"]
    m = metrics(repo, "train_exits")
    [exit_] = m["exits"]
    from auxcut.core import paths
    from auxcut.data import prepared
    from auxcut.method import confusion
    from auxcut.variants import exits

    ds = prepared.load(repo / paths.PREPARED)
    labels, val = ds.samples["label"].to_numpy(), ds.indices("val")
    weights = confusion.confusion_weights(confusion.confusion_counts(labels[val], np.load(repo / paths.BASE_PROBS)[val]))
    seed = yaml.safe_load((repo / "params.yaml").read_text())["seed"]
    clusters = exits.confusion_clusters(weights, 3, seed)
    assert m["groups"] == "clusters" and exit_["groups"] == ["+".join(ds.classes[c] for c in g) for g in clusters]

    def group_of(names: list[str]) -> np.ndarray:
        return np.array([next(g for g, name in enumerate(names) if c in name.split("+")) for c in ds.classes])

    assert exits.between_groups(weights, group_of(exit_["groups"])) < exits.between_groups(
        weights, group_of(tree_exit["groups"]))
    assert (repo / "plots" / "exits" / "groups.png").stat().st_size > 0


# --- issue 12: the cut over the fine labels `discover` found ---------------------------------------------------------


def test_the_cut_over_discovered_fine_labels(variant):
    repo, env = variant
    # TINY's 3 aux epochs leave the aux on the fine-label cut at the majority rate + 0.06 when this test runs alone
    # (0.644 against 0.583, at this commit and before it): 10 epochs let it learn the cut whatever ran before
    set_params(repo, confusion__labels="data/fine_labels.csv", aux__epochs=10)
    # exits grouped by the tree want a cut over the classes: one line when params are read, by the first stage to run
    result = run(["dvc", "repro", "train_exits"], repo, env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line and "exits.groups" in line]
    assert len(lines) == 1 and "confusion.labels" in lines[0], result.stderr[-2000:]
    assert ran_stages(result.stdout) + cached_stages(result.stdout) == ["confusion"]  # discover's labels were there
    set_params(repo, exits__groups=[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    output = repro(repo, env)
    assert sorted(ran_stages(output) + cached_stages(output)) == sorted(["confusion", *AFTER_MAXCUT])
    names = metrics(repo, "discover")["names"]
    table = pd.read_csv(repo / "data" / "confusion.csv", index_col="true")
    assert list(table.index) == list(table.columns) == names and len(names) > 10  # some digit holds two
    assert (metrics(repo, "confusion")["nodes"], metrics(repo, "confusion")["n_nodes"]) == ("fine labels", len(names))
    from sklearn.metrics import confusion_matrix

    from auxcut.data import prepared
    from auxcut.core import paths

    ds = prepared.load(repo / paths.PREPARED)
    labels, val = ds.samples["label"].to_numpy(), ds.indices("val")
    base_counts = confusion_matrix(labels[val], np.load(repo / paths.BASE_PROBS)[val].argmax(1), labels=range(10))
    owner = [int(name.split("/")[0]) for name in names]
    member = np.eye(10, dtype=np.int64)[owner]  # (fine labels, classes): which class holds each fine label
    np.testing.assert_array_equal(member.T @ table.to_numpy() @ member, base_counts)  # each class's fine labels summed
    # the cut is over the fine labels, and each image takes the side of the nearest fine label of its class
    cut = json.loads((repo / "data" / "cut.json").read_text())
    assert cut["classes"] == names
    fine = pd.read_csv(repo / "data" / "fine_labels.csv")
    nearest = fine[[f"nearest_in_{c}" for c in range(10)]].to_numpy()[np.arange(len(labels)), labels]
    assert [owner[k] for k in nearest] == labels.tolist()
    clustered = fine["fine"] >= 0
    assert (nearest[clustered] == fine.loc[clustered, "fine"]).mean() > 0.9  # mostly its own cluster
    relabeled = pd.read_csv(repo / "data" / "relabeled.csv")
    np.testing.assert_array_equal(relabeled["node_0"], np.asarray(cut["sides"])[nearest])
    aux = metrics(repo, "train_aux")
    assert aux["accuracy"]["test"] > aux["majority_rate"]["test"] + 0.1  # the aux learns the fine-label cut
    # the base's side, through the nearest fine labels of each class: right wherever its class is, with more than half
    # the probability (a class's mass sits at the image's own fine label)
    from auxcut.method.confusion import graph_nodes

    base_probs = np.load(repo / paths.BASE_PROBS)
    nodes = graph_nodes(str(repo / "data" / "fine_labels.csv"), labels, ds.classes)
    side_1 = nodes.probs(base_probs)[:, np.asarray(cut["sides"]) == 1].sum(1)
    sure = (base_probs.max(1) > 0.5) & (base_probs.argmax(1) == labels)
    assert sure.sum() >= 20 and ((side_1 > 0.5) == (relabeled["node_0"] == 1))[sure].all()  # (a shrunk base is unsure)
    assert aux["base_agreement"]["base_side_accuracy"] > aux["majority_rate"]["test"]
    fair = metrics(repo, "fairness")
    assert set(fair["predictors"]) == {"base", "control", "stacked"}
    assert (repo / "plots" / "fairness" / "confusion_stacked_test.png").stat().st_size > 0


def test_spatial_missing_feature_heads_read_the_last_conv_map(variant):
    # missing.map spatial (issue 24): train_missing and robustness re-run, nothing else
    repo, env = variant
    set_params(repo, missing__map="spatial", missing__max_iter=5, missing__lr=0.05,
               missing__features=["present", "missing"])
    assert ran_stages(repro(repo, env)) == ["train_missing", "robustness"]
    trained = metrics(repo, "train_missing")
    # the digits base is a convnet of width 32 at 8x8: one block, its 32 x 4 x 4 map before the global pooling
    assert (trained["map"], trained["activation"], trained["features"]) == ("spatial", "relu", 32 * 4 * 4)
    for kind in ("present", "missing"):
        head = trained["heads"][kind]
        assert head["iterations"] == len(head["history"]) == 5 and 1 <= head["best_epoch"] <= 5
        assert head["parameters"] == (32 * 16 + 1) * 64 + (64 + 1) * 10 and head["test_accuracy"] > 0.9
    scored = metrics(repo, "robustness")
    for name, set_scores in scored["sets"].items():
        assert {"fc_present", "fc_missing"} <= set(set_scores["predictors"]), name
    assert set(scored["aim"]) == {"missing"}
