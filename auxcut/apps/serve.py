"""Serve the latest registered predictor over HTTP with MLflow's scoring server, in this environment.

    auxcut serve [--port 5001] [--model auxcut-digits]     # `make serve`

POST /invocations with {"inputs": <pixels: integers 0..255, (N, C, H, W) at the pipeline's image size>} returns one
prediction per image: label, class name, its probability and every class's probability. Other values (fractions,
booleans, numbers outside 0..255) and other shapes are answered with HTTP 400.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

from auxcut import AuxcutError
from auxcut.apps.ports import check_port_free
from auxcut.pipeline.params import load_params
from auxcut.core.tracking import project_root, tracking_uri


def default_model(root: Path) -> str:
    """The name fit_head registers for the data set in params.yaml: auxcut-<data.source>."""
    return f"auxcut-{load_params(root / 'params.yaml').data.source}"


HOST = "127.0.0.1"  # this machine only: the scoring server has no authentication


def serve_command(model: str, port: int) -> list[str]:
    # --env-manager local: serve from the project's own environment instead of rebuilding one per model.
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{model}/latest", "--env-manager", "local",
            "--host", HOST, "--port", str(port)]


def serve(port: int, model: str | None = None) -> NoReturn:
    """Become `mlflow models serve` on the latest version of `model` (default: auxcut-<data.source>); an
    AuxcutError, before anything starts, when params.yaml, the registry, the model or the port is wrong."""
    root = project_root()
    check_port_free(HOST, port)
    model = model or default_model(root)  # a broken params.yaml must not silently serve another data set's model
    os.environ["MLFLOW_TRACKING_URI"] = store = tracking_uri(root)
    from mlflow import MlflowClient

    try:
        versions = MlflowClient().search_model_versions(f"name = '{model}'")
    except Exception as exc:  # noqa: BLE001 - any store failure is the user's to see in one line
        raise AuxcutError(f"cannot read the model registry at {store}: {exc}") from None
    if not versions:
        raise AuxcutError(f"no registered model {model!r} in {store} (run the pipeline first: auxcut run)")
    latest = max(int(v.version) for v in versions)
    print(f"serving {model} version {latest} at http://{HOST}:{port}/invocations (Ctrl-C stops it)",
          file=sys.stderr, flush=True)
    command = serve_command(model, port)
    os.execv(command[0], command)
