"""MLflow tracking for the stages: one parent run per pipeline run, one nested run per stage.

Tracking never blocks the science: if MLflow cannot be reached, the stage says so once and
carries on producing its DVC outputs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from auxcut import AuxcutError


def project_root(start: Path | None = None) -> Path:
    """The user's repository, also when DVC runs a queued experiment in <repo>/.dvc/tmp/exps/<tmp>."""
    path = (start or Path.cwd()).resolve()
    parts = path.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return path


def is_main_process() -> bool:
    """False in torchrun's workers other than rank 0 (torchrun sets RANK in each): rank 0 alone tracks and writes.
    The same answer as `auxcut.nets.distributed.world().is_main`, read here without importing torch, which the
    stages that never train (and this plumbing) should not pay for at start-up."""
    return int(os.environ.get("RANK", "0")) == 0


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI if set, else a SQLite store at an absolute path in the user's repository."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite:/// store URI (relative paths are relative to the working directory)."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold a lock beside a SQLite store across processes. MLflow creates and migrates a fresh
    database on first use without one, so the first stages of two queued experiments starting
    together both migrate it and one of them loses its tracking ('table runs already exists');
    the same check-then-create holds for the experiment and the parent run."""
    database = sqlite_file(uri)
    if database is None:  # a server or a client-server database serialises its own writes
        yield
        return
    from filelock import FileLock

    database.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{database}.lock", timeout=120):
        yield


def git_commit(cwd: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def pipeline_key(cwd: Path, commit: str) -> str:
    """What groups the stage runs of one pipeline run: the DVC experiment, the `make run` invocation,
    or else the (commit, params.yaml) being reproduced by a plain `dvc repro`."""
    if os.environ.get("DVC_EXP_NAME"):
        return f"exp:{os.environ['DVC_EXP_NAME']}"
    if os.environ.get("AUXCUT_PIPELINE_RUN"):
        return f"run:{os.environ['AUXCUT_PIPELINE_RUN']}"
    params = (cwd / "params.yaml").read_bytes() if (cwd / "params.yaml").is_file() else b""
    return f"repro:{commit[:10]}:{hashlib.sha1(params).hexdigest()[:8]}"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _experiment_id(mlflow: Any, name: str, root: Path) -> str:
    """The experiment's id, creating it with artifacts under <repo>/mlartifacts: MLflow's default is
    relative to the working directory, which for a queued DVC experiment is a temporary copy."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow.create_experiment(name, artifact_location=(root / "mlartifacts").as_uri())
    except Exception:  # noqa: BLE001 - created meanwhile by another client of the store (stages take store_lock)
        return mlflow.get_experiment_by_name(name).experiment_id


def metric_name(key: str) -> str:
    """MLflow allows only alphanumerics and _ - . space : / in names (class names like '46+/Asian' do not)."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", key)


def _this_host() -> str:
    return socket.gethostname().replace("'", "")  # a tag value inside an MLflow filter string's quotes


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return True


def fail_runs_of_dead_processes(client: Any, experiment_id: str) -> list[str]:
    """Mark FAILED the runs left RUNNING by a stage process that is gone (SIGKILL, a crash, a machine switched off:
    nothing could end its run), so that the store never shows a stage running forever; their ids. Only this host's
    runs: another host's process ids mean nothing here. A run of a live process (a stage running now) is left alone."""
    stale = client.search_runs([experiment_id], f"attributes.status = 'RUNNING' and tags.`auxcut.host` = '{_this_host()}'")
    dead = [run.info.run_id for run in stale if not _process_alive(int(run.data.tags.get("auxcut.pid", "0")))]
    for run_id in dead:
        client.set_terminated(run_id, status="FAILED")
    return dead


