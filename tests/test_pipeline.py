"""End to end: the real pipeline under DVC, in a copy of this repository, on digits with tiny epochs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import STAGES, digest, ran_stages, run, set_params


def metrics(repo: Path, stage: str) -> dict:
    return json.loads((repo / "metrics" / f"{stage}.json").read_text())


def test_repro_runs_every_stage_in_order(pipeline):
    _, _, output = pipeline
    assert ran_stages(output) == STAGES


def test_metrics_hold_the_method_invariants(pipeline):
    repo, _, _ = pipeline
    prep = metrics(repo, "prepare")
    assert sum(prep["split"].values()) == prep["n_images"] == 1797
    assert metrics(repo, "train_base")["accuracy"]["val"] > 0.5
    cut = metrics(repo, "maxcut")
    assert cut["n"] == 10 and cut["method"] == "exact"  # auto enumerates small graphs
    assert cut["cut"] == cut["exact"] == cut["upper_bound"] and cut["gap"] == 0
    assert 0 <= cut["rounded_cut"] <= cut["exact"] <= cut["sdp_bound"] * (1 + 1e-9)
    assert cut["gw_cut_over_sdp_bound"] >= 0.878 and cut["certified"]
    assert cut["exact_reached"] == (abs(cut["rounded_cut"] - cut["exact"]) < 1e-6)
    assert sorted(cut["side_0"] + cut["side_1"]) == [str(d) for d in range(10)]
    aux = metrics(repo, "train_aux")
    assert aux["base_over_aux_parameters"] >= 10 and aux["parameters"] * 10 <= aux["base_parameters"]
    assert metrics(repo, "stack")["max_probability_sum_error"] < 1e-6
    stacked = pd.read_csv(repo / "data" / "stacked.csv")
    base = stacked[[c for c in stacked.columns if c.startswith("base_")]].to_numpy()
    np.testing.assert_allclose(base.sum(1), 1, atol=1e-6)
    assert stacked["aux_0"].between(0, 1).all() and len(stacked) == 1797
    for head in ("control", "stacked"):
        probs = np.load(repo / "data" / "predictions" / f"head_{head}.npy")
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    assert metrics(repo, "fit_head")["stacked"]["features"] == metrics(repo, "fit_head")["control"]["features"] + 1


def test_fairness_compares_three_predictors_on_test(pipeline):
    repo, _, _ = pipeline
    fair = metrics(repo, "fairness")
    assert fair["test_rows"] == metrics(repo, "prepare")["split"]["test"]
    assert "between_groups" in fair["gap_convention"]
    labels = pd.read_csv(repo / "data" / "stacked.csv").query("split == 'test'")["target"].to_numpy()
    base_pred = pd.read_csv(repo / "data" / "stacked.csv").query("split == 'test'").filter(like="base_").to_numpy().argmax(1)
    assert fair["predictors"]["base"]["accuracy"] == pytest.approx((base_pred == labels).mean())
    for name in ("base", "control", "stacked"):
        report = fair["predictors"][name]
        low, high = report["accuracy_ci"]
        assert low <= report["accuracy"] <= high
        digit = report["groups"]["digit"]
        assert set(digit["by_group"]) == {str(d) for d in range(10)}
        assert digit["worst_group_accuracy"] == min(g["accuracy"] for g in digit["by_group"].values())
    diff = fair["differences"]["stacked_minus_control"]["accuracy"]
    expected = fair["predictors"]["stacked"]["accuracy"] - fair["predictors"]["control"]["accuracy"]
    assert diff["value"] == pytest.approx(expected)
    for plot in ("confusion/base_val.png", "maxcut/cut.png", "fairness/accuracy_by_digit.png",
                 "fairness/confusion_stacked_test.png", "train_base/history.csv"):
        assert (repo / "plots" / plot).stat().st_size > 0, plot


def test_every_predictor_on_every_occluded_set(pipeline):
    repo, _, _ = pipeline
    fair, robust, heads = metrics(repo, "fairness"), metrics(repo, "robustness"), metrics(repo, "train_missing")
    assert list(robust["sets"]) == ["none", "horizontal", "vertical", "diagonal", "triple", "patches"]
    shares = metrics(repo, "occlude")["removed_share"]
    assert shares["horizontal"] == shares["vertical"] == shares["diagonal"] == 0.5 and 0 < shares["patches"] < 0.5
    unoccluded = robust["sets"]["none"]["predictors"]
    for name in ("base", "control", "stacked"):  # the test split as it is: exactly what the fairness stage scored
        assert unoccluded[name]["accuracy"] == pytest.approx(fair["predictors"][name]["accuracy"])
    for kind in ("present", "missing", "both"):
        assert unoccluded[f"fc_{kind}"]["accuracy"] == pytest.approx(heads["heads"][kind]["test_accuracy"])
    for name, scored in robust["sets"].items():
        for predictor, report in scored["predictors"].items():
            low, high = report["accuracy_ci"]
            assert low <= report["accuracy"] <= high and set(report["groups"]["digit"]["by_group"]) == {
                str(d) for d in range(10)}, (name, predictor)
        if name != "none":  # half a digit gone costs the base accuracy
            assert scored["predictors"]["base"]["accuracy"] < unoccluded["base"]["accuracy"] - 0.1 or name == "patches"
    assert set(robust["aim"]) == {"missing", "both"} and robust["published"]["accuracy"]["triple"] == 40.87
    for plot in ("occlusion/examples.png", "robustness/accuracy.png"):
        assert (repo / "plots" / plot).stat().st_size > 0, plot


def test_fine_labels_are_discovered_on_train_and_teach_two_nets(pipeline):
    repo, _, _ = pipeline
    found, fine, scored = metrics(repo, "discover"), metrics(repo, "train_fine"), metrics(repo, "score_fine")
    labels = pd.read_csv(repo / "data" / "fine_labels.csv")
    samples = pd.read_csv(repo / "data" / "prepared" / "samples.csv")
    assert len(labels) == len(samples) and found["train_images"] == (samples["split"] == "train").sum()
    assigned = labels["fine"] >= 0
    assert (samples.loc[assigned, "split"] == "train").all() and assigned.sum() == found["assigned"]
    assert labels.loc[assigned, "certain"].all() and found["kept"] == labels["certain"].sum()
    assert found["fine_labels"] == len(found["names"]) == labels["fine"].max() + 1 >= 10  # at least one per digit
    for name, coarse in zip(labels.loc[assigned, "fine_name"], samples.loc[assigned, "class_name"]):
        assert name.split("/")[0] == str(coarse)  # each fine label lies inside its coarse class
    assert 0 <= found["agreement"]["digit"]["ari"] <= 1
    assert found["class_attributes"] == ["digit"]  # the digit is the class: the fine labels nest inside it
    assert set(fine["modes"]) == set(scored["modes"]) == {"pretrain", "multihead"}
    assert fine["fine_labels"] == found["fine_labels"]
    probs = np.load(repo / "data" / "predictions" / "fine.npz")
    test = (samples["split"] == "test").to_numpy()
    for name, mode in scored["modes"].items():
        assert probs[name].shape == (len(samples), 10) and 0.5 < fine["modes"][name]["val_accuracy"] <= 1
        assert mode["test_accuracy"] == pytest.approx((probs[name][test].argmax(1) == samples["label"][test]).mean())
        diff = mode["minus_base"]["accuracy"]
        assert diff["value"] == pytest.approx(mode["test_accuracy"] - scored["base_accuracy"])
        assert diff["ci"][0] <= diff["value"] <= diff["ci"][1]
    assert (repo / "plots" / "discovery" / "umap.png").stat().st_size > 0


def test_summary_table(pipeline):
    repo, env, _ = pipeline
    result = run([sys.executable, "-m", "auxcut", "summary"], repo, env)
    assert result.returncode == 0, result.stderr
    assert "aux gain (stacked - control)" in result.stdout and "SDP bound" in result.stdout


def test_status_is_clean_and_noop_repro_runs_nothing(pipeline):
    repo, env, _ = pipeline
    status = run(["dvc", "status"], repo, env)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    again = run(["dvc", "repro"], repo, env)
    assert again.returncode == 0 and ran_stages(again.stdout) == []


def test_every_stage_is_tracked_in_mlflow_under_one_parent(pipeline):
    from mlflow import MlflowClient

    repo, env, _ = pipeline
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("auxcut")
    runs = client.search_runs([experiment.experiment_id], "tags.`auxcut.kind` = 'stage'")
    by_stage = {r.data.tags["auxcut.stage"]: r for r in runs}
    assert sorted(by_stage) == sorted(STAGES)
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert len(parents) == 1
    parent = client.get_run(parents.pop())
    assert parent.data.tags["auxcut.kind"] == "pipeline" and parent.info.status == "FINISHED"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert all(r.data.tags["mlflow.source.git.commit"] == commit for r in runs)
    assert by_stage["train_base"].data.params["base.epochs"] == "3"
    fair = metrics(repo, "fairness")
    assert by_stage["fairness"].data.metrics["predictors.stacked.accuracy"] == pytest.approx(fair["predictors"]["stacked"]["accuracy"])
    history = client.get_metric_history(by_stage["train_base"].info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(by_stage["maxcut"].info.run_id, "plots")}
    assert "plots/cut.png" in artifacts


def test_bad_param_is_one_line_and_leaves_outputs(pipeline):
    repo, env, _ = pipeline
    original = (repo / "params.yaml").read_text()
    before = digest(repo / "models" / "base.pt")
    try:
        set_params(repo, base__epochs="ten")
        result = run([sys.executable, "stages/train_base.py"], repo, env)
    finally:
        (repo / "params.yaml").write_text(original)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "base.epochs" in result.stderr and "'ten'" in result.stderr
    assert digest(repo / "models" / "base.pt") == before


def test_missing_data_path_is_one_line_and_leaves_outputs(pipeline):
    repo, env, _ = pipeline
    original = (repo / "params.yaml").read_text()
    before = digest(repo / "data" / "prepared" / "images.npy")
    try:
        set_params(repo, data__source="utkface", data__path="no/such/UTKFace.tar.gz")
        result = run([sys.executable, "stages/prepare.py"], repo, env)
    finally:
        (repo / "params.yaml").write_text(original)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.path" in lines[0] and "no/such/UTKFace.tar.gz" in lines[0], result.stderr
    assert digest(repo / "data" / "prepared" / "images.npy") == before
    assert not list((repo / "data").glob(".prepared.*"))  # no half-written temporary folder left


def test_aux_param_change_reruns_only_aux_and_downstream(pipeline):
    repo, env, _ = pipeline
    set_params(repo, aux__lr=0.01)
    result = run(["dvc", "repro"], repo, env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert ran_stages(result.stdout) == ["train_aux", "stack", "fit_head", "fairness", "robustness"]
