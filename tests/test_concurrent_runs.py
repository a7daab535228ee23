"""Two queued DVC experiments running at once, in DVC's temporary copies, into one SQLite store:
every stage run of both lands in MLflow, finished, under its own experiment's parent."""

from __future__ import annotations

import json
import re

import pytest

from conftest import STAGES, TINY, copy_repository, ran_stages, run

# The method's stages (`dvc exp run ... fairness`): enough stage runs racing for the store; the variants after them
# would add minutes and no new way to collide.
METHOD = STAGES[:STAGES.index("fairness") + 1]

LEARNING_RATES = {"lr01": "0.01", "lr02": "0.02"}


def test_two_queued_experiments_running_together_lose_no_run(tmp_path):
    from mlflow import MlflowClient

    repo = tmp_path / "repo"
    env = copy_repository(repo, **{**TINY, "base__epochs": 2, "aux__epochs": 2}, data__max_per_class=60)
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
        assert [m.step for m in client.get_metric_history(by_stage["train_aux"].info.run_id, "val_loss")] == [1, 2]
