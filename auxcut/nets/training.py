"""Training and prediction for the CNNs: seeded, early-stopped on val, CUDA with mixed precision when present,
on several GPUs or nodes when started by torchrun."""

from __future__ import annotations

import copy
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler, SequentialSampler
from tqdm import tqdm

from auxcut import AuxcutError
from auxcut.nets import distributed
from auxcut.core.io import atomic_path, reading
from auxcut.nets.backbones import build


@dataclass(frozen=True)
class Heads:
    """Several softmax heads on one network (a class head and binary cut heads, one head per face attribute, or the
    exits of an early-exit net): the logits are the heads' side by side, `sizes[h]` each; the targets have one column
    per head, MISSING where that head's label is unknown. Loss and accuracy skip missing labels, so a partly labelled
    image still teaches the heads whose labels it has."""

    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.sizes or min(self.sizes) < 2:
            raise AuxcutError(f"heads: expected one or more heads of at least 2 classes each, got {self.sizes}")

    def split(self, logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return logits.split(list(self.sizes), dim=1)

    def split_probs(self, probs: np.ndarray) -> list[np.ndarray]:
        """predict_proba's (N, sum of the sizes) for these heads -> each head's (N, size) probabilities."""
        return np.split(probs, np.cumsum(self.sizes)[:-1], axis=1)


MISSING = -1  # a head's target where its label is unknown (Heads)
Task = Literal["multiclass", "binary"] | Heads


def pick_device() -> torch.device:
    """A GPU when there is one (under torchrun, this process's own), else the CPU."""
    return distributed.cuda_device() if torch.cuda.is_available() else torch.device("cpu")


def seed_everything(seed: int, device: torch.device) -> None:
    """Seed every generator. On the CPU that alone gives bit-identical reruns (same machine and thread
    count; tests/test_training.py checks it); torch.use_deterministic_algorithms is not needed there
    and cost 7% of training speed. On a GPU the fast non-deterministic kernels are kept."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class ImageBatches(torch.utils.data.Dataset):
    """uint8 images (possibly memory-mapped) served a whole batch at a time, normalised on the fly, with their
    targets and their rows of `columns` (per-image values an objective needs, e.g. loss weights; (B, 0) if none)."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, index: np.ndarray, mean: np.ndarray, std: np.ndarray,
                 augment: bool = False, seed: int = 0, columns: np.ndarray | None = None) -> None:
        self.images, self.targets, self.index, self.augment = images, targets, index, augment
        self.columns = np.zeros((len(images), 0), np.float32) if columns is None else np.asarray(columns, np.float32)
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = np.sort(self.index[positions])  # sorted reads are sequential on a memory map
        x = torch.from_numpy(np.ascontiguousarray(self.images[rows])).float().div_(255.0)
        if self.augment:
            x = flip_and_shift(x, self.generator)
        return (x - self.mean) / self.std, torch.from_numpy(self.targets[rows]), torch.from_numpy(self.columns[rows])


def flip_and_shift(x: torch.Tensor, generator: torch.Generator, max_shift: float = 0.0625,
                   flip: bool = True) -> torch.Tensor:
    """Random horizontal flips and small random crops (shifts of up to 1/16 of the side, edges
    replicated): augmentation that suits aligned faces. Not for digits, whose orientation is the label: there
    `flip=False` keeps the shifts alone."""
    n, _, height, width = x.shape
    if flip:
        flipped = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flipped.view(-1, 1, 1, 1), x.flip(3), x)
    pad = max(1, round(max_shift * height))
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i]:dy[i] + height, dx[i]:dx[i] + width] for i in range(n)])


