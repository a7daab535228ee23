"""Training throughput: auxcut's training loop against a bare PyTorch loop, same model, data and batch size.

    python bench/train_throughput.py                       # UTKFace at 64 px if the archive is beside the repo
    python bench/train_throughput.py --images 4000 --size 64 --width 16
    python bench/train_throughput.py --archs convnet resnet18 mobilenet_v3_small   # a row per arch (backbones)

The bare loop is the floor of overhead: the whole training set preloaded as one normalised float
tensor, a shuffled index, AdamW, nothing else. auxcut's loop streams uint8 batches from a (memory-
mapped) array, normalises per batch, keeps history, early stopping and a progress bar. Both run the
same number of epochs after one warm-up epoch each; the ratio is what the auxcut loop keeps of the
bare loop's images per second (target >= 0.9).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auxcut.data import sources  # noqa: E402
from auxcut.nets import backbones, training  # noqa: E402
from auxcut.nets.models import count_parameters  # noqa: E402

ARCHIVE = Path(os.environ.get("AUXCUT_UTKFACE", Path(__file__).resolve().parents[2] / "shared/datasets/utkface/UTKFace.tar.gz"))


def load(images: int, size: int) -> tuple[np.ndarray, np.ndarray, str]:
    if ARCHIVE.is_file():
        ds = sources.prepare("utkface", ARCHIVE, "age_race", None, size, {"train": 0.6, "val": 0.2, "test": 0.2}, 0,
                             max_per_class=max(1, images // 15))
        return ds.images, ds.samples["label"].to_numpy(), f"UTKFace {len(ds.images)} images"
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (images, 3, size, size), dtype=np.uint8), rng.integers(0, 15, images),
            f"random uint8 {images} images (no UTKFace archive at {ARCHIVE})")


def bare_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = loss_fn(model(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return epochs * len(x) / (time.perf_counter() - start)


def auxcut_loop(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, epochs: int, batch_size: int,
                mean: np.ndarray, std: np.ndarray, augment: bool) -> float:
    train = np.arange(len(images))
    val = train[: max(1, len(train) // 50)]  # a token val split (2%): the bare loop has none
    start = time.perf_counter()
    training.fit(model, images, labels, train, val, task="multiclass", mean=mean, std=std, epochs=epochs,
                 batch_size=batch_size, lr=1e-3, weight_decay=0.0, patience=epochs + 1, seed=0,
                 device=torch.device("cpu"), desc="auxcut loop", augment=augment)
    return epochs * len(images) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--archs", nargs="+", default=[backbones.CONVNET], help="base.arch names, a row each")
    args = parser.parse_args()
    images, labels, what = load(args.images, args.size)
    mean, std = training.channel_stats(images, np.arange(len(images)))
    x = (torch.from_numpy(images).float() / 255 - torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)) \
        / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    y = torch.from_numpy(labels.astype(np.int64))

    print(f"data: {what}; batch {args.batch_size}; {torch.get_num_threads()} threads; convnet width {args.width}",
          flush=True)
    print("| arch | parameters | bare PyTorch (preloaded float tensor), images/s | auxcut training.fit (incl. its val "
          "pass) | ratio to bare | training.fit, augment=true | ratio |\n|---|---|---|---|---|---|---|")
    for name in args.archs:
        def model() -> torch.nn.Module:
            torch.manual_seed(0)
            return backbones.make(name, (3, args.size, args.size), 15, width=args.width)

        bare_loop(model(), x, y, 1, args.batch_size)  # warm-up
        bare = bare_loop(model(), x, y, args.epochs, args.batch_size)
        ours = auxcut_loop(model(), images, labels, args.epochs, args.batch_size, mean, std, augment=False)
        augmented = auxcut_loop(model(), images, labels, args.epochs, args.batch_size, mean, std, augment=True)
        print(f"| `{name}` | {count_parameters(model()):,} | {bare:.0f} | {ours:.0f} | {ours / bare:.2f} | "
              f"{augmented:.0f} | {augmented / bare:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
