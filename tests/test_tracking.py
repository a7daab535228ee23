from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from auxcut.core.tracking import Tracker, flatten, metric_name, pipeline_key, project_root


@pytest.fixture(autouse=True)
def _mlflow_tracking_uri_put_back():
    """Tracker.run sets MLflow's process-wide tracking URI (and the variable), which is right in a stage, its own
    process: here it is put back, so that no later test in this pytest process talks to a store a test pointed at."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as service  # where MLflow keeps the URI it was given

    uri, variable = service._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    yield
    mlflow.set_tracking_uri(uri)
    if variable is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = variable


def test_project_root_sees_through_dvc_temp_copies(tmp_path):
    assert project_root(tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc") == (tmp_path / "repo").resolve()
    assert project_root(tmp_path / "repo") == (tmp_path / "repo").resolve()


def test_pipeline_key_prefers_experiment_then_make_run(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("AUXCUT_PIPELINE_RUN", raising=False)
    plain = pipeline_key(tmp_path, "abc123")
    assert plain.startswith("repro:abc123:")
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    assert pipeline_key(tmp_path, "abc123") != plain  # other params: another pipeline run
    monkeypatch.setenv("AUXCUT_PIPELINE_RUN", "20261122T000000Z")
    assert pipeline_key(tmp_path, "abc123") == "run:20261122T000000Z"
    monkeypatch.setenv("DVC_EXP_NAME", "w6")
    assert pipeline_key(tmp_path, "abc123") == "exp:w6"


def test_metric_names_are_made_legal_for_mlflow():
    assert metric_name("per_class.46+/Asian.train") == "per_class.46_/Asian.train"
    assert flatten({"a": {"b": 1, "c": {"d": 2}}}) == {"a.b": 1, "a.c.d": 2}


def test_unreachable_store_is_reported_once_and_never_raises(tmp_path, monkeypatch, capsys):
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    tracker = Tracker("unit")
    with tracker.run(tmp_path, "digits", "auxcut-test"):
        tracker.log_params({"a": 1})
        tracker.log_metrics({"x": 1.0})
        tracker.log_artifact(Path(__file__))
    err = capsys.readouterr().err
    assert err.count("MLflow tracking skipped") == 1


def test_unreachable_store_fails_the_stage_when_tracking_is_required(tmp_path, monkeypatch):
    import socket

    from auxcut import AuxcutError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    body_ran = False
    with pytest.raises(AuxcutError, match="tracking.required is true"):
        with Tracker("unit", required=True).run(tmp_path, "digits", "auxcut-test"):
            body_ran = True
    assert not body_ran  # failing before the work starts, not after an hour of training


@pytest.mark.parametrize("bad", ["per_class.46+/Asian", "a,b", "é"])
def test_metric_name_has_only_allowed_characters(bad):
    import re

    assert re.fullmatch(r"[A-Za-z0-9_\-. :/]+", metric_name(bad))


# A stage that says it is ready once MLflow is imported, then waits for the start file, so that
# all of them reach the fresh store at the same moment, as the first stages of queued experiments do.
RACER = """
import sys, time
from pathlib import Path
import mlflow, mlflow.store.tracking.sqlalchemy_store
from auxcut.core.tracking import Tracker
folder = Path(sys.argv[1])
(folder / f"ready-{sys.argv[2]}").touch()
while not (folder / "start").exists():
    time.sleep(0.01)
tracker = Tracker("prepare")
with tracker.run(folder, "digits", "auxcut-test"):
    tracker.log_metrics({"x": 1.0})
