"""`auxcut validate`: the quality gates on metrics, and the metrics diff as a table."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from auxcut import AuxcutError
from auxcut.apps.cli import auxcut
from auxcut.pipeline.params import load_params
from auxcut.apps.validate import GATES, check_gates, diff_table, gates_table, missing_metrics, read_metrics
from conftest import REPO, run, set_params

STAGES = {stage for _, terms in GATES.values() for _, stage, _ in terms}


@pytest.fixture
def committed():
    """The committed results of `make run` on digits, with the repository's thresholds."""
    return read_metrics(REPO / "metrics", STAGES), load_params(REPO / "params.yaml").gates.model_dump()


def test_committed_results_pass_every_gate(committed):
    metrics, thresholds = committed
    results = check_gates(metrics, thresholds, REPO / "metrics")
    assert [r.name for r in results] == list(GATES) and all(r.passed for r in results)
    fair = metrics["fairness"]["predictors"]
    gain = next(r for r in results if r.name == "head_min_gain_over_base")
    assert gain.measured == pytest.approx(fair["stacked"]["accuracy"] - fair["base"]["accuracy"])
    assert gain.threshold == thresholds["head_min_gain_over_base"] == -0.01


def test_a_worse_head_fails_its_gate_in_the_table(committed):
    metrics, thresholds = committed
    worse = copy.deepcopy(metrics)
    base = worse["fairness"]["predictors"]["base"]["accuracy"]
    worse["fairness"]["predictors"]["stacked"]["accuracy"] = base - 0.05
    results = check_gates(worse, thresholds, REPO / "metrics")
    assert [r.name for r in results if not r.passed] == ["head_min_gain_over_base"]
    row = next(line for line in gates_table(results).splitlines() if line.startswith("head_min_gain_over_base"))
    assert row.split()[:5] == ["head_min_gain_over_base", "-0.0500", ">=", "-0.0100", "FAIL"]
    assert gates_table(results).count("pass") == 2


def test_missing_or_wrong_metrics_are_one_line_errors(tmp_path, committed):
    result = CliRunner().invoke(auxcut, ["validate", "--params", REPO / "params.yaml", "--metrics", tmp_path / "metrics"])
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / 'metrics' / 'fairness.json'}: not found (run `dvc repro` first)\n"
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "fairness.json").write_text('{"predictors": {"base": {"accura')  # a truncated file
    result = CliRunner().invoke(auxcut, ["validate", "--params", REPO / "params.yaml", "--metrics", tmp_path / "metrics"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'metrics' / 'fairness.json'}: not valid JSON")
    assert result.stderr.rstrip().endswith("re-run its stage, `dvc repro fairness`")
    metrics, thresholds = committed
    del metrics["maxcut"]["cut_over_bound"]
    with pytest.raises(AuxcutError, match=r"maxcut\.json: cut_over_bound is None, expected a number"):
        check_gates(metrics, thresholds, tmp_path)


def test_missing_metrics_are_the_committed_ones_the_workspace_lacks():
    diff = {"metrics/maxcut.json": {"sdp_bound": {"old": 8.5, "new": None}, "cut": {"old": 8.0, "new": 8.0, "diff": 0.0}},
            "metrics/prepare.json": {"n_images": {"old": None, "new": 1797, "diff": None}}}
    assert missing_metrics(diff) == {"metrics/maxcut.json": ["sdp_bound"]}


def test_validate_fails_naming_a_metric_missing_from_a_file(tmp_path, monkeypatch):
    """A metrics file that lost a key (an incomplete write, a stage that stopped writing it) used to pass: the key is
    not one of the gates', and the diff only showed it as a row."""
    for name in ("params.yaml", *(f"metrics/{stage}.json" for stage in STAGES)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy2(REPO / name, tmp_path / name)
    (tmp_path / "dvc.yaml").write_text("metrics:\n" + "".join(f"  - metrics/{stage}.json\n" for stage in sorted(STAGES)))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@auxcut.invalid"]
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                    git + ["commit", "-qm", "metrics"]):
        subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    passed = CliRunner().invoke(auxcut, ["validate"])
    assert passed.exit_code == 0, passed.output
    assert "no change from HEAD" in passed.stdout
    maxcut = json.loads((tmp_path / "metrics" / "maxcut.json").read_text())
    del maxcut["sdp_bound"]
    (tmp_path / "metrics" / "maxcut.json").write_text(json.dumps(maxcut))
    failed = CliRunner().invoke(auxcut, ["validate"])
    assert failed.exit_code == 1, failed.output
    assert failed.stdout.rstrip().endswith("validate: FAIL: metrics at HEAD missing from the workspace "
                                           "(metrics/maxcut.json lacks sdp_bound): re-run `dvc repro maxcut`")


def test_diff_table_leaves_out_wall_times_and_folds_details():
    diff = {
        "metrics/fairness.json": {
            "predictors.stacked.accuracy": {"old": 0.98, "new": 0.97, "diff": -0.01},
            "predictors.base.groups.digit.by_group.3.accuracy": {"old": 0.9, "new": 0.8, "diff": -0.1},
            "seconds": {"old": 1.0, "new": 2.0, "diff": 1.0},
        },
        "metrics/maxcut.json": {"solve_seconds.sdp": {"old": 0.1, "new": 0.2, "diff": 0.1},
                                "inference.base_images_per_second": {"old": 900.0, "new": 950.0, "diff": 50.0}},
        "metrics/prepare.json": {"n_images": {"old": None, "new": 1797, "diff": None}},
    }
    lines = diff_table(diff, "HEAD").splitlines()
    assert lines[0].split() == ["path", "metric", "HEAD", "workspace", "change"]
    assert lines[2].split() == ["metrics/fairness.json", "predictors.stacked.accuracy", "0.98", "0.97", "-0.01"]
    assert lines[3].split()[:2] == ["metrics/prepare.json", "(not"] and "1 new metrics" in lines[3]
    assert lines[4].startswith("... and 1 per-group or per-class metrics changed")
    assert not any("seconds" in line for line in lines)
    assert diff_table({"metrics/maxcut.json": diff["metrics/maxcut.json"]}, "HEAD") == "no change from HEAD (wall times and throughputs left out)"


def test_validate_on_the_pipeline_passes_then_fails_a_raised_gate(pipeline):
    repo, env, _ = pipeline
    passed = run([sys.executable, "-m", "auxcut", "validate"], repo, env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "metrics against HEAD (dvc metrics diff)" in passed.stdout  # the copy commits no metrics: all are new
    assert re.search(r"^metrics/fairness\.json +\(not at HEAD: \d+ new metrics\)$", passed.stdout, re.MULTILINE)
    assert passed.stdout.rstrip().endswith(f"validate: all {len(GATES)} gates pass")
    original = (repo / "params.yaml").read_text()
    try:
        set_params(repo, validate__aux_over_majority_min=0.99)
        failed = run([sys.executable, "-m", "auxcut", "validate"], repo, env)
    finally:
        (repo / "params.yaml").write_text(original)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    row = next(line for line in failed.stdout.splitlines() if line.startswith("aux_over_majority_min"))
    assert "FAIL" in row and ">= +0.9900" in row
    assert failed.stdout.rstrip().endswith(f"validate: FAIL: 1 of {len(GATES)} gates (aux_over_majority_min)")
