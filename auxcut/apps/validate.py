"""`auxcut validate` (the second half of `make validate`, after `dvc repro`): the metrics against the committed
ones, then the quality gates of params.yaml's `validate` section.

Prints both as tables and fails (`validate` returns False, the command exits 1) when a gate fails or when a metric
committed at the revision is missing from the workspace's metrics; a metrics file or params.yaml that cannot be read
is an AuxcutError.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auxcut import AuxcutError
from auxcut.pipeline.params import load_params
from auxcut.reports.summary import read_metrics_file

# Each gate is a param of params.yaml `validate:`, a lower bound on a sum of signed metrics.
GATES: dict[str, tuple[str, list[tuple[int, str, str]]]] = {
    "head_min_gain_over_base": ("stacked head - base accuracy (test)",
                                [(+1, "fairness", "predictors.stacked.accuracy"), (-1, "fairness", "predictors.base.accuracy")]),
    "cut_over_bound_min": ("max-cut / certified upper bound",
                           [(+1, "maxcut", "cut_over_bound")]),
    "aux_over_majority_min": ("aux - majority-side accuracy (test)",
                              [(+1, "train_aux", "accuracy.test"), (-1, "train_aux", "majority_rate.test")]),
}


@dataclass(frozen=True)
class GateResult:
    name: str
    what: str
    measured: float
    threshold: float

    @property
    def passed(self) -> bool:
        return self.measured >= self.threshold


def read_metrics(metrics_dir: Path, stages: set[str]) -> dict[str, dict[str, Any]]:
    """metrics/<stage>.json of each stage; a missing or unreadable file is one AuxcutError line."""
    return {stage: read_metrics_file(metrics_dir / f"{stage}.json") for stage in sorted(stages)}


def lookup(metrics: dict[str, dict[str, Any]], stage: str, key: str, metrics_dir: Path) -> float:
    value: Any = metrics[stage]
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise AuxcutError(f"{metrics_dir / f'{stage}.json'}: {key} is {value!r}, expected a number (re-run `dvc repro`)")
    return float(value)


def check_gates(metrics: dict[str, dict[str, Any]], thresholds: dict[str, float], metrics_dir: Path) -> list[GateResult]:
    results = []
    for name, (what, terms) in GATES.items():
        measured = sum(sign * lookup(metrics, stage, key, metrics_dir) for sign, stage, key in terms)
        results.append(GateResult(name, what, measured, thresholds[name]))
    return results


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join([lines[0], "-" * max(map(len, lines)), *lines[1:]])


def gates_table(results: list[GateResult]) -> str:
    return table(["gate", "measured", "threshold", "result", "what"],
                 [[r.name, f"{r.measured:+.4f}", f">= {r.threshold:+.4f}", "pass" if r.passed else "FAIL", r.what]
                  for r in results])


def _is_timing(metric: str) -> bool:
    return any(part == "seconds" or part.endswith(("_seconds", "_per_second")) for part in metric.split("."))


def _is_detail(metric: str) -> bool:
    """Per-group and per-class breakdowns: summarised by a count, their headline numbers are shown."""
    return ".by_group." in metric or metric.startswith("per_")


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.5g}" if isinstance(value, float) else str(value)


def diff_table(diff: dict[str, dict[str, dict[str, Any]]], rev: str) -> str:
    """`dvc metrics diff --json` as a table, less wall times and throughputs; a file new since `rev` is one line."""
    rows, details = [], 0
    for path, changes in sorted(diff.items()):
        changes = {m: c for m, c in changes.items() if not _is_timing(m)}
        if changes and all(c.get("old") is None for c in changes.values()):
            rows.append([path, f"(not at {rev}: {len(changes)} new metrics)", "", "", ""])
            continue
        for metric, change in sorted(changes.items()):
            if _is_detail(metric):
                details += 1
                continue
            delta = change.get("diff")
            rows.append([path, metric, _number(change.get("old")), _number(change.get("new")),
                         "-" if delta is None else f"{delta:+.5g}" if isinstance(delta, float) else f"{delta:+}"])
    if not rows and not details:
        return f"no change from {rev} (wall times and throughputs left out)"
    text = table(["path", "metric", rev, "workspace", "change"], rows) if rows else ""
    if details:
        text += f"\n... and {details} per-group or per-class metrics changed (`dvc metrics diff {rev}` lists them)"
    return text.lstrip("\n")


def missing_metrics(diff: dict[str, dict[str, dict[str, Any]]]) -> dict[str, list[str]]:
    """The metrics committed at the revision that the workspace's files lack (DVC reports them with no new value),
    by file: an incomplete or truncated file, or a stage that stopped writing a metric."""
    missing = {path: sorted(m for m, change in changes.items() if change.get("old") is not None and change.get("new") is None)
               for path, changes in sorted(diff.items())}
    return {path: metrics for path, metrics in missing.items() if metrics}


def missing_line(missing: dict[str, list[str]], rev: str) -> str:
    """One line naming the missing metrics (the first three of each file) and the stages to re-run."""
    files = "; ".join(f"{path} lacks {', '.join(metrics[:3])}" + (f" and {len(metrics) - 3} more" if len(metrics) > 3 else "")
                      for path, metrics in missing.items())
    stages = " ".join(Path(path).stem for path in missing)  # metrics/<stage>.json is written by the stage <stage>
    return f"validate: FAIL: metrics at {rev} missing from the workspace ({files}): re-run `dvc repro {stages}`"


def metrics_diff(rev: str) -> dict[str, dict[str, dict[str, Any]]]:
    """DVC's own comparison of the workspace metrics with those committed at `rev`."""
    result = subprocess.run([sys.executable, "-m", "dvc", "metrics", "diff", "--json", rev],
                            capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise AuxcutError(f"dvc metrics diff {rev} failed: {last}")
    return json.loads(result.stdout or "{}")


def validate(rev: str = "HEAD", params: Path = Path("params.yaml"), metrics_dir: Path = Path("metrics")) -> bool:
    """Print the metrics diff against `rev` and the gates table; True when every gate passes and no committed metric
    is missing from the workspace."""
    thresholds = load_params(params).gates.model_dump()
    results = check_gates(read_metrics(metrics_dir, {stage for _, terms in GATES.values() for _, stage, _ in terms}),
                          thresholds, metrics_dir)
    diff = metrics_diff(rev)
    print(f"metrics against {rev} (dvc metrics diff)\n{diff_table(diff, rev)}\n")
    print(f"quality gates ({params}: validate)\n{gates_table(results)}\n")
    failed = [r.name for r in results if not r.passed]
    missing = missing_metrics(diff)
    if missing:
        print(missing_line(missing, rev))
    if failed:
        print(f"validate: FAIL: {len(failed)} of {len(results)} gates ({', '.join(failed)})")
    if not (missing or failed):
        print(f"validate: all {len(results)} gates pass")
    return not (missing or failed)
