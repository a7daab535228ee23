"""The `auxcut` command: every subcommand is listed and does what it says, and every failure is its exit code plus,
for a wrong input, one line `error: ...` (no traceback)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from auxcut.apps.cli import auxcut
from auxcut.reports import study
from conftest import REPO

SUBCOMMANDS = {"run", "summary", "validate", "maxcut", "study", "serve", "ui"}
SUMMARY_FILES = ("fairness", "maxcut", "train_aux")  # the metrics files `auxcut summary` cannot do without


def invoke(*args: object, **kwargs) -> click.testing.Result:
    return CliRunner().invoke(auxcut, [str(a) for a in args], **kwargs)


def assert_one_line_error(result: click.testing.Result, text: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert text in result.stderr, result.stderr


def commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


def test_help_lists_every_subcommand_and_each_has_help():
    result = invoke("--help")
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.stdout.split("Commands:\n")[1].split("\n\n")[0].splitlines()}
    assert listed == SUBCOMMANDS
    assert "Exit codes" in result.stdout
    assert set(auxcut.commands["study"].commands) == {"run", "report", "flags", "pmnist"}
    for path, command in commands(auxcut):
        page = invoke(*path, "--help")
        assert page.exit_code == 0 and page.stdout.startswith(f"Usage: auxcut {' '.join(path)}"), path
        assert command.help, path
        assert all(option.help for option in command.params if isinstance(option, click.Option)), path


def test_unknown_subcommand_and_option_are_usage_errors():
    assert invoke("nosuch").exit_code == 2
    result = invoke("summary", "--nosuch")
    assert result.exit_code == 2 and "No such option '--nosuch'" in result.stderr


# --------------------------------------------------------------------------- maxcut


def exact_max_cut(weights: np.ndarray) -> float:
    n = len(weights)
    return max(sum(weights[i, j] for i in range(n) for j in range(i + 1, n) if sides[i] != sides[j])
               for sides in itertools.product((0, 1), repeat=n))


def pentagon_with_chords(path: Path) -> np.ndarray:
    """A small weighted edge list (G-set format) and its matrix."""
    edges = [(1, 2, 3), (2, 3, 1), (3, 4, 2), (4, 5, 5), (5, 1, 1), (1, 3, 4), (2, 4, 2)]
    path.write_text(f"5 {len(edges)}\n" + "".join(f"{i} {j} {w}\n" for i, j, w in edges))
    weights = np.zeros((5, 5))
    for i, j, w in edges:
        weights[i - 1, j - 1] = weights[j - 1, i - 1] = w
    return weights


def test_maxcut_finds_the_exact_max_cut_and_writes_the_partition(tmp_path):
    weights = pentagon_with_chords(tmp_path / "g.txt")
    result = invoke("maxcut", tmp_path / "g.txt", "--hyperplanes", 20, "--out", tmp_path / "sides.txt")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 5 and report["edges"] == 7
    assert report["cut"] == exact_max_cut(weights)
    sides = np.array([int(line) for line in (tmp_path / "sides.txt").read_text().split()])
    assert sum(weights[i, j] for i in range(5) for j in range(i + 1, 5) if sides[i] != sides[j]) == report["cut"]


def test_maxcut_errors(tmp_path):
    pentagon_with_chords(tmp_path / "g.txt")
    assert_one_line_error(invoke("maxcut", tmp_path / "missing.txt"), "missing.txt: file not found")
    assert_one_line_error(invoke("maxcut", tmp_path / "g.txt", "--out", tmp_path), "is a folder")
    refused = invoke("maxcut", tmp_path / "g.txt", "--exact-max-n", 100)
    assert refused.exit_code == 2 and "0<=x<=24" in refused.stderr


def test_installed_script_runs_the_same_command(tmp_path):
    """The console script pyproject.toml declares, as a user runs it (a real process, not click's test runner)."""
    script = Path(sys.executable).parent / "auxcut"
    assert script.is_file(), "auxcut is not installed in this environment: pip install -e . (make does)"
    weights = pentagon_with_chords(tmp_path / "g.txt")
    done = subprocess.run([script, "maxcut", tmp_path / "g.txt", "--hyperplanes", "20"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cut"] == exact_max_cut(weights)
    failed = subprocess.run([script, "maxcut", tmp_path / "none.txt"], capture_output=True, text=True, timeout=120)
    assert (failed.returncode, failed.stdout) == (2, "")
    assert failed.stderr == f"error: {tmp_path / 'none.txt'}: file not found\n"


# --------------------------------------------------------------------------- summary and run


def committed_metrics(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stage in SUMMARY_FILES:
        shutil.copy2(REPO / "metrics" / f"{stage}.json", folder / f"{stage}.json")
    return folder


def test_summary_prints_the_table_of_a_metrics_folder(tmp_path):
    metrics = committed_metrics(tmp_path / "metrics")
    fairness = json.loads((metrics / "fairness.json").read_text())
    result = invoke("summary", "--metrics", metrics)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"auxcut results on the test split ({fairness['test_rows']} images")
    stacked = next(line for line in lines if line.startswith("stacked "))
    assert stacked.split()[1] == f"{fairness['predictors']['stacked']['accuracy']:.3f}"


def test_summary_names_a_truncated_or_incomplete_metrics_file_and_its_stage(tmp_path):
    """Both used to be tracebacks (JSONDecodeError, KeyError) at the end of `make run`."""
    metrics = committed_metrics(tmp_path / "metrics")
    text = (metrics / "fairness.json").read_text()
    (metrics / "fairness.json").write_text(text[: len(text) // 2])
    result = invoke("summary", "--metrics", metrics)
    assert_one_line_error(result, f"{metrics / 'fairness.json'}: not valid JSON")
    assert "`dvc repro fairness`" in result.stderr
    (metrics / "fairness.json").write_text(text)
    cut = json.loads((metrics / "maxcut.json").read_text())
    del cut["sdp_bound"]
    (metrics / "maxcut.json").write_text(json.dumps(cut))
    result = invoke("summary", "--metrics", metrics)
    assert_one_line_error(result, f"{metrics / 'maxcut.json'}: no 'sdp_bound' in it")
    assert "`dvc repro maxcut`" in result.stderr
    (metrics / "train_aux.json").write_text("[]")
    assert_one_line_error(invoke("summary", "--metrics", metrics), "train_aux.json: expected a JSON object, got list")
    assert_one_line_error(invoke("summary", "--metrics", tmp_path / "none"), "fairness.json: not found")


@pytest.fixture
def toy_pipeline(tmp_path, monkeypatch):
    """A git + DVC repository whose one stage writes the metrics the summary reads, and records the interpreter that
    ran it and the pipeline run's name."""
    committed_metrics(tmp_path / "committed")
    stage = ("import os, shutil, sys; shutil.copytree('committed', 'metrics', dirs_exist_ok=True); "
             "open('ran.txt', 'w').write(sys.executable + ' ' + os.environ.get('AUXCUT_PIPELINE_RUN', ''))")
    (tmp_path / "dvc.yaml").write_text(f'stages:\n  toy:\n    cmd: python -c "{stage}"\n    deps: [committed]\n'
                                       "    outs: [metrics, ran.txt]\n")
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_run_reproduces_the_pipeline_then_prints_the_summary(toy_pipeline):
    # The venv not on PATH (the script run by its full path): the stages' `python` must still be the venv's.
    result = invoke("run", env={"PATH": "/usr/bin:/bin"})
    assert result.exit_code == 0, result.output
    assert "auxcut results on the test split" in result.stdout and "aux gain (stacked - control)" in result.stdout
    interpreter, pipeline_run = (toy_pipeline / "ran.txt").read_text().split()
    assert Path(interpreter).parent == Path(sys.executable).parent
    assert len(pipeline_run) == 16 and pipeline_run.endswith("Z") and pipeline_run[8] == "T"  # 20261202T115500Z


def test_run_exits_1_when_a_stage_fails(toy_pipeline):
    (toy_pipeline / "dvc.yaml").write_text("stages:\n  toy:\n    cmd: python -c 'raise SystemExit(3)'\n")
    result = invoke("run")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("error: `") and "dvc repro` failed" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- validate


def test_validate_errors_are_one_line(tmp_path):
    assert_one_line_error(invoke("validate", "--params", tmp_path / "params.yaml"), "params.yaml: file not found")
    assert_one_line_error(invoke("validate", "--params", REPO / "params.yaml", "--metrics", tmp_path),
                          f"{tmp_path / 'fairness.json'}: not found (run `dvc repro` first)")


# --------------------------------------------------------------------------- study


def test_study_flags_prints_the_presets_overrides():
    result = invoke("study", "flags", "utkface-15", "cpu")
    assert result.exit_code == 0
    assert result.stdout == " ".join(study.flags({k: v for k, v in study.preset("utkface-15", "cpu").items()
                                                   if k not in ("seed", "head.type")})) + "\n"
    assert "-S data.classes=age_race -S" in result.stdout
    assert invoke("study", "flags", "cifar", "cpu").exit_code == 2


def test_study_run_takes_several_values_after_one_flag(monkeypatch):
    calls = []
    monkeypatch.setattr(study, "run_study", lambda *args: calls.append(args) or Path("reports/study-utkface.md"))
    result = invoke("study", "run", "--configs", "utkface-15", "utkface-30", "--seeds", 0, 1, 2, "--heads", "logistic",
                    "--lever", "wide", "--set", "aux.width=5", "aux.epochs=30", "--stages", "fairness", "robustness")
    assert result.exit_code == 0, result.output
    [(_, configs, seeds, hardware, heads, lever, sets, levers, stages)] = calls
    assert (configs, seeds, hardware, heads) == (["utkface-15", "utkface-30"], [0, 1, 2], "cpu", ["logistic"])
    assert (lever, sets, levers, stages) == ("wide", ["aux.width=5", "aux.epochs=30"], [], ["fairness", "robustness"])
    assert result.stdout == "reports/study-utkface.md\n"
    calls.clear()
    assert invoke("study", "run", "--seeds", 0, "--seeds", 1).exit_code == 0  # the flag repeated works as well
    assert calls[0][1:3] == (study.STUDY_CONFIGS, [0, 1])  # the UTKFace study


def test_study_errors(tmp_path, monkeypatch):
    assert invoke("study", "run", "--configs", "cifar").exit_code == 2
    assert_one_line_error(invoke("study", "run", "--set", "aux.width=5"), "--set needs --lever NAME")
    assert_one_line_error(invoke("study", "run", "--levers", "residual", "--lever", "x"), "use one or the other")
    (tmp_path / "reports" / "runs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke("study", "report"), "no runs yet (auxcut study run ...)")


# --------------------------------------------------------------------------- serve and ui


@pytest.fixture
def busy_port():
    """A port another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_study_pmnist_passes_its_options_and_names_a_wrong_mnist_folder(tmp_path, monkeypatch):
    from auxcut.reports import reproduce_pmnist

    calls = []
    monkeypatch.setattr(reproduce_pmnist, "reproduce", lambda *args, **kwargs: calls.append(args) or tmp_path / "r.md")
    result = invoke("study", "pmnist", "--seeds", 0, 1, 2, "--activations", "relu", "tanh", "--epochs", 3,
                    "--test-images", 500, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    folder, seeds, activations, settings, out, command = calls[0]
    assert (seeds, activations, settings.epochs, settings.test_images, out) == ([0, 1, 2], ["relu", "tanh"], 3, 500,
                                                                                tmp_path)
    assert command == "auxcut study pmnist --seeds 0 1 2 --activations relu tanh --epochs 3 --test-images 500"
    monkeypatch.undo()
    assert_one_line_error(invoke("study", "pmnist", "--mnist", tmp_path / "none", "--out", tmp_path),
                          f"--mnist {tmp_path / 'none'}: not a folder")
    assert invoke("study", "pmnist", "--activations", "gelu").exit_code == 2


def test_serve_on_a_busy_port_is_one_line_before_mlflow_starts(busy_port, tmp_path, monkeypatch):
    """It used to be MLflow's 26-line traceback."""
    monkeypatch.chdir(tmp_path)  # no params.yaml: were the port not checked first, the error would be another
    assert_one_line_error(invoke("serve", "--port", busy_port), f"port {busy_port} on 127.0.0.1 is not free")
    assert invoke("serve", "--port", 70000).exit_code == 2


def test_serve_without_params_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert_one_line_error(invoke("serve", "--port", port), "params.yaml: file not found")


def test_ui_on_a_busy_port_exits_non_zero_with_one_line(busy_port, tmp_path):
    """It used to print a URL (the other program's page) and exit 0. A real process: were the port not checked, the
    command would become the MLflow server (a test runner must not)."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    server = subprocess.Popen([sys.executable, "-m", "auxcut", "ui", "--port", str(busy_port)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = server.communicate(timeout=120)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert (server.returncode, stdout) == (2, "")
    assert stderr == (f"error: port {busy_port} on 127.0.0.1 is not free (Address already in use): stop the program "
                      "using it, or pick another with --port\n")


def test_ui_refuses_a_tracking_server_uri(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert_one_line_error(invoke("ui"), "MLFLOW_TRACKING_URI=http://127.0.0.1:1: auxcut ui serves a local sqlite")
