"""Serve the latest registered predictor over HTTP with MLflow's scoring server, in this environment.

    python -m auxcut.apps.serve [--port 5001] [--model auxcut-digits]     # `make serve`

POST /invocations with {"inputs": <uint8 images, (N, C, H, W) at the pipeline's image size>} returns one
prediction per image: label, class name, its probability and every class's probability.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from auxcut import AuxcutError
from auxcut.pipeline.params import load_params
from auxcut.core.tracking import project_root, tracking_uri


def default_model(root: Path) -> str:
    """The name fit_head registers for the data set in params.yaml: auxcut-<data.source>."""
    return f"auxcut-{load_params(root / 'params.yaml').data.source}"


def serve_command(model: str, port: int) -> list[str]:
    # --env-manager local: serve from the project's own environment instead of rebuilding one per model.
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{model}/latest", "--env-manager", "local",
            "--host", "127.0.0.1", "--port", str(port)]


def main(argv: list[str] | None = None) -> int:
    root = project_root()
    parser = argparse.ArgumentParser(prog="python -m auxcut.apps.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--model", help="registered model name (default: auxcut-<data.source> of params.yaml)")
    args = parser.parse_args(argv)
    try:
        args.model = args.model or default_model(root)
    except AuxcutError as exc:  # a broken params.yaml must not silently serve another data set's model
        print(f"auxcut serve: error: {exc}", file=sys.stderr)
        return 2
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri(root)
    from mlflow import MlflowClient

    try:
        versions = MlflowClient().search_model_versions(f"name = '{args.model}'")
    except Exception as exc:  # noqa: BLE001 - any store failure is the user's to see in one line
        print(f"error: cannot read the model registry at {os.environ['MLFLOW_TRACKING_URI']}: {exc}", file=sys.stderr)
        return 2
    if not versions:
        print(f"error: no registered model {args.model!r} in {os.environ['MLFLOW_TRACKING_URI']} "
              "(run the pipeline first: make run)", file=sys.stderr)
        return 2
    latest = max(int(v.version) for v in versions)
    print(f"serving {args.model} version {latest} at http://127.0.0.1:{args.port}/invocations (Ctrl-C stops it)",
          file=sys.stderr, flush=True)
    command = serve_command(args.model, args.port)
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
