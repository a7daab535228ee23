"""The `auxcut` command: one entry point for what users run (installed as a console script; `python -m auxcut`
runs the same).

    auxcut run                      the pipeline (`dvc repro`), then the summary       make run
    auxcut summary                  the headline numbers of the last run
    auxcut validate                 metrics against the committed ones, quality gates   make validate
    auxcut maxcut GRAPH             the max cut of any weighted graph file, as JSON
    auxcut study run|report|flags   the UTKFace study                                  make study / make report
    auxcut study pmnist             the missing-feature paper reproduced on partial MNIST
    auxcut serve                    the registered predictor over HTTP                 make serve
    auxcut ui                       the MLflow UI on the runs                          make ui

Exit codes are the same for every subcommand: 0 done; 1 a check failed (a quality gate of `auxcut validate`) or a
program it ran failed (`dvc repro`, whose output is above); 2 the input is wrong: a usage error (click's usage
message) or an AuxcutError (params, data, files, ports), printed as one line `error: ...` on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import click

from auxcut import AuxcutError, __version__
from auxcut.core.tracking import project_root
from auxcut.method.maxcut import METHODS, POLISHES, check_weights, edge_count, read_graph, solve
from auxcut.method.maxcut.exact import MAX_EXACT_N
from auxcut.method.maxcut.graph import MAX_NODES
from auxcut.reports import study as utkface_study
from auxcut.reports.summary import summary_table

USAGE_ERROR = 2  # click's code for a usage error; a wrong input of any other kind (an AuxcutError) exits with it too
CHECK_FAILED = 1
HELP = {"help_option_names": ["-h", "--help"]}
# Modules that load MLflow, pandas or the params schema are imported by the subcommands that use them, so that
# `auxcut --help` starts in about a second instead of three.


class AuxcutGroup(click.Group):
    """Turns what a subcommand raises into the exit codes of the module docstring: an AuxcutError is one line and
    exit 2, a program it ran that failed is one line (its own output is above) and exit 1; never a traceback."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201 - click's own signature
        try:
            return super().invoke(ctx)
        except AuxcutError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(USAGE_ERROR)
        except subprocess.CalledProcessError as exc:
            click.echo(f"error: `{' '.join(map(str, exc.cmd))}` failed (exit {exc.returncode}); its output is above",
                       err=True)
            ctx.exit(CHECK_FAILED)


class ManyValuesCommand(click.Command):
    """Its `multiple=True` options also take several values after one flag, `--seeds 0 1 2` as well as
    `--seeds 0 --seeds 1 --seeds 2`: the form the study's commands have always been typed in (`make study`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        many = {opt for param in self.params if isinstance(param, click.Option) and param.multiple
                for opt in param.opts}
        spread, flag, first = [], None, False
        for position, arg in enumerate(args):
            if arg == "--":  # what follows is never an option's value
                spread += args[position:]
                break
            if arg in many:
                flag, first = arg, True
            elif flag and not arg.startswith("-"):
                if not first:
                    spread.append(flag)  # a further value: repeat the flag before it
                first = False
            else:
                flag = None
            spread.append(arg)
        return super().parse_args(ctx, spread)


@click.group(cls=AuxcutGroup, context_settings=HELP, epilog="Exit codes: 0 done; 1 a check or a program it ran "
             "failed; 2 a usage error or a wrong input (one line, `error: ...`).")
@click.version_option(__version__, "--version", prog_name="auxcut")
def auxcut() -> None:
    """auxcut: improve an image classifier by mining its own confusions (a DVC pipeline), and the tools around it.
    Run it in the repository's root."""


def python_env() -> dict[str, str]:
    """The environment for `dvc repro`: the stage commands in dvc.yaml say plain `python`, which must be this
    interpreter (the venv's) also when the venv is not activated."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@auxcut.command(context_settings=HELP)
def run() -> None:
    """Run the pipeline, then print the summary (make run).

    `dvc repro` runs what is stale; the stage runs are grouped under one MLflow pipeline run named by the UTC time
    (AUXCUT_PIPELINE_RUN)."""
    env = {**python_env(), "AUXCUT_PIPELINE_RUN": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())}
    subprocess.run([sys.executable, "-m", "dvc", "repro"], env=env, check=True)
    click.echo(summary_table(Path("metrics")))


METRICS_OPTION = click.option("--metrics", "metrics_dir", type=click.Path(file_okay=False, path_type=Path),
                              default=Path("metrics"), show_default=True,
                              help="Folder of the stages' metrics/<stage>.json.")


@auxcut.command(context_settings=HELP)
@METRICS_OPTION
def summary(metrics_dir: Path) -> None:
    """Print the pipeline's headline numbers (after dvc repro).

    A short table of the metrics files; a missing, truncated or incomplete metrics file is one line naming it and
    the stage to re-run."""
    click.echo(summary_table(metrics_dir))


@auxcut.command(context_settings=HELP)
@click.option("--rev", default="HEAD", show_default=True, help="The git revision whose metrics to compare with.")
@click.option("--params", type=click.Path(dir_okay=False, path_type=Path), default=Path("params.yaml"),
              show_default=True, help="The params file whose `validate:` section holds the gates' thresholds.")
@METRICS_OPTION
@click.pass_context
def validate(ctx: click.Context, rev: str, params: Path, metrics_dir: Path) -> None:
    """Metrics against the committed ones, then the quality gates.

    Compares the metrics with those committed at --rev (`dvc metrics diff`), then checks the quality gates of
    params.yaml `validate:` (the second half of `make validate`, after `dvc repro`). Exits 1 when a gate fails or a
    metric committed at --rev is missing from the workspace's metrics."""
    from auxcut.apps.validate import validate as validate_metrics

    if not validate_metrics(rev, params, metrics_dir):
        ctx.exit(CHECK_FAILED)


