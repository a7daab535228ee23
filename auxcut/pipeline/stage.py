"""What every stage script shares: validated params, one-line errors, metrics files, tracking."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from auxcut import AuxcutError
from auxcut.core import paths
from auxcut.core.io import save_figure, unreadable, write_csv, write_json
from auxcut.pipeline.params import Params, load_params
from auxcut.core.tracking import Tracker, is_main_process, project_root


class Stage:
    def __init__(self, name: str, params: Params, tracker: Tracker) -> None:
        self.name, self.params, self.tracker = name, params, tracker
        self.started = time.perf_counter()
        self.is_main = is_main_process()  # False in torchrun's other workers: they train, rank 0 writes the outputs

    def data_path(self, value: str) -> Path:
        """A data path param: absolute, or relative to the user's repository (also from DVC temp copies)."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else project_root() / path

    def say(self, message: str) -> None:
        """One line of progress on stderr, named by the stage (the package's functions take it as their `say`)."""
        print(f"auxcut {self.name}: {message}", file=sys.stderr)

    def log_params(self, **sections: Any) -> None:
        self.tracker.log_params({k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in sections.items()})

    def log_history(self, rows: list[dict[str, float]], path: Path) -> None:
        """Per-epoch training curves: a CSV for `dvc plots` and metric history in MLflow."""
        write_csv(path, pd.DataFrame(rows))
        for row in rows:
            self.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    def save_plot(self, path: Path, figure: Any, shows_data: bool = False) -> None:
        """A plot under plots/, also an MLflow artifact; `shows_data` when it draws the data's images."""
        save_figure(path, figure, shows_data)
        self.tracker.log_artifact(path, "plots")

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """metrics/<stage>.json (with the stage's wall time), also logged to MLflow."""
        metrics = {**metrics, "seconds": round(time.perf_counter() - self.started, 3)}
        path = paths.METRICS / f"{self.name}.json"
        write_json(path, metrics)
        self.tracker.log_metrics(metrics)
        self.tracker.log_artifact(path, "metrics")
        return path


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cancelled CI job, a `kill`), stopping the stage as Ctrl-C does: one line, its MLflow run KILLED."""


def _terminate(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second SIGTERM must not break off the clean-up
    raise Terminated


def run_stage(name: str, body: Callable[[Stage], None], *, torchrun: bool = False) -> None:
    """Run a stage body; a user-facing problem exits 2 with one line naming what and where (a missing input: the
    stage that writes it), and Ctrl-C or SIGTERM stops it with one line. `torchrun`: a training stage, which relaunches
    itself under torchrun when AUXCUT_TORCHRUN asks (auxcut.nets.distributed)."""
    warnings.filterwarnings("ignore", category=FutureWarning)  # libraries' deprecation chatter, not the user's problem
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if torchrun:
            from auxcut.nets import distributed  # imports torch: only for the stages that train

            distributed.relaunch_under_torchrun(sys.argv[0])
        params = load_params("params.yaml")
        tracker = Tracker(name, params.tracking.required)  # with tracking off it stays a no-op: MLflow is not imported
        run = (tracker.run(Path.cwd(), params.data.source, params.tracking.experiment) if params.tracking.enabled
               else contextlib.nullcontext(tracker))
        with run:
            body(Stage(name, params, tracker))
    except AuxcutError as exc:
        _fail(name, exc)
    except FileNotFoundError as exc:  # an input not made yet, e.g. `python stages/maxcut.py` before confusion ran
        if exc.filename is None:
            raise
        _fail(name, unreadable(exc.filename, exc))
    except Terminated:
        print(f"auxcut {name}: terminated (SIGTERM)", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        print(f"auxcut {name}: interrupted", file=sys.stderr)
        sys.exit(130)


def _fail(name: str, exc: AuxcutError) -> None:
    print(f"auxcut {name}: error: {exc}", file=sys.stderr)
    sys.exit(2)
