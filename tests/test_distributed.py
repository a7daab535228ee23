"""Distributed training: train_base under torchrun (2 gloo processes on the CPU) against one process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import BatchSampler, SequentialSampler

from auxcut import AuxcutError
from auxcut.nets import distributed, training
from auxcut.nets.models import ConvNet
from conftest import REPO, copy_repository, ran_stages, run


def outputs(repo: Path) -> dict:
    return {"metrics": json.loads((repo / "metrics" / "train_base.json").read_text()),
            "probs": np.load(repo / "data" / "predictions" / "base.npy"),
            "history": pd.read_csv(repo / "plots" / "train_base" / "history.csv")}


def stage_runs(env: dict[str, str]) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("auxcut")
    return client.search_runs([experiment.experiment_id], "tags.`auxcut.stage` = 'train_base'")


def test_two_processes_train_like_one(tmp_path):
    repo = tmp_path / "repo"
    env = copy_repository(repo, base__epochs=6)
    # As the README tells DVC users: the stage relaunches itself as
    # `python -m torch.distributed.run --standalone --nproc_per_node=2 stages/train_base.py` (gloo: no GPU here).
    two_env = {**env, distributed.TORCHRUN_ENV: "--standalone --nproc_per_node=2"}
    result = run(["dvc", "repro", "train_base"], repo, two_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert ran_stages(result.stdout) == ["prepare", "train_base"]
    two = outputs(repo)
    assert two["metrics"]["processes"] == 2
    runs = stage_runs(env)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # rank 1 tracked nothing
    leftovers = [p.name for d in ("models", "data/predictions", "metrics", "plots/train_base")
                 for p in (repo / d).iterdir() if ".tmp" in p.name]
    assert leftovers == []  # no half-written file from either process
    [model], state = training.load_checkpoint(repo / "models" / "base.pt")
    assert isinstance(model, ConvNet) and len(state["classes"]) == 10

    result = run([sys.executable, "stages/train_base.py"], repo, env)
    assert result.returncode == 0, result.stderr[-3000:]
    one = outputs(repo)
    assert one["metrics"]["processes"] == 1 and len(stage_runs(env)) == 2

    # Two processes split every batch of the one-process order, so they see the same global batches, but they
    # cannot match one process bit for bit: each normalises batch norm by its own half of the batch (SyncBatchNorm
    # is GPU-only), draws its own dropout masks, and sums gradients in another order. Measured here: val
    # accuracy 0.939 for both, test 0.925 vs 0.931, 98.7% of images given the same class. The bounds leave room
    # for other machines and thread counts while still catching a broken shard or reduction, which would show
    # up as a far lower accuracy (chance is 0.1) or a model that disagrees with the lone one.
    for run_outputs in (one, two):
        probs = run_outputs["probs"]
        assert probs.shape == (1797, 10)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        assert run_outputs["metrics"]["accuracy"]["val"] > 0.8
        assert run_outputs["metrics"]["epochs_run"] == 6
    assert abs(two["metrics"]["accuracy"]["val"] - one["metrics"]["accuracy"]["val"]) <= 0.05
    assert abs(two["metrics"]["accuracy"]["test"] - one["metrics"]["accuracy"]["test"]) <= 0.05
    assert (two["probs"].argmax(1) == one["probs"].argmax(1)).mean() >= 0.9
    np.testing.assert_allclose(two["history"]["val_loss"], one["history"]["val_loss"], rtol=0.1)
    assert list(two["history"]["lr"]) == list(one["history"]["lr"])


@pytest.mark.parametrize("size", [2, 3])
def test_shards_make_up_the_one_process_batches(size):
    batches = BatchSampler(SequentialSampler(range(23)), 10, drop_last=False)  # 10, 10 and a last batch of 3
    shards = [list(training.ShardedBatches(batches, distributed.World(rank, size))) for rank in range(size)]
    assert all(len(s) == 3 for s in shards)
    for step, batch in enumerate(batches):
        assert sum((s[step] for s in shards), []) == batch  # contiguous parts, in rank order
    # a last batch smaller than the number of processes is left out (every process needs a part of each batch)
    short = BatchSampler(SequentialSampler(range(21)), 10, drop_last=False)
    assert [len(list(training.ShardedBatches(short, distributed.World(rank, 2)))) for rank in range(2)] == [2, 2]


def test_batch_smaller_than_the_processes_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    x, y = np.zeros((8, 1, 8, 8), np.uint8), np.zeros(8, np.int64)
    with pytest.raises(AuxcutError, match="batch_size 2 is smaller than the 4 processes"):
        training.fit(ConvNet((1, 8, 8), 2, 4), x, y, np.arange(4), np.arange(4, 8), task="multiclass", mean=np.zeros(1),
                     std=np.ones(1), epochs=1, batch_size=2, lr=0.1, weight_decay=0.0, patience=1, seed=0,
                     device=torch.device("cpu"), desc="test")


def test_relaunch_under_torchrun_only_when_asked(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed.os, "execv", lambda path, args: calls.append(args))
    monkeypatch.delenv(distributed.TORCHRUN_ENV, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    distributed.relaunch_under_torchrun("stages/train_base.py")
    assert calls == []
    monkeypatch.setenv(distributed.TORCHRUN_ENV, "--standalone --nproc_per_node=4")
    distributed.relaunch_under_torchrun("stages/train_base.py")
    assert calls == [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "stages/train_base.py"]]
    monkeypatch.setenv("LOCAL_RANK", "0")  # already a torchrun worker: run here
    distributed.relaunch_under_torchrun("stages/train_base.py")
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [("--standalone --nproc_per_node=two", r"Unsupported nproc_per_node value: two"),
     ("--nnodes=x --standalone", r"invalid literal for int\(\) with base 10: 'x'"),
     ("--standalone --bogus", r"unrecognized arguments: --bogus"),
     ("--standalone --nproc_per_node", r"the following arguments are required: training_script"),  # took the script
     ("--standalone '--nproc_per_node=2", r"No closing quotation")],
)
def test_malformed_torchrun_flags_are_one_line(monkeypatch, flags, message):
    monkeypatch.setattr(distributed.os, "execv", lambda path, args: pytest.fail(f"relaunched with {args}"))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv(distributed.TORCHRUN_ENV, flags)
    with pytest.raises(AuxcutError, match=rf"^AUXCUT_TORCHRUN={re.escape(flags)!s}: .*{message}") as info:
        distributed.relaunch_under_torchrun("stages/train_base.py")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("stage", ["train_base", "train_aux"])
def test_a_training_stage_with_malformed_torchrun_flags_says_so_in_one_line(tmp_path, stage):
    """The training stages relaunch through run_stage(torchrun=True), inside its error handling: one line, exit 2,
    before the stage reads anything (the test runs the real script in an empty folder)."""
    env = {**os.environ, distributed.TORCHRUN_ENV: "--standalone --nproc_per_node=two"}
    env.pop("LOCAL_RANK", None)
    result = subprocess.run([sys.executable, str(REPO / "stages" / f"{stage}.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"auxcut {stage}: error: AUXCUT_TORCHRUN=--standalone --nproc_per_node=two: "
                                          "torchrun refuses these flags (ValueError: Unsupported nproc_per_node value: two)"]


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(AuxcutError, match="LOCAL_RANK=2 but only 2 GPU"):
        distributed.cuda_device()