def channel_stats(images: np.ndarray, index: np.ndarray, max_samples: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the training images (on a seeded subsample for large sets)."""
    rows = np.sort(np.random.default_rng(0).choice(index, size=min(len(index), max_samples), replace=False))
    x = np.asarray(images[rows], dtype=np.float64) / 255.0
    return x.mean(axis=(0, 2, 3)), np.maximum(x.std(axis=(0, 2, 3)), 1e-3)


class ShardedBatches(Sampler[list[int]]):
    """Every batch of `batches` cut into one contiguous part per process, this process taking its own: together the
    processes train on exactly the batches, in the order, that one process would. (DistributedSampler would give
    each process its own shuffle instead, and pad the epoch with repeated images.)"""

    def __init__(self, batches: BatchSampler, world: distributed.World) -> None:
        self.batches, self.world = batches, world

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            parts = np.array_split(np.asarray(batch), self.world.size)
            if len(parts[-1]) == 0:
                return  # a last batch smaller than the number of processes is left out: each process needs a part
            yield parts[self.world.rank].tolist()


def _loader(data: ImageBatches, batch_size: int, shuffle: bool, seed: int,
            world: distributed.World = distributed.World()) -> DataLoader:
    sampler = RandomSampler(data, generator=torch.Generator().manual_seed(seed)) if shuffle else SequentialSampler(data)
    batches = BatchSampler(sampler, batch_size, drop_last=False)
    return DataLoader(data, sampler=batches if world.size == 1 else ShardedBatches(batches, world), batch_size=None)


class Objective(Protocol):
    """A training loss other than the task's own (see auxcut.method.objectives): `columns` holds one row of per-image values
    for every image, and `loss` gets each batch's rows of it beside the logits and the targets."""

    columns: np.ndarray

    def loss(self, logits: torch.Tensor, y: torch.Tensor, columns: torch.Tensor) -> torch.Tensor: ...


class MaskedHeadsLoss(nn.Module):
    """The sum over heads of each head's mean cross-entropy on the images whose label it has (a head with no label in
    the batch adds nothing)."""

    def __init__(self, heads: Heads) -> None:
        super().__init__()
        self.heads = heads

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for h, part in enumerate(self.heads.split(logits)):
            known = y[:, h] != MISSING
            if bool(known.any()):
                total = total + nn.functional.cross_entropy(part[known], y[known, h])
        return total


def _loss_fn(task: Task) -> nn.Module:
    if isinstance(task, Heads):
        return MaskedHeadsLoss(task)
    return nn.CrossEntropyLoss() if task == "multiclass" else nn.BCEWithLogitsLoss()


def _task_output(logits: torch.Tensor, task: Task) -> torch.Tensor:
    """What the loss takes: a binary task's single logit column squeezed away, every other task's logits as they are."""
    return logits.squeeze(1) if task == "binary" else logits


def _correct(logits: torch.Tensor, y: torch.Tensor, task: Task) -> tuple[int, int]:
    """Right answers and answers counted: per image, or per known label of each head."""
    if isinstance(task, Heads):
        known = y != MISSING
        pred = torch.stack([part.argmax(1) for part in task.split(logits)], 1)
        return int(((pred == y) & known).sum()), int(known.sum())
    pred = logits.argmax(1) if task == "multiclass" else (logits.squeeze(1) > 0).long()
    return int((pred == y.long()).sum()), len(y)


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _parallel(model: nn.Module, world: distributed.World, device: torch.device) -> nn.Module:
    """What trains: the model itself in a lone process; under torchrun, DistributedDataParallel around it."""
    if world.size == 1:
        return model
    if device.type == "cuda":
        # SyncBatchNorm on GPUs: each process sees batch_size / N images of a batch (8 of 64 on 8 GPUs), and batch
        # norm over so few is noisier than in the one-process run the params are set for; syncing normalises by the
        # whole batch, for small collectives in every layer and step. PyTorch has it for GPUs only, so on CPUs (gloo)
        # each process normalises by its own part. On a copy: fit returns the plain net either way.
        model = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))
    # No broadcast of buffers before every step: rank 0's batch-norm running statistics are the ones kept, and fit
    # hands them to every process before each evaluation.
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None, broadcast_buffers=False)