class Tracker:
    """The stage's MLflow run, or a no-op after the first failure to reach the store
    (unless tracking is required: then that failure fails the stage)."""

    def __init__(self, stage: str, required: bool = False) -> None:
        self.stage, self.required = stage, required
        self.mlflow: Any = None
        self._warned = False

    def _skip(self, exc: BaseException) -> None:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        if self.required:
            raise AuxcutError(f"MLflow tracking failed ({exc.__class__.__name__}: {first_line}) and params.yaml "
                              "tracking.required is true") from None
        if not self._warned:
            print(f"auxcut {self.stage}: MLflow tracking skipped ({exc.__class__.__name__}: {first_line})", file=sys.stderr)
            self._warned = True
        self.mlflow = None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.mlflow is None:
            return
        try:
            getattr(self.mlflow, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any tracking failure must not stop the stage
            self._skip(exc)

    def log_params(self, params: dict[str, Any]) -> None:
        self._call("log_params", {k: str(v) for k, v in flatten(params).items()})

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        numeric = {metric_name(k): float(v) for k, v in flatten(metrics).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
        if numeric:
            self._call("log_metrics", numeric, step=step)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if Path(path).exists():
            self._call("log_artifact", str(path), folder)

    def log_model(self, log: Callable[[], Any]) -> None:
        """Run a model-logging call (e.g. `auxcut.pipeline.predictor.log_pyfunc`) in the stage's run, like any tracking call."""
        if self.mlflow is None:
            return
        try:
            log()
        except Exception as exc:  # noqa: BLE001
            self._skip(exc)

    @contextmanager
    def run(self, cwd: Path, dataset: str, experiment: str) -> Iterator["Tracker"]:
        if not is_main_process():  # one MLflow run per stage, not one per torchrun process: here a no-op tracker
            yield self
            return
        # A remote store that does not answer must not stall the stage for minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        try:
            import mlflow
            from mlflow import MlflowClient

            for name in ("mlflow", "alembic"):  # their INFO lines (schema migrations) drown the stage's output
                logging.getLogger(name).setLevel(logging.WARNING)

            root = project_root(cwd)
            uri = tracking_uri(root)
            mlflow.set_tracking_uri(uri)
            commit = git_commit(cwd)
            key = pipeline_key(cwd, commit)
            tags = {"auxcut.pipeline": key, "mlflow.source.git.commit": commit, "auxcut.dataset": dataset,
                    # who holds the run while it is RUNNING: a later stage fails it if this process is gone
                    "auxcut.host": _this_host(), "auxcut.pid": str(os.getpid())}
            if os.environ.get("DVC_EXP_NAME"):
                tags["dvc.experiment"] = os.environ["DVC_EXP_NAME"]
            with store_lock(uri):  # the first touch of the store may create it; then get-or-create twice
                experiment_id = _experiment_id(mlflow, experiment, root)
                client = MlflowClient()
                fail_runs_of_dead_processes(client, experiment_id)
                found = client.search_runs([experiment_id], f"tags.`auxcut.pipeline` = '{key}' and tags.`auxcut.kind` = 'pipeline'",
                                           max_results=1)
                parent = found[0].info.run_id if found else client.create_run(
                    experiment_id, run_name=f"pipeline {key}", tags={**tags, "auxcut.kind": "pipeline"}).info.run_id
            mlflow.start_run(experiment_id=experiment_id, run_name=self.stage, parent_run_id=parent,
                             tags={**tags, "auxcut.kind": "stage", "auxcut.stage": self.stage})
            self.mlflow, self._client, self._parent = mlflow, client, parent
        except Exception as exc:  # noqa: BLE001
            self._skip(exc)
        status = "FAILED"
        try:
            yield self
            status = "FINISHED"
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (auxcut.pipeline.stage turns it into one)
            status = "KILLED"
            raise
        finally:
            if self.mlflow is not None:
                self._call("end_run", status=status)
                try:
                    self._client.set_terminated(self._parent, status=status)
                except Exception as exc:  # noqa: BLE001
                    self._skip(exc)