def check_out_path(out: Path) -> None:
    """An AuxcutError, before the solve, when the partition could not be written to `out`."""
    if out.is_dir():
        raise AuxcutError(f"--out {out}: is a folder; expected the path of a file to write the partition to")
    existing = next(folder for folder in (out.parent, *out.parent.parents) if folder.exists())
    if not existing.is_dir():
        raise AuxcutError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise AuxcutError(f"--out {out}: {existing} is not writable")


@auxcut.command(context_settings=HELP, help=f"""Max cut of a graph file, with a certified upper bound, as JSON.

    GRAPH: a dense .npy/.csv weight matrix, or an edge list (first line 'n m', then 'i j [w]' per edge, 1-based, as in
    G-set) of at most {MAX_NODES:,} nodes.""")
@click.argument("graph", type=click.Path(path_type=Path))
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True,
              help="exact: every cut (n <= 24); lowrank / cvxpy: Goemans-Williamson with a certified bound; "
                   "auto: lowrank, plus exact when n <= --exact-max-n.")
@click.option("--hyperplanes", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Random hyperplanes for the GW rounding.")
@click.option("--polish", type=click.Choice(POLISHES), default="tabu", show_default=True,
              help="tabu: tabu search over single flips after the rounding; none: the GW cut as is.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed of the solver.")
@click.option("--exact-max-n", type=click.IntRange(0, MAX_EXACT_N), default=20, show_default=True,
              help=f"auto: also enumerate every cut up to this many nodes (0 to {MAX_EXACT_N}).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Write the partition here, one 0/1 per line in node order.")
def maxcut(graph: Path, method: str, hyperplanes: int, polish: str, seed: int, exact_max_n: int,
           out: Path | None) -> None:
    if out is not None:
        check_out_path(out)
    weights = check_weights(read_graph(graph), where=str(graph))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = solve(weights, method, seed=seed, hyperplanes=hyperplanes, exact_max_n=exact_max_n, polish=polish)
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    if out is not None:
        from auxcut.core.io import atomic_path

        try:
            with atomic_path(out) as tmp:
                tmp.write_text("".join(f"{side}\n" for side in result.sides))
        except OSError as exc:
            raise AuxcutError(f"--out {out}: cannot write it ({exc.strerror})") from None
    click.echo(json.dumps({"graph": str(graph), "n": weights.shape[0], "edges": edge_count(weights),
                           **result.summary()}, indent=2))


@auxcut.group(context_settings=HELP)
def study() -> None:
    """The studies: UTKFace (run, report, flags: make study, make report) and the partial-MNIST reproduction (pmnist).

    Presets x seeds x heads, each run in its own scratch copy of the repository; reports/study-utkface.md."""


@study.command(context_settings=HELP)
@click.argument("config", type=click.Choice(sorted(utkface_study.CONFIGS)))
@click.argument("hardware", type=click.Choice(sorted(utkface_study.HARDWARE)))
def flags(config: str, hardware: str) -> None:
    """Print a preset's `-S key=value` overrides, for `dvc exp run`."""
    click.echo(utkface_study.preset_flags(config, hardware))


@study.command("run", cls=ManyValuesCommand, context_settings=HELP)
@click.option("--configs", type=click.Choice(sorted(utkface_study.CONFIGS)), multiple=True,
              default=utkface_study.STUDY_CONFIGS, show_default=True,
              help="Configurations to run (one or more: --configs utkface-15 utkface-30).")
@click.option("--seeds", type=click.IntRange(min=0), multiple=True, default=[0, 1, 2], show_default=True,
              help="Seeds to run (one or more: --seeds 0 1 2).")
@click.option("--hardware", type=click.Choice(sorted(utkface_study.HARDWARE)), default="cpu", show_default=True,
              help="The preset's sizes: cpu (a 2-core machine) or gpu.")
@click.option("--heads", type=click.Choice(utkface_study.HEADS), multiple=True, default=list(utkface_study.HEADS),
              show_default=True, help="Stacked heads to fit (one or more).")
@click.option("--lever", default="",
              help="Name of a lever run of your own (with --set): filed as its own configuration.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="A param override on top of the preset (one or more; needs --lever).")
@click.option("--levers", type=click.Choice(list(utkface_study.LEVERS)), multiple=True,
              help="Named levers to run for each configuration and seed, in order (one or more).")
@click.option("--stages", multiple=True, metavar="STAGE",
              help="Run only these stages and the ones they need (dvc repro STAGE ...); file only their metrics.")
def study_run(configs: tuple[str, ...], seeds: tuple[int, ...], hardware: str, heads: tuple[str, ...], lever: str,
              sets: tuple[str, ...], levers: tuple[str, ...], stages: tuple[str, ...]) -> None:
    """Run configs x seeds x heads into reports/runs/ (make study).

    Each (configuration, seed) in its own scratch copy; then writes the reports. Hours on a CPU."""
    click.echo(utkface_study.run_study(project_root(), list(configs), list(seeds), hardware, list(heads), lever,
                                       list(sets), list(levers), list(stages) or None))


@study.command(context_settings=HELP)
def report() -> None:
    """Write the study's reports from reports/runs/ (make report).

    reports/study-utkface.md and the variant pages, each with its .json."""
    click.echo(utkface_study.write_report(project_root()))


@study.command("pmnist", cls=ManyValuesCommand, context_settings=HELP)
@click.option("--seeds", type=click.IntRange(min=0), multiple=True, default=[0, 1, 2], show_default=True,
              help="Seeds to run (one or more: --seeds 0 1 2).")
@click.option("--activations", type=click.Choice(["relu", "relu6", "sigmoid", "tanh"]), multiple=True,
              default=["relu"], show_default=True, help="pmnist_net's activation (one or more): a section each.")
@click.option("--mnist", "folder", type=click.Path(path_type=Path), default="../shared/datasets/mnist",
              show_default=True, help="Folder with the official MNIST idx files.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Epochs of the net and of each head (the authors' script: 10).")
@click.option("--max-per-class", type=click.IntRange(min=1), default=None,
              help="Train images per digit (default: all), for a quick run.")
@click.option("--test-images", type=click.IntRange(min=1, max=10_000), default=None,
              help="Score on the first N official test images (default: all 10,000), for a quick run.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default="reports", show_default=True,
              help="Folder for reproduce-pmnist.md and .json.")
def study_pmnist(seeds: tuple[int, ...], activations: tuple[str, ...], folder: Path, epochs: int,
                 max_per_class: int | None, test_images: int | None, out: Path) -> None:
    """The missing-feature paper on partial MNIST with its own net: reports/reproduce-pmnist.md.

    Each seed trains pmnist_net and the missing-feature heads the authors' way and scores them on the five test sets
    under the paper's protocol (best epoch per test set) and an honest one (epoch chosen on val). About 5 minutes a
    seed on a 2-core CPU."""
    from auxcut.reports import reproduce_pmnist

    command = "auxcut study pmnist " + " ".join(
        ["--seeds", *map(str, seeds), "--activations", *activations]
        + (["--epochs", str(epochs)] if epochs != 10 else [])
        + (["--max-per-class", str(max_per_class)] if max_per_class else [])
        + (["--test-images", str(test_images)] if test_images else []))
    settings = reproduce_pmnist.Settings(epochs=epochs, max_per_class=max_per_class, test_images=test_images)
    click.echo(reproduce_pmnist.reproduce(folder, list(seeds), list(activations), settings, out, command,
                                          say=lambda line: click.echo(line, err=True)))


PORT = click.IntRange(1, 65535)


@auxcut.command(context_settings=HELP)
@click.option("--port", type=PORT, default=5001, show_default=True, help="Port on 127.0.0.1 to answer on.")
@click.option("--model", help="Registered model name (default: auxcut-<data.source> of params.yaml).")
def serve(port: int, model: str | None) -> None:
    """Serve the registered predictor over HTTP (make serve).

    The latest version, at http://127.0.0.1:PORT/invocations (MLflow's scoring server). POST {"inputs": <integer
    pixels 0..255, (N, C, H, W)>}; other values are answered with HTTP 400."""
    from auxcut.apps.serve import serve as serve_predictor

    serve_predictor(port, model)


@auxcut.command(context_settings=HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the server listens on.")
@click.option("--port", type=PORT, default=5000, show_default=True, help="Port the server listens on.")
def ui(host: str, port: int) -> None:
    """The MLflow UI on the project's runs (make ui).

    Checks the port is free, prints the runs page's URL, then serves the tracking store (Ctrl-C stops it)."""
    from auxcut.apps.ui import open_ui

    open_ui(host, port)


def main() -> None:
    """The console script `auxcut` and `python -m auxcut`."""
    auxcut(prog_name="auxcut")
