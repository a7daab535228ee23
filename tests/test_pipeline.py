"""End to end: the real pipeline under DVC, in a copy of this repository, on digits with tiny epochs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

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
    # the 10x rule, counted from the saved checkpoints rather than read back from what the stage reported
    from auxcut.nets.models import count_parameters
    from auxcut.nets.training import load_checkpoint

    [base_net], _ = load_checkpoint(repo / "models" / "base.pt")
    aux_nets, _ = load_checkpoint(repo / "models" / "aux.pt")
    counted_base, counted_aux = count_parameters(base_net), sum(count_parameters(net) for net in aux_nets)
    assert (aux["base_parameters"], aux["parameters"]) == (counted_base, counted_aux)
    assert counted_base >= 10 * counted_aux and aux["base_over_aux_parameters"] == pytest.approx(counted_base / counted_aux, abs=0.1)
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


def test_heads_are_fit_on_val_and_scored_on_test(pipeline):
    """The control and stacked heads refit with scikit-learn alone on the val rows of data/stacked.csv give the saved
    heads' probabilities for every row (a head fit on other rows, test among them, would not), and the fairness
    stage's accuracies and aux gain are those probabilities' on the test rows."""
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    repo, _, _ = pipeline
    params = yaml.safe_load((repo / "params.yaml").read_text())
    head = params["head"]
    assert (head["type"], head["aux_features"]) == ("logistic", "nodes")  # the heads refit below
    frame = pd.read_csv(repo / "data" / "stacked.csv")
    base_columns = [c for c in frame.columns if c.startswith("base_")]
    aux_columns = [c for c in frame.columns if c.startswith("aux_")]
    y = frame["target"].to_numpy()
    val, test = (frame["split"] == "val").to_numpy(), (frame["split"] == "test").to_numpy()
    fair, accuracy = metrics(repo, "fairness"), {}
    for name, columns in (("control", base_columns), ("stacked", base_columns + aux_columns)):
        x = frame[columns].to_numpy(dtype=np.float64)
        refit = make_pipeline(StandardScaler(), LogisticRegression(C=head["C"], max_iter=head["max_iter"],
                                                                   random_state=params["seed"])).fit(x[val], y[val])
        saved = np.load(repo / "data" / "predictions" / f"head_{name}.npy")
        assert list(refit.classes_) == list(range(saved.shape[1]))
        np.testing.assert_allclose(saved, refit.predict_proba(x), atol=1e-8, err_msg=name)
        np.testing.assert_allclose(joblib.load(repo / "models" / f"head_{name}.joblib").predict_proba(x), saved,
                                   atol=1e-12, err_msg=name)  # the saved head is the one that predicted
        accuracy[name] = float((saved[test].argmax(1) == y[test]).mean())
        assert fair["predictors"][name]["accuracy"] == pytest.approx(accuracy[name]), name
    gain = fair["differences"]["stacked_minus_control"]["accuracy"]["value"]
    assert gain == pytest.approx(accuracy["stacked"] - accuracy["control"])


def test_early_exit_point_is_picked_on_val_and_reported_on_test(pipeline):
    """The operating point is the package's pick on the val columns of plots/exits/curve.csv, and what the metrics
    report of it are its test columns."""
    from auxcut.variants import exits

    repo, _, _ = pipeline
    m = metrics(repo, "train_exits")
    curve = pd.read_csv(repo / "plots" / "exits" / "curve.csv")
    thresholds = [c for c in curve.columns if c.startswith("threshold_")]
    assert m["backbone"] == "frozen" and len(thresholds) == len(m["exits"])
    samples = pd.read_csv(repo / "data" / "prepared" / "samples.csv")
    base = np.load(repo / "data" / "predictions" / "base.npy").argmax(1)
    for split in ("val", "test"):  # a frozen backbone's final exit is the base
        rows = (samples["split"] == split).to_numpy()
        assert m["full_accuracy"][split] == pytest.approx((base[rows] == samples["label"][rows]).mean())
    never = curve[thresholds].isna().all(axis=1)  # no early answer: every image at the final exit
    assert curve.loc[never, "val_accuracy"].item() == pytest.approx(m["full_accuracy"]["val"])
    assert curve.loc[never, "accuracy"].item() == pytest.approx(m["full_accuracy"]["test"])
    val_curve = curve[["val_accuracy", "val_coarse_right", "val_flops"]].rename(columns=lambda c: c.removeprefix("val_"))
    picked = curve.loc[exits.operating_point(val_curve, m["full_accuracy"]["val"])]
    reported = m["operating_point"]
    assert reported["picked_on"] == "val"
    for column in thresholds:
        assert reported[column] == (None if pd.isna(picked[column]) else pytest.approx(picked[column])), column
    assert set(reported["test"]) == {"accuracy", "coarse_share", "coarse_right", "fine_accuracy", "fine_right", "flops"}
    for key, value in reported["test"].items():
        assert value == (None if pd.isna(picked[key]) else pytest.approx(picked[key])), key


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
    from sklearn.metrics import adjusted_rand_score

    ari = adjusted_rand_score(samples.loc[assigned, "group_digit"], labels.loc[assigned, "fine"])
    assert found["agreement"]["digit"]["ari"] == pytest.approx(ari) and ari > 0.1  # fine labels nest in the digits
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
    table = result.stdout.splitlines()
    fair, cut, early = metrics(repo, "fairness"), metrics(repo, "maxcut"), metrics(repo, "train_exits")

    def shown(value: float, text: str) -> bool:  # printed with 3 decimals
        return abs(float(text) - value) <= 5e-4 + 1e-12

    number = r"([+-]?\d+\.\d+)"
    interval = rf"{number} \[{number}, {number}\]"
    rows = {match[1]: match.groups()[1:] for line in table
            if (match := re.fullmatch(rf"(base|control|stacked)\s+{interval}\s+{interval} \((\w+)\)\s*", line))}
    assert sorted(rows) == ["base", "control", "stacked"], result.stdout
    for name, (*numbers, worst_group) in rows.items():
        report = fair["predictors"][name]
        digit = report["groups"]["digit"]
        values = [report["accuracy"], *report["accuracy_ci"], digit["worst_group_accuracy"], *digit["worst_group_accuracy_ci"]]
        assert all(shown(v, t) for v, t in zip(values, numbers, strict=True)), (name, values, numbers)
        assert worst_group == digit["worst_group"]
    for key, label in (("control_minus_base", "recalibration gain"), ("stacked_minus_control", "aux gain")):
        [line] = [line for line in table if line.startswith(label)]
        difference = fair["differences"][key]["accuracy"]
        numbers = re.search(interval, line).groups()
        assert all(shown(v, t) for v, t in zip([difference["value"], *difference["ci"]], numbers, strict=True)), line
    [line] = [line for line in table if line.startswith(f"max-cut ({cut['method']})")]
    match = re.search(r"GW cut ([\d.]+) / certified SDP bound ([\d.]+) = ([\d.]+); exact optimum ([\d.]+)", line)
    assert float(match[1]) == pytest.approx(cut["rounded_cut"], rel=1e-5), line  # 6 significant digits
    assert float(match[2]) == pytest.approx(cut["sdp_bound"], rel=1e-3), line  # 4 significant digits
    assert shown(cut["gw_cut_over_sdp_bound"], match[3]) and float(match[4]) == pytest.approx(cut["exact"], rel=1e-5)
    [line] = [line for line in table if line.startswith("early exits")]
    match = re.search(r"accuracy ([\d.]+) \(full depth ([\d.]+)\) at (\d+)% of the FLOPs, (\d+)% answers coarse", line)
    point = early["operating_point"]["test"]
    assert shown(point["accuracy"], match[1]) and shown(early["full_accuracy"]["test"], match[2]), line
    assert abs(int(match[3]) - 100 * point["flops"]) <= 0.5 and abs(int(match[4]) - 100 * point["coarse_share"]) <= 0.5


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
