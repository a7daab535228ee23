from __future__ import annotations

from pathlib import Path

import pytest

from auxcut.tracking import Tracker, flatten, metric_name, pipeline_key, project_root


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