"""


def test_stages_starting_together_on_a_fresh_store_are_all_tracked(tmp_path):
    from mlflow import MlflowClient

    uri, names = f"sqlite:///{tmp_path / 'mlflow.db'}", [f"e{i}" for i in range(4)]
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path), name], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "MLFLOW_TRACKING_URI": uri, "DVC_EXP_NAME": name}) for name in names]
    while len(list(tmp_path.glob("ready-*"))) < len(names) and all(r.poll() is None for r in racers):
        time.sleep(0.05)
    (tmp_path / "start").touch()
    errors = [racer.communicate(timeout=300)[1] for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * len(names), errors
    assert not any("tracking skipped" in err for err in errors), errors
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("auxcut-test").experiment_id], "tags.`auxcut.kind` = 'stage'")
    assert sorted(r.data.tags["dvc.experiment"] for r in runs) == names
    assert all(r.info.status == "FINISHED" and r.data.metrics == {"x": 1.0} for r in runs)


def test_a_stage_with_tracking_off_never_opens_the_store(tmp_path):
    """tracking.enabled: false -- the stage writes its outputs and metrics, and no MLflow store comes into being."""
    from conftest import copy_repository, run

    repo = tmp_path / "repo"
    env = copy_repository(repo, tracking__enabled=False)
    result = run([sys.executable, "stages/prepare.py"], repo, env)
    assert result.returncode == 0, result.stderr
    assert (repo / "metrics" / "prepare.json").is_file() and (repo / "data" / "prepared").is_dir()
    assert not (tmp_path / "mlflow.db").exists() and "MLflow" not in result.stderr
    tracked = copy_repository(tmp_path / "tracked" / "repo")  # the same stage tracked: the store appears
    assert run([sys.executable, "stages/prepare.py"], tmp_path / "tracked" / "repo", tracked).returncode == 0
    assert (tmp_path / "tracked" / "mlflow.db").is_file()


STOPPABLE = """
import time
from pathlib import Path
from auxcut.pipeline.stage import run_stage

def body(stage):
    Path("started").touch()
    time.sleep(120)

run_stage("prepare", body)
"""


def start_stoppable_stage(tmp_path) -> tuple[subprocess.Popen, dict[str, str]]:
    """A stage (run_stage with a body that sleeps) in its own process, tracked into a SQLite store in tmp_path."""
    from conftest import REPO, set_params

    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    set_params(tmp_path, tracking__experiment="auxcut-test")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "PYTHONPATH": str(REPO),
           "AUXCUT_PIPELINE_RUN": "stop-test"}
    stage = subprocess.Popen([sys.executable, "-c", STOPPABLE], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    while not (tmp_path / "started").exists():
        assert stage.poll() is None, stage.communicate()[1]
        time.sleep(0.05)
    return stage, env


def runs_by_kind(uri: str) -> dict[str, list]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("auxcut-test").experiment_id])
    return {kind: [r for r in runs if r.data.tags["auxcut.kind"] == kind] for kind in ("pipeline", "stage")}


def test_sigterm_stops_a_stage_like_ctrl_c_with_its_runs_killed(tmp_path):
    """A cancelled CI job: one line, exit 143, and no MLflow run left RUNNING."""
    import signal

    stage, env = start_stoppable_stage(tmp_path)
    stage.send_signal(signal.SIGTERM)
    err = stage.communicate(timeout=60)[1]
    assert stage.returncode == 128 + signal.SIGTERM
    assert err.splitlines() == ["auxcut prepare: terminated (SIGTERM)"], err
    runs = runs_by_kind(env["MLFLOW_TRACKING_URI"])
    assert [r.info.status for r in runs["stage"]] == ["KILLED"]
    assert [r.info.status for r in runs["pipeline"]] == ["KILLED"]


def test_runs_of_a_killed_process_are_failed_by_the_next_stage(tmp_path, monkeypatch):
    """SIGKILL cannot be caught: the next stage to open the store fails the runs whose process is gone."""
    import signal

    stage, env = start_stoppable_stage(tmp_path)
    stage.send_signal(signal.SIGKILL)
    stage.communicate(timeout=60)
    uri = env["MLFLOW_TRACKING_URI"]
    assert {r.info.status for kind in runs_by_kind(uri).values() for r in kind} == {"RUNNING"}
    for key in ("MLFLOW_TRACKING_URI", "AUXCUT_PIPELINE_RUN"):
        monkeypatch.setenv(key, env[key])
    tracker = Tracker("train_base")
    with tracker.run(tmp_path, "digits", "auxcut-test"):
        runs = runs_by_kind(uri)
        # the killed stage's run is FAILED; the live one (this process's) stays RUNNING
        assert sorted(r.info.status for r in runs["stage"]) == ["FAILED", "RUNNING"]
        assert [r.info.status for r in runs["pipeline"]] == ["FAILED"]
    assert sorted((r.data.tags["auxcut.stage"], r.info.status) for r in runs_by_kind(uri)["stage"]) == [
        ("prepare", "FAILED"), ("train_base", "FINISHED")]
