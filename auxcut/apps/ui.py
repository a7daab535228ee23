"""`auxcut ui` (`make ui`): the MLflow server over the project's tracking store, opened at the experiment's runs page.

    auxcut ui [--port 5000] [--host 127.0.0.1]

checks that the port is free, prints the URL of the runs page, then becomes `mlflow server` (one worker, no job
runner: a local window on the runs needs neither, and both cost seconds and processes at start-up).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import NoReturn

from auxcut import AuxcutError
from auxcut.apps.ports import check_port_free
from auxcut.pipeline.params import load_params
from auxcut.core.tracking import project_root, sqlite_file, tracking_uri


def experiment_id(database: Path, name: str) -> str | None:
    """The id of the active experiment `name`, read without MLflow (whose store would create or migrate
    the database); None when there is no store or no such experiment yet."""
    if not database.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            row = connection.execute("SELECT experiment_id FROM experiments WHERE name = ? AND lifecycle_stage = 'active'",
                                     (name,)).fetchone()
    except sqlite3.Error:  # an empty or foreign file: the server will say what is wrong with it
        return None
    return str(row[0]) if row else None


def runs_url(host: str, port: int, experiment: str | None) -> str:
    """The experiment's runs table (its bare page opens on the GenAI overview in mlflow 3), else the home page."""
    root = f"http://{host}:{port}/"
    return f"{root}#/experiments/{experiment}/runs" if experiment else root


def server_command(store: str, artifacts: Path, host: str, port: int) -> list[str]:
    """`mlflow server` on the store, artifacts in <repo>/mlartifacts (where the stages put them)."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
            "--default-artifact-root", artifacts.as_uri(), "--artifacts-destination", artifacts.as_uri(),
            "--host", host, "--port", str(port), "--workers", "1"]


def server_env() -> dict[str, str]:
    # mlflow 3.x starts a huey job runner beside the server unless told not to; it has no CLI flag.
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def open_ui(host: str, port: int) -> NoReturn:
    """Print the runs page's URL and become `mlflow server`; an AuxcutError, before anything starts, when the store
    is not a local sqlite file, params.yaml is wrong or the port is taken (then the URL would be another program's)."""
    root = project_root()
    store = tracking_uri(root)
    database = sqlite_file(store)
    if database is None:
        raise AuxcutError(f"MLFLOW_TRACKING_URI={store}: auxcut ui serves a local sqlite:/// store only (open a server URI directly)")
    experiment = load_params(root / "params.yaml").tracking.experiment
    check_port_free(host, port)
    print(f"MLflow UI: {runs_url(host, port, experiment_id(database, experiment))} (Ctrl-C stops it)", flush=True)
    command = server_command(store, root / "mlartifacts", host, port)
    os.execve(command[0], command, server_env())
