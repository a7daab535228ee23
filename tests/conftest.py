from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
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
    git = ["git", "-c", "user.name=auxcut-test", "-c", "user.email=test@auxcut.invalid"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], git + ["commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True)
    return copy_env(repo)


def predictor_files(folder: Path, base_arch: str, aux_arch: str, shape: tuple[int, int, int] = (1, 28, 28),
                    classes: tuple[str, ...] = ("a", "b", "c")):
    """Checkpoints of an untrained `base_arch` base and `aux_arch` one-cut aux, and a logistic head fit on their outputs
    for 12 random images, saved in `folder` as the pipeline saves them. Returns the three paths (base, aux, head), the
    images, the head's inputs on them and the head."""
    import joblib
    import torch

    from auxcut.method import stacking
    from auxcut.nets import backbones, training

    mean, std = [0.5], [0.25]
    torch.manual_seed(0)
    base = backbones.make(base_arch, shape, len(classes), width=0).eval()
    aux = backbones.make(aux_arch, shape, 1, width=0).eval()
    files = {"base": folder / "base.pt", "aux": folder / "aux.pt", "head": folder / "head.joblib"}
    training.save_checkpoint(files["base"], base, mean=mean, std=std, classes=list(classes))
    training.save_checkpoint(files["aux"], [aux], mean=mean, std=std, mode="separate", n_classes=len(classes))
    images = np.random.default_rng(0).integers(0, 256, (12, *shape), dtype=np.uint8)
    cpu, m, s = torch.device("cpu"), np.asarray(mean), np.asarray(std)
    x = np.column_stack([training.predict_proba(base, images, m, s, task="multiclass", batch_size=8, device=cpu),
                         training.predict_proba(aux, images, m, s, task="binary", batch_size=8, device=cpu)])
    head = stacking.make_head("logistic", 1.0, 200, 0).fit(x, np.arange(len(images)) % len(classes))
    joblib.dump(head, files["head"])
    return files, images, x, head


def copy_env(repo: Path) -> dict[str, str]:
    """The environment to run DVC in a copy at `repo`: this venv's commands, tracking into a store beside the copy."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{repo.parent / 'mlflow.db'}", "TQDM_DISABLE": "1"}
    for key in ("DVC_EXP_NAME", "AUXCUT_PIPELINE_RUN"):
        env.pop(key, None)
    return env


# The params of every end-to-end run on digits: tiny epochs, few bootstrap resamples.
TINY = {"base__epochs": 3, "aux__epochs": 3, "attributes__epochs": 2, "exits__epochs": 2, "fine__epochs": 2,
        "fine__finetune_epochs": 2, "discovery__augmentations": 2, "fairness__bootstrap": 200}


def build_pipeline(root: Path) -> None:
    """The session pipeline, built once for every xdist worker in a process of its own (see `pipeline_build`): a
    fresh git + DVC copy of the repository at root/repo on digits with tiny epochs, run once with `dvc repro`,
    tracked into root/mlflow.db. Its metrics and predictions are kept in root/first-metrics and
    root/first-predictions: what later tests compare with (the model it registered in MLflow among them).
    root/returncode is written last, whatever happens; root/repro.log holds the output."""
    returncode, log = 1, ""
    try:
        repo = root / "repo"
        env = copy_repository(repo, **TINY)
        result = run(["dvc", "repro"], repo, env)
        returncode, log = result.returncode, result.stdout
        (root / "repro.stdout").write_text(result.stdout)
        log += result.stderr
        if result.returncode == 0:
            shutil.copytree(repo / "metrics", root / "first-metrics")
            shutil.copytree(repo / "data" / "predictions", root / "first-predictions")
            # This first run is the one tracked in MLflow (the tracking, UI and serving tests read it). The later
            # re-runs test what DVC re-runs and what the stages write, not tracking: they skip MLflow, which costs
            # every stage seconds of imports and store access (no stage reads `tracking`, so nothing turns stale).
            set_params(repo, tracking__enabled=False)
    except Exception as error:  # noqa: BLE001 - reported to every test that waits for this build
        log += f"\nbuilding the session pipeline failed: {error!r}"
    finally:
        (root / "repro.log").write_text(log)
        (root / "returncode.tmp").write_text(str(returncode))
        os.replace(root / "returncode.tmp", root / "returncode")


# The suite's order for `make test` (pytest-xdist hands out files in this order, --no-loadscope-reorder): the files
# that build pipelines of their own first, while the session pipeline is built in the background (the concurrent runs
# take the built pipeline only at their end), then the longest files that copy it, then the rest, most tests first.
# Longest first keeps both workers busy to the end instead of one waiting on a late long file.
FIRST = ["test_concurrent_runs.py", "test_utkface_pipeline.py", "test_pmnist_pipeline.py", "test_resnet_pipeline.py",
         "test_variants.py", "test_stale_stages.py", "test_shared_work.py", "test_distributed.py", "test_pipeline.py",
         "test_training.py", "test_ui.py"]


def pytest_collection_modifyitems(session, config, items) -> None:
    count = Counter(item.path.name for item in items)

    def rank(item) -> tuple[int, int]:
        name = item.path.name
        return (FIRST.index(name), 0) if name in FIRST else (len(FIRST), -count[name])

    items.sort(key=rank)  # stable: each file keeps its own order


@pytest.fixture(scope="session", autouse=True)
def pipeline_build(request, tmp_path_factory) -> Iterator[Path]:
    """Where the session pipeline is built: one folder for all xdist workers of this session. The first worker to
    start, if any selected test needs the pipeline, starts the build in the background, so that both workers run
    other tests meanwhile instead of each running the whole pipeline itself."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "pipeline-build"
    build = None
    if any("built_pipeline" in item.fixturenames or item.get_closest_marker("later_built_pipeline")
           for item in request.session.items):
        from filelock import FileLock

        with FileLock(str(shared / "pipeline-build.lock")):
            if not root.exists():
                root.mkdir()
                code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import conftest; " \
                       f"conftest.build_pipeline(conftest.Path({str(root)!r}))"
                build = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
    yield root
    if build is not None:
        build.wait()  # another worker may still be waiting for it; never leave it running past the session


@pytest.fixture(scope="session")
def built_pipeline(pipeline_build) -> Path:
    """The session pipeline's folder once its build is done (see build_pipeline); to be copied, never changed."""
    done = pipeline_build / "returncode"
    deadline = time.monotonic() + 1500
    while not done.exists():
        assert time.monotonic() < deadline, f"the session pipeline was not built in 25 minutes: {pipeline_build}"
        time.sleep(1)
    assert done.read_text() == "0", (pipeline_build / "repro.log").read_text()[-6000:]
    return pipeline_build


def copy_built_pipeline(built: Path, folder: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the built session pipeline in `folder` (repository, MLflow store, first metrics and predictions):
    its repository and the environment to run DVC there."""
    for name in ("repo", "mlflow.db", "first-metrics", "first-predictions"):
        if (built / name).is_dir():
            shutil.copytree(built / name, folder / name, symlinks=True)
        else:
            shutil.copy2(built / name, folder / name)
    return folder / "repo", copy_env(folder / "repo")


@pytest.fixture(scope="session")
def pipeline(built_pipeline, tmp_path_factory):
    """This worker's own copy of the session pipeline, shared by the pipeline, report, stale-stage and variant tests
    of the worker; each leaves it reproduced and consistent. Returns the copy's repository, the environment to run
    DVC there, and the first `dvc repro`'s output."""
    repo, env = copy_built_pipeline(built_pipeline, tmp_path_factory.mktemp("pipeline"))
    return repo, env, (built_pipeline / "repro.stdout").read_text()
