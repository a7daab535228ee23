from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "data" / "digits.csv.gz"  # the default data set (scikit-learn's digits)
UTKFACE_ARCHIVE = Path(os.environ.get("AUXCUT_UTKFACE", REPO.parent / "shared" / "datasets" / "utkface" / "UTKFace.tar.gz"))

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars are for people, not test logs


@pytest.fixture
def params_dict() -> dict:
    """The repository's params.yaml as a plain dict, to be varied by a test."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


def digits_halves(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits (pixels scaled to 0..1), shuffled and cut in two: x_fit, y_fit, x_held, y_held."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order] / 16.0, y[order]
    half = len(y) // 2
    return x[:half], y[:half], x[half:], y[half:]


# --- running the real pipeline in a copy of the repository ------------------------------------------


def run(cmd: list[str], repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1200)


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def cached_stages(output: str) -> list[str]:
    """Stages `dvc repro` restored from the run-cache instead of running them."""
    return re.findall(r"Stage '(\w+)' is cached - skipping run", output)


def repro(repo: Path, env: dict[str, str], *args: str) -> str:
    """`dvc repro` in the copy, which must succeed; its output."""
    result = run(["dvc", "repro", *args], repo, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def without_timings(value: object) -> object:
    """A metrics tree less its timings (`seconds`, `solve_seconds`, `images_per_second`), the only fields that vary
    between runs."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if k != "seconds" and not k.endswith(("_seconds", "_per_second"))}
    if isinstance(value, list):  # e.g. the per-cut entries of metrics/maxcut.json's nodes
        return [without_timings(v) for v in value]
    return value


def set_params(repo: Path, **changes: object) -> None:
    """Set dotted params (e.g. aux__lr=0.01 for aux.lr) in the copy's params.yaml."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = params
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Every stage of dvc.yaml, in the order `dvc repro` runs them: the method's nine, then the variants on its base and cut,
# then the occluded test sets, the missing-feature heads and every predictor on each set, then fine-label discovery.
STAGES = ["prepare", "train_base", "confusion", "maxcut", "relabel", "train_aux", "stack", "fit_head", "fairness",
          "train_attributes", "train_exits", "occlude", "train_missing", "robustness", "discover", "train_fine",
          "score_fine"]


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def outs(stage: dict) -> list[str]:
    return [o if isinstance(o, str) else next(iter(o)) for o in stage.get("outs", [])]


def out_digests(repo: Path) -> dict[str, str]:
    """A digest of every stage output in the copy (files, and folders file by file)."""
    digests = {}
    for stage in dvc_stages().values():
        for out in outs(stage):
            path = repo / out
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            digests[out] = "".join(f"{f.relative_to(repo)}:{digest(f)};" for f in files)
    return digests


def copy_repository(repo: Path, **params: object) -> dict[str, str]:
    """Copy this repository's tracked and new files (no results) into a fresh git repo at `repo`, set
    params, and return the environment to run DVC in there (tracking into a store beside the copy)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if name == "dvc.lock" or name.startswith(("metrics/", ".ci/")) or not (REPO / name).is_file():
            continue  # start from no results at all
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, repo / name)
    set_params(repo, **params)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{repo.parent / 'mlflow.db'}", "TQDM_DISABLE": "1"}
    for key in ("DVC_EXP_NAME", "AUXCUT_PIPELINE_RUN"):
        env.pop(key, None)
    git = ["git", "-c", "user.name=auxcut-test", "-c", "user.email=test@auxcut.invalid"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], git + ["commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True)
    return env


# The params of every end-to-end run on digits: tiny epochs, few bootstrap resamples.
TINY = {"base__epochs": 3, "aux__epochs": 3, "attributes__epochs": 2, "exits__epochs": 2, "fine__epochs": 2,
        "fine__finetune_epochs": 2, "discovery__augmentations": 2, "fairness__bootstrap": 200}


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """A fresh git + DVC copy of the repository on digits with tiny epochs, run once with `dvc repro`, tracked
    (shared by the pipeline, report and stale-stage tests; each leaves it reproduced and consistent).
    The first run's metrics and predictions are also kept beside the copy, in first-metrics/ and first-predictions/:
    what later tests compare with (the model it registered in MLflow among them)."""
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    env = copy_repository(repo, **TINY)
    result = run(["dvc", "repro"], repo, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shutil.copytree(repo / "metrics", repo.parent / "first-metrics")
    shutil.copytree(repo / "data" / "predictions", repo.parent / "first-predictions")
    # This first run is the one tracked in MLflow (the tracking, UI and serving tests read it). The later re-runs
    # test what DVC re-runs and what the stages write, not tracking: they skip MLflow, which costs every stage
    # seconds of imports and store access (no stage reads `tracking`, so nothing turns stale).
    set_params(repo, tracking__enabled=False)
    return repo, env, result.stdout
