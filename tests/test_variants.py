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

from conftest import cached_stages, ran_stages, repro, run, set_params

AFTER_MAXCUT = ["maxcut", "relabel", "train_aux", "stack", "fit_head", "fairness"]


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
    from auxcut import data, paths
    from auxcut.predictor import Predictor

    ds = data.load(repo / paths.PREPARED)
    classes = [str(c) for c in range(10)]
    predictor = Predictor.from_files(repo / paths.BASE_MODEL, repo / paths.AUX_MODEL, repo / paths.STACKED_HEAD, classes)
    rows = ds.indices("test")[:40]
    np.testing.assert_allclose(predictor.predict_proba(np.asarray(ds.images[rows])),
                               np.load(repo / paths.STACKED_PROBS)[rows], atol=1e-6)
    summary = run([sys.executable, "-m", "auxcut.summary"], repo, env)
    assert "tree of cuts" in summary.stdout and "residual / low" in summary.stdout, summary.stdout + summary.stderr


def test_decorrelated_aux_on_the_center_view(variant):
    repo, env = variant
    set_params(repo, aux__objective="decorrelated", aux__strength=1.0, aux__view="center")
    output = repro(repo, env)
    assert ran_stages(output) == ["train_aux", "stack", "fit_head", "fairness"]
    aux = metrics(repo, "train_aux")
    assert (aux["auxes"], aux["objective"], aux["view"]) == (1, "decorrelated", "center")
    assert np.load(repo / "data" / "predictions" / "aux.npy").shape == (1797, 1)
    agreement = aux["base_agreement"]
    assert set(agreement) == {"aux_side_accuracy", "base_side_accuracy", "probability_correlation", "error_correlation"}
    assert -1 <= agreement["error_correlation"] <= 1


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
