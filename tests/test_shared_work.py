"""Sharing work: a second worker gets a first worker's results from a DVC remote instead of recomputing them, and a
queued grid of experiments runs one experiment per point. (That the same seed gives the same results in another
folder is checked by tests/test_concurrent_runs.py, which runs the method again anyway.)"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest

from conftest import STAGES, copy_built_pipeline, out_digests, ran_stages, run, without_timings

GIT = ["git", "-c", "user.name=auxcut-test", "-c", "user.email=test@auxcut.invalid"]


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def metrics(metrics_dir: Path) -> dict[str, object]:
    return {name: without_timings(json.loads((metrics_dir / f"{name}.json").read_text())) for name in STAGES}


@pytest.fixture(scope="module")
def worker(built_pipeline, tmp_path_factory):
    """A worker that ran the pipeline (a copy of the session pipeline) and shares its results: commit dvc.lock,
    the metrics and DVC's .gitignore files; push the outputs and the run-cache to the project's remote (here a
    local folder)."""
    repo, env = copy_built_pipeline(built_pipeline, tmp_path_factory.mktemp("workers"))
    for cmd in (["dvc", "remote", "add", "-d", "storage", str(repo.parent / "remote")], ["git", "add", "-A"],
                GIT + ["commit", "-qm", "results"], ["dvc", "push"], ["dvc", "push", "--run-cache"]):
        ok(run(cmd, repo, env))
    return repo, env


@pytest.mark.parametrize("commands", [[["dvc", "pull", "--run-cache"], ["dvc", "repro"]], [["dvc", "repro", "--pull"]]],
                         ids=["pull-then-repro", "repro-pull"])
def test_a_second_worker_reproduces_nothing(worker, tmp_path, commands):
    repo, env = worker
    clone = tmp_path / "second"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, capture_output=True)
    output = "".join(ok(run(cmd, clone, env)) for cmd in commands)
    assert ran_stages(output) == []
    assert "Data and pipelines are up to date" in ok(run(["dvc", "status"], clone, env))
    assert out_digests(clone) == out_digests(repo)  # every output came from the remote, byte for byte
    assert metrics(clone / "metrics") == metrics(repo / "metrics")  # the metrics came with git (cache: false)


def test_a_queued_grid_runs_one_experiment_per_point(worker):
    repo, env = worker
    grid = {"fairness.bootstrap": [100, 150], "fairness.ci": [0.9, 0.8]}
    sweep = [arg for key, values in grid.items() for arg in ("-S", f"{key}={','.join(map(str, values))}")]
    try:
        # each point runs the fairness stage only (a target, as users narrow a sweep): robustness and score_fine
        # read the same params and would triple the minutes without testing anything more of the queue
        queued = ok(run(["dvc", "exp", "run", "--queue", *sweep, "fairness"], repo, env))
        assert queued.count("Queued experiment") == 4
        ran = ok(run(["dvc", "exp", "run", "--run-all", "-j", "1"], repo, env))
    finally:
        run(["dvc", "queue", "stop", "--kill"], repo, env)  # no queue worker outlives the test
    assert ran_stages(ran) == ["fairness"] * 4  # once per point
    shown = run(["dvc", "exp", "show", "--json"], repo, env)
    assert shown.returncode == 0, shown.stderr
    baseline = next(row for row in json.loads(shown.stdout) if row["rev"] != "workspace")
    experiments = [rev for exp in baseline["experiments"] for rev in exp["revs"]]
    points = []
    for exp in experiments:
        assert exp["error"] is None, exp["name"]
        params = exp["data"]["params"]["params.yaml"]["data"]["fairness"]
        fairness = exp["data"]["metrics"]["metrics/fairness.json"]["data"]
        assert (fairness["bootstrap"], fairness["ci"]) == (params["bootstrap"], params["ci"])  # each ran with its point
        points.append((params["bootstrap"], params["ci"]))
    assert sorted(points) == sorted(itertools.product(*grid.values()))