@dataclass
class FitResult:
    model: nn.Module
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, float]:
        return self.history[self.best_epoch - 1]


class TrainSettings(Protocol):
    """A net's training params as the package's training functions read them (params.yaml base, aux, attributes,
    exits: auxcut.pipeline.params.TrainParams)."""

    width: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    augment: bool


def fit(model: nn.Module, images: np.ndarray, targets: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, *,
        task: Task, mean: np.ndarray, std: np.ndarray, epochs: int, batch_size: int, lr: float,
        weight_decay: float, patience: int, seed: int, device: torch.device, desc: str,
        augment: bool = False, objective: Objective | None = None) -> FitResult:
    """AdamW with cosine decay; keeps the weights of the epoch with the lowest val loss and stops
    after `patience` epochs without improvement.

    An `objective` replaces the task's loss in training only: val loss, and so the epoch kept, stay the task's own,
    so that every objective is selected by the same yardstick (how well the model does its task).

    Under torchrun every process trains on its part of each batch (ShardedBatches), so `batch_size` stays the
    global batch and the other params keep their meaning; DistributedDataParallel averages the gradients; the
    train and val sums are added over the processes, so all see the same history and stop at the same epoch.
    Every process returns the best model; rank 0 alone is meant to write it."""
    processes = distributed.world().size
    if batch_size < processes:
        raise AuxcutError(f"{desc}: batch_size {batch_size} is smaller than the {processes} processes sharing each batch")
    with distributed.process_group(device) as world:
        # Rank 0 is seeded as a lone process is; the others draw dropout masks and augmentations of their own.
        seed_everything(seed + world.rank, device)
        model = model.to(device)
        net = _parallel(model, world, device)
        trained = net.module if world.size > 1 else net
        dtype = np.float32 if task == "binary" else np.int64
        targets = targets.astype(dtype)
        columns = None if objective is None else objective.columns
        train = _loader(ImageBatches(images, targets, train_idx, mean, std, augment, seed + world.rank, columns),
                        batch_size, True, seed, world)
        val = _loader(ImageBatches(images, targets, np.array_split(val_idx, world.size)[world.rank], mean, std),
                      batch_size, False, seed)
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        loss_fn = _loss_fn(task)
        best_loss, best_state, best_epoch, history = float("inf"), None, 0, []
        # Progress on rank 0 only; there no disable= is passed, which would override TQDM_DISABLE.
        bar = tqdm(range(1, epochs + 1), desc=desc, unit="epoch", mininterval=1.0,
                   **({} if world.is_main else {"disable": True}))
        for epoch in bar:
            net.train()
            answers, correct, loss_sum, seen = 0, 0, 0.0, 0
            for step, (x, y, extra) in enumerate(train):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with _autocast(device):
                    logits = net(x)
                    out = _task_output(logits, task)
                    loss = loss_fn(out, y) if objective is None else objective.loss(out.float(), y, extra.to(device))
                # DDP averages the processes' gradients; weighting each by its share of the global batch makes that the
                # gradient of the batch's mean loss also when the parts differ in size. Exactly 1 in a lone process.
                share = len(y) * world.size / min(batch_size, len(train_idx) - step * batch_size)
                optimizer.zero_grad(set_to_none=True)
                (loss * share).backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(y)
                right, counted = _correct(logits, y, task)
                correct, answers, seen = correct + right, answers + counted, seen + len(y)
            scheduler.step()
            loss_sum, correct, answers, seen = distributed.sum_over_processes([loss_sum, correct, answers, seen], device)
            distributed.broadcast_buffers(trained)
            val_loss, val_acc = evaluate(trained, val, task, device)
            row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / max(answers, 1),
                   "val_loss": val_loss, "val_acc": val_acc, "lr": scheduler.get_last_lr()[0]}
            history.append(row)
            if not np.isfinite(row["train_loss"]):
                raise AuxcutError(f"{desc}: training diverged (loss {row['train_loss']}) at epoch {epoch}; lower the lr param")
            if val_loss < best_loss:
                best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(trained.state_dict())
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.3f}",
                            val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}", best=best_epoch)
            if epoch - best_epoch >= patience:
                break
        bar.close()
    model.load_state_dict(best_state)
    return FitResult(model=model, best_epoch=best_epoch, history=history)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, task: Task, device: torch.device) -> tuple[float, float]:
    """Mean loss and accuracy over the loader's images (for Heads, accuracy over every known label of every head);
    under torchrun, over every process's loader together."""
    model.eval()
    loss_fn = _loss_fn(task)
    answers, correct, loss_sum, seen = 0, 0, 0.0, 0
    for x, y, _ in loader:
        x, y = x.to(device), y.to(device)
        with _autocast(device):
            logits = model(x).float()
        loss_sum += float(loss_fn(_task_output(logits, task), y)) * len(y)
        right, counted = _correct(logits, y, task)
        correct, answers, seen = correct + right, answers + counted, seen + len(y)
    loss_sum, correct, answers, seen = distributed.sum_over_processes([loss_sum, correct, answers, seen], device)
    return loss_sum / seen, correct / max(answers, 1)


