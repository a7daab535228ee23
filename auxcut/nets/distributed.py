"""Training on several processes (GPUs or nodes) under torchrun, with PyTorch's own process group.

torchrun starts one process per GPU and tells each its place in RANK, LOCAL_RANK and WORLD_SIZE; a process
started without them is the only one (rank 0 of 1) and uses none of this module's communication.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from auxcut import AuxcutError

# The processes wait for one another at every step (gradients) and every epoch (val sums), so a wait longer
# than this means a peer has died or hung: the survivors fail with a timeout instead of waiting forever.
# torchrun itself stops the other workers as soon as one exits with an error; this covers the rest.
TIMEOUT = timedelta(minutes=5)
# torchrun's flags, e.g. "--standalone --nproc_per_node=4": the training stages relaunch themselves under
# torchrun with them, so that `dvc repro` trains on several GPUs while dvc.yaml's commands stay plain `python`.
TORCHRUN_ENV = "AUXCUT_TORCHRUN"


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """This process's place among torchrun's workers; rank 0 of 1 when torchrun did not start it."""
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def relaunch_under_torchrun(script: str) -> None:
    """Replace this process by `python -m torch.distributed.run $AUXCUT_TORCHRUN script` when that variable is
    set and torchrun has not started us already; return (and run here) otherwise. Malformed flags: an AuxcutError
    (auxcut.pipeline.stage.run_stage(..., torchrun=True) calls this inside its one-line error handling)."""
    flags = os.environ.get(TORCHRUN_ENV, "").strip()
    if flags and "LOCAL_RANK" not in os.environ:
        argv = torchrun_argv(flags, script)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", *argv])


def _refuse(message: str) -> None:
    raise ValueError(message)


def torchrun_argv(flags: str, script: str) -> list[str]:
    """torchrun's arguments: the flags, then the script. Checked first by torchrun's own parser and its readers of the
    process counts, so that malformed flags are one line here, not torchrun's usage text or traceback after the exec."""
    from torch.distributed import run as torchrun

    try:
        argv = [*shlex.split(flags), script]
    except ValueError as exc:  # e.g. an unclosed quote
        raise AuxcutError(f"{TORCHRUN_ENV}={flags}: not a list of flags ({exc})") from None
    parser = torchrun.get_args_parser()
    parser.error = _refuse  # argparse would print its usage and exit
    try:
        args = parser.parse_args(argv)
        torchrun.parse_min_max_nnodes(args.nnodes)
        torchrun.determine_local_world_size(args.nproc_per_node)
    except ValueError as exc:
        raise AuxcutError(f"{TORCHRUN_ENV}={flags}: torchrun refuses these flags ({exc.__class__.__name__}: "
                          f"{str(exc).splitlines()[0]})") from None
    return argv


def cuda_device() -> torch.device:
    """The GPU of this process: torchrun's LOCAL_RANK among the visible GPUs (the first for a single process)."""
    local_rank, visible = world().local_rank, torch.cuda.device_count()
    if local_rank >= visible:
        raise AuxcutError(f"torchrun process LOCAL_RANK={local_rank} but only {visible} GPU(s) visible "
                          f"(CUDA_VISIBLE_DEVICES); start at most {visible} processes per node (--nproc_per_node)")
    return torch.device("cuda", local_rank)


@contextmanager
def process_group(device: torch.device) -> Iterator[World]:
    """Join torchrun's process group for the block (NCCL between GPUs, gloo between CPUs) and leave it after,
    also on an error; a single process joins nothing."""
    here = world()
    if here.size == 1:
        yield here
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    try:
        yield here
    finally:
        dist.destroy_process_group()


def sum_over_processes(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over all processes (the same result on every one); the values themselves when alone."""
    if not dist.is_initialized():
        return values
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


def broadcast_buffers(model: nn.Module) -> None:
    """Give every process rank 0's buffers (batch-norm running statistics), so all evaluate the same model."""
    if dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
