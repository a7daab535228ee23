"""The stale-stage contract on the real pipeline: after a change, `dvc repro` runs exactly the stages
that read what changed, then each later stage whose inputs came out different, and nothing else.

DVC compares contents, not times: a stage that re-runs and writes byte-identical outputs (a comment in
its code, more hyperplanes for the same cut) stops the chain there. So the expected set is derived
from dvc.yaml, the stages that declare the changed param, code or data, and their descendants through
the outputs that really changed, and each case also states it literally. Every case then restores what
it changed, and the repro after that must run nothing: each stage comes back from DVC's run-cache.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from conftest import STAGES, cached_stages, dvc_stages, out_digests, outs, ran_stages, repro, run, set_params

DATA = "${data.path}"  # how dvc.yaml names the data set among prepare's deps


def covers(out: str, dep: str) -> bool:
    """An output feeds a dep when they are the same path or one is a folder holding the other."""
    return out == dep or dep.startswith(out + "/") or out.startswith(dep + "/")


def readers(param: str) -> list[str]:
    """Stages that declare the param, itself or a section holding it (`head` holds `head.C`)."""
    return [name for name, stage in dvc_stages().items()
            if any(param == d or param.startswith(d + ".") or d.startswith(param + ".") for d in stage.get("params", []))]


def declaring(path: str) -> list[str]:
    """Stages that declare the file as a dep, itself or a folder holding it."""
    return [name for name, stage in dvc_stages().items() if any(covers(dep, path) for dep in stage["deps"])]


def expected_runs(first: list[str], changed_outs: set[str]) -> list[str]:
    """The stages that must run: those that read the change, then (in DAG order) each stage with a dep
    fed by an output that came out different. With every output changed this is first + descendants."""
    stages = dvc_stages()
    runs: list[str] = []
    for name in STAGES:
        fed = {out for ran in runs for out in outs(stages[ran]) if out in changed_outs}
        if name in first or any(covers(out, dep) for out in fed for dep in stages[name]["deps"]):
            runs.append(name)
    return runs


def read_metrics(repo: Path) -> dict[str, dict]:
    return {name: json.loads((repo / "metrics" / f"{name}.json").read_text()) for name in STAGES}


class Rerun(NamedTuple):
    ran: list[str]  # the stages the repro after the change ran
    changed_outs: set[str]  # the outputs it changed
    metrics: dict[str, dict]  # metrics/<stage>.json after it
    restored: str  # the output of the repro after putting the original back


def change_then_restore(repo: Path, env: dict[str, str], path: Path, changed: bytes) -> Rerun:
    """Write `changed` to the file and repro; put the original back and repro again."""
    before, before_metrics = out_digests(repo), read_metrics(repo)
    original = path.read_bytes()
    path.write_bytes(changed)
    try:
        ran = ran_stages(repro(repo, env))
        after, metrics = out_digests(repo), read_metrics(repo)
    finally:
        path.write_bytes(original)
    restored = repro(repo, env)
    # the run-cache brought back the very same outputs and metrics, wall times included
    assert out_digests(repo) == before and read_metrics(repo) == before_metrics
    status = run(["dvc", "status"], repo, env)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    return Rerun(ran, {out for out in before if after[out] != before[out]}, metrics, restored)


def test_the_dag_derived_from_dvc_yaml():
    # Every output of a stage that changes reaches every descendant, as in the README's DAG.
    everything = {out for stage in dvc_stages().values() for out in outs(stage)}
    after_cut = [s for s in STAGES[STAGES.index("maxcut"):]  # these read the base and the data, not the cut
                 if s not in ("occlude", "train_missing", "discover", "train_fine", "score_fine")]
    assert expected_runs(readers("maxcut.hyperplanes"), everything) == after_cut
    assert expected_runs(declaring(DATA), everything) == STAGES
    assert readers("head.C") == ["fit_head"] and readers("head.type") == ["fit_head", "fairness"]
    assert readers("maxcut.depth") == readers("maxcut.polish") == ["maxcut"]
    assert readers("aux.objective") == readers("aux.view") == readers("aux.target") == ["train_aux"]
    assert readers("head.aux_features") == ["fit_head"]
    assert declaring("auxcut/method/objectives.py") == ["train_aux"]
    assert declaring("auxcut/method/hierarchy.py") == ["maxcut", "relabel", "train_aux", "stack", "fit_head", "train_exits",
                                                       "robustness"]
    assert declaring("data/cut.json") == ["relabel", "train_aux", "fit_head", "train_exits"]
    assert readers("exits.groups") == ["train_exits"] and readers("attributes.hidden") == ["train_attributes"]
    assert declaring("data/relabeled.csv") == ["train_aux", "train_attributes"]
    assert declaring("auxcut/method/stacking.py") == ["stack", "fit_head", "robustness"]
    assert readers("occlusion.patch_size") == ["occlude"] and readers("missing.features") == ["train_missing"]
    assert declaring("auxcut/variants/occlusion.py") == ["occlude", "robustness"]
    assert declaring("models/missing_heads.joblib") == ["robustness"]
    assert declaring("auxcut/method/maxcut/sdp.py") == ["maxcut"]  # a module inside a declared package folder
    assert declaring("auxcut/method/maxcut/plot.py") == ["maxcut", "train_exits"]  # the exits' groups drawn as the cut
    assert readers("exits.n_groups") == ["train_exits"]
    assert expected_runs([], set()) == []


@pytest.mark.parametrize(
    ("param", "value", "literal"),
    [
        ("head.C", 0.5, ["fit_head", "fairness", "robustness"]),  # neither reads head.C: they run on the new heads
        # the fine-label nets are rescored, not retrained (score_fine is a stage of its own)
        ("fairness.bootstrap", 300, ["fairness", "robustness", "score_fine"]),
        # maxcut re-runs, but the cut of this small graph is the same optimum: cut.json is byte-identical,
        # so relabel and everything after it is up to date and DVC stops there.
        ("maxcut.hyperplanes", 2000, ["maxcut"]),
        # the aux variants (issue 10): an objective re-trains the aux and what follows it; the head's aux features
        # re-fit the heads only
        ("aux.objective", "residual", ["train_aux", "stack", "fit_head", "fairness", "robustness"]),
        # issue 25's controls: the aux is drawn or trained in train_aux (the cut stays the max-cut), so the classes aux,
        # stacked as K columns and served by the final predictor, re-runs what the aux objective does
        ("aux.target", "classes", ["train_aux", "stack", "fit_head", "fairness", "robustness"]),
        ("head.aux_features", "paths", ["fit_head", "fairness", "robustness"]),
        # the variants of issue 11 read their own sections: an exits param re-runs the exits alone
        ("exits.thresholds", [0.6, 0.9], ["train_exits"]),
        # issue 12's occluded test sets: new masks re-score every predictor, and nothing is retrained
        ("occlusion.patch_size", 0.4, ["occlude", "robustness"]),
    ],
)
def test_param_change_runs_its_readers_and_what_their_outputs_change(pipeline, param, value, literal):
    repo, env, _ = pipeline
    params = repo / "params.yaml"
    original = params.read_text()
    set_params(repo, **{param.replace(".", "__"): value})
    changed = params.read_bytes()
    params.write_text(original)
    rerun = change_then_restore(repo, env, params, changed)
    assert rerun.ran == literal == expected_runs(readers(param), rerun.changed_outs)
    assert ran_stages(rerun.restored) == [] and cached_stages(rerun.restored) == literal


@pytest.mark.parametrize(
    ("path", "literal"),
    [
        ("stages/stack.py", ["stack"]),
        ("auxcut/method/stacking.py", ["stack", "fit_head", "robustness"]),  # a package module three stages declare
    ],
)
def test_code_change_runs_the_stages_that_declare_it(pipeline, path, literal):
    # A comment changes the code's hash but not its outputs: the declaring stages run, and no other.
    repo, env, _ = pipeline
    file = repo / path
    rerun = change_then_restore(repo, env, file, file.read_bytes() + b"\n# a changed comment\n")
    assert rerun.changed_outs == set()
    assert rerun.ran == literal == expected_runs(declaring(path), rerun.changed_outs)
    assert ran_stages(rerun.restored) == [] and cached_stages(rerun.restored) == literal


def test_data_change_runs_everything(pipeline):
    # The data set is params.yaml's data.path, a dep of prepare: here a new version of it, 50 images fewer.
    repo, env, _ = pipeline
    data = repo / yaml.safe_load((repo / "params.yaml").read_text())["data"]["path"]
    rows = gzip.decompress(data.read_bytes()).splitlines(keepends=True)
    rerun = change_then_restore(repo, env, data, gzip.compress(b"".join(rows[:-50])))
    assert rerun.ran == STAGES == expected_runs(declaring(DATA), rerun.changed_outs)
    assert rerun.metrics["prepare"]["n_images"] == len(rows) - 50 == 1747
    assert ran_stages(rerun.restored) == [] and cached_stages(rerun.restored) == STAGES