def normalised_batches(images: np.ndarray, mean: np.ndarray, std: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
    """uint8 images (N, C, H, W) in order, as float batches normalised as in training (on the CPU)."""
    data = ImageBatches(images, np.zeros(len(images), dtype=np.int64), np.arange(len(images)), mean, std)
    for x, _, _ in _loader(data, batch_size, False, 0):
        yield x


@torch.no_grad()
def predict_proba(model: nn.Module, images: np.ndarray, mean: np.ndarray, std: np.ndarray, *,
                  task: Task, batch_size: int, device: torch.device) -> np.ndarray:
    """Probabilities for every image: (N, K) softmax for multiclass, (N,) sigmoid for binary, and for Heads each
    head's softmax side by side, (N, sum of the sizes)."""
    model = model.to(device).eval()
    out = []
    for x in normalised_batches(images, mean, std, batch_size):
        with _autocast(device):
            logits = model(x.to(device)).float()
        if isinstance(task, Heads):
            probs = torch.cat([part.softmax(1) for part in task.split(logits)], 1)
        else:
            probs = logits.softmax(1) if task == "multiclass" else logits.squeeze(1).sigmoid()
        out.append(probs.cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def save_checkpoint(path: Path, models: nn.Module | list[nn.Module], **extra: Any) -> None:
    """One model (the base) or several (the auxes of a tree of cuts, in node order) in one file, with `extra`. Each
    model has an `arch`: what its builder needs to make it again (see load_checkpoint)."""
    models = models if isinstance(models, list) else [models]
    state = {"nets": [{"arch": m.arch, "state_dict": {k: v.cpu() for k, v in m.state_dict().items()}} for m in models],
             **extra}
    # Saved through a buffer: torch names the records inside the zip after the file, and the temporary file's
    # random name would make identical weights hash differently to DVC (and re-run the stages that read them).
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint(path: Path, builder: Callable[[dict[str, Any]], nn.Module] = build
                    ) -> tuple[list[nn.Module], dict[str, Any]]:
    """The models a checkpoint holds (in the order saved) and its whole state (`mean`, `std`, ...); `builder` makes
    an empty model from a saved arch (any arch of auxcut.nets.backbones unless told otherwise, e.g. auxcut.variants.exits.build for early exits)."""
    with reading(path):  # missing or truncated: one line naming the stage that trains it
        state = torch.load(path, map_location="cpu", weights_only=True)
    if "nets" not in state:
        raise AuxcutError(f"{path}: a checkpoint of an older auxcut (no 'nets'); run `dvc repro` to retrain it")
    models = []
    for net in state["nets"]:
        model = builder(net["arch"])
        model.load_state_dict(net["state_dict"])
        models.append(model)
    return models, state
