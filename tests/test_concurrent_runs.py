"""Two queued DVC experiments running at once, in DVC's temporary copies, into one SQLite store:
every stage run of both lands in MLflow, finished, under its own experiment's parent; and the one with the session
pipeline's params gives the session's metrics again, run by run from scratch in another folder (the same seed, the
same results)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import REPO, STAGES, TINY, copy_repository, ran_stages, run, without_timings

# The method's stages (`dvc exp run ... fairness`): enough stage runs racing for the store; the variants after them
# would add minutes and no new way to collide.
METHOD = STAGES[:STAGES.index("fairness") + 1]

# "session" keeps params.yaml's aux.lr: with TINY, the session pipeline's params
LEARNING_RATES = {"session": str(yaml.safe_load((REPO / "params.yaml").read_text())["aux"]["lr"]), "lr02": "0.02"}


@pytest.mark.later_built_pipeline
def test_two_queued_experiments_running_together_lose_no_run(request, tmp_path):
    from mlflow import MlflowClient

    repo = tmp_path / "repo"
    env = copy_repository(repo, **TINY)
    env.pop("MLFLOW_TRACKING_URI")  # the default store, <repo>/mlflow.db, which stages find from .dvc/tmp/exps
    for name, lr in LEARNING_RATES.items():
        queued = run(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"aux.lr={lr}", "fairness"], repo, env)
        assert queued.returncode == 0, queued.stderr
    try:
        # Starts two queue workers and follows both experiments' logs until their results are in.
        ran = run(["dvc", "exp", "run", "--run-all", "-j", "2"], repo, env)
    finally:
        run(["dvc", "queue", "stop", "--kill"], repo, env)
    status = run(["dvc", "queue", "status"], repo, env).stdout
    for name in LEARNING_RATES:
        assert re.search(rf"\b{name}\b.*\bSuccess\b", status), status + ran.stdout[-3000:] + ran.stderr[-3000:]
        log = run(["dvc", "queue", "logs", name], repo, env).stdout
        assert ran_stages(log) == METHOD, log[-3000:]
        assert "database is locked" not in log and "tracking skipped" not in log, log[-3000:]

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env).stdout)
    dvc_metrics = {rev["name"]: rev["data"]["metrics"] for commit in shown for exp in commit.get("experiments") or []
                   for rev in exp["revs"]}  # each experiment's metrics files, as DVC keeps them
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("auxcut").experiment_id
    everything = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {r.info.experiment_id for r in everything} == {experiment}  # none in Default
    assert len(everything) == 2 * (1 + len(METHOD))
    for name, lr in LEARNING_RATES.items():
        stages = [r for r in everything if r.data.tags.get("dvc.experiment") == name and r.data.tags["auxcut.kind"] == "stage"]
        assert sorted(r.data.tags["auxcut.stage"] for r in stages) == sorted(METHOD)
        assert all(r.info.status == "FINISHED" and r.data.tags["auxcut.pipeline"] == f"exp:{name}" for r in stages)
        parents = {r.data.tags["mlflow.parentRunId"] for r in stages}
        assert len(parents) == 1
        parent = client.get_run(parents.pop())
        assert parent.info.status == "FINISHED" and parent.info.run_name == f"pipeline exp:{name}"
        assert parent.data.tags["auxcut.kind"] == "pipeline" and parent.data.tags["dvc.experiment"] == name
        by_stage = {r.data.tags["auxcut.stage"]: r for r in stages}
        assert by_stage["train_aux"].data.params["aux.lr"] == lr
        fair = dvc_metrics[name]["metrics/fairness.json"]["data"]
        for predictor in ("base", "control", "stacked"):  # each run logged its own experiment's numbers
            logged = by_stage["fairness"].data.metrics[f"predictors.{predictor}.accuracy"]
            assert logged == pytest.approx(fair["predictors"][predictor]["accuracy"]), (name, predictor)
        assert [m.step for m in client.get_metric_history(by_stage["train_aux"].info.run_id, "val_loss")] == [1, 2, 3]
    # The session's params, run again from scratch in DVC's temporary copy while the other experiment raced it: every
    # metric but the wall times is the session pipeline's. (Read from the experiment's commit: exp show keeps numbers.)
    [sha] = [rev["rev"] for commit in shown for exp in commit.get("experiments") or [] for rev in exp["revs"]
             if rev["name"] == "session"]
    again = {stage: json.loads(run(["git", "show", f"{sha}:metrics/{stage}.json"], repo, env).stdout) for stage in METHOD}
    built = request.getfixturevalue("built_pipeline")  # only now: the experiments ran while it was being built
    first = {stage: json.loads((built / "first-metrics" / f"{stage}.json").read_text()) for stage in METHOD}
    assert without_timings(again) == without_timings(first)
