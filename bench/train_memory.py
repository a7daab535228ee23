"""Peak memory of train_base's work on the full UTKFace set: issue 23 asks for at most 3 GiB RSS training resnet18 at
64 px on the CPU, with the images memory-mapped as the pipeline keeps them.

    python bench/train_memory.py                                  # resnet18, 64 px, every image of the archive
    python bench/train_memory.py --train-images 640 --val-images 640   # one short epoch: the quick measurement
    python bench/train_memory.py --archs convnet resnet18 --size 64

Phase 1 (a process of its own, so its decoding buffers never count): the archive decoded at --size, as `prepare` does,
into a prepared folder (kept in --prepared and reused). Phase 2, a fresh process per arch, does what `train_base`
does and reads its own peak resident set size (ru_maxrss) after each step:
1. imports and the net built: the baseline, measured in the same process;
2. the channel statistics (`training.channel_stats`, on a subsample of 4,096 train images in float64), then every
   image of the set read through the batches training and prediction use (`training.normalised_batches`), so
   each page of the memory-mapped file is resident from here on, as it is by the end of a full epoch;
3. `training.fit` on the prepared images memory-mapped: the channel statistics on the train split, then one epoch
   over --train-images train images (all by default) with the val pass over --val-images;
4. `training.predict_proba` over --predict-images images (the model's forward pass at inference batch size).
Batches are streamed and step 2 has already made every image resident, yet the peak still creeps up with the steps
an epoch takes (the allocator's pools, as measured: resnet18 2.64 GiB after 640 train images, 2.76 after 2,560), so the
aim is read on a full epoch (the default); --train-images gives a quick, lower reading. The table says what each run
read.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARCHIVE = Path(os.environ.get("AUXCUT_UTKFACE", Path(__file__).resolve().parents[2] / "shared/datasets/utkface/UTKFace.tar.gz"))
GIB = 1024 ** 3
AIM_GIB = 3.0


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def prepare(folder: Path, size: int) -> None:
    """The archive decoded at `size` into `folder`, as the prepare stage writes it."""
    from auxcut.data import prepared, sources

    ds = sources.prepare("utkface", ARCHIVE, "age_race", None, size, {"train": 0.6, "val": 0.2, "test": 0.2}, 0)
    prepared.save(ds, folder)


def measure(folder: Path, arch: str, width: int, train_images: int, val_images: int, predict_images: int,
            batch_size: int, augment: bool) -> dict:
    """Phase 2 in this process: the peak resident set after each step, in bytes."""
    import numpy as np
    import torch

    from auxcut.data import prepared
    from auxcut.nets import backbones, training
    from auxcut.nets.models import count_parameters

    ds = prepared.load(folder)
    labels = ds.samples["label"].to_numpy()
    torch.manual_seed(0)
    model = backbones.make(arch, tuple(ds.images.shape[1:]), len(ds.classes), width=width)
    peaks = {"built": peak_bytes()}
    train, val = ds.indices("train"), ds.indices("val")
    train, val = train[:train_images or len(train)], val[:val_images or len(val)]
    mean, std = training.channel_stats(ds.images, ds.indices("train"))  # float64 copies of up to 4,096 images
    peaks["channel statistics"] = peak_bytes()
    for _ in training.normalised_batches(ds.images, mean, std, 256):
        pass
    peaks["every image read"] = peak_bytes()
    start = time.perf_counter()
    result = training.fit(model, ds.images, labels, train, val, task="multiclass", mean=mean, std=std, epochs=1,
                          batch_size=batch_size, lr=0.003, weight_decay=1e-4, patience=8, seed=0,
                          device=torch.device("cpu"), desc=f"train_memory {arch}", augment=augment)
    peaks["fit"] = peak_bytes()
    fit_seconds = time.perf_counter() - start
    predict = np.arange(min(predict_images or len(labels), len(labels)))
    training.predict_proba(result.model, ds.images[predict], mean, std, task="multiclass", batch_size=batch_size,
                           device=torch.device("cpu"))
    peaks["predict_proba"] = peak_bytes()
    return {"arch": arch, "parameters": count_parameters(model), "images": len(labels),
            "image_shape": list(ds.images.shape[1:]), "images_bytes": int(ds.images.nbytes),
            "train_images": len(train), "val_images": len(val), "predict_images": len(predict),
            "fit_seconds": fit_seconds, "peaks": peaks, "threads": torch.get_num_threads()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["resnet18"], help="base.arch names, a row each")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16, help="convnet's width (other archs have none)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-images", type=int, default=0, help="train images of the one epoch (0: all)")
    parser.add_argument("--val-images", type=int, default=0, help="val images of its val pass (0: all)")
    parser.add_argument("--predict-images", type=int, default=0, help="images predict_proba runs on (0: all)")
    parser.add_argument("--augment", action="store_true", help="flips and shifts, as base.augment (the faces preset)")
    parser.add_argument("--prepared", type=Path, default=Path("/tmp/auxcut-bench-utkface"),
                        help="where the decoded set is kept (one folder per size)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child process: one arch, JSON on stdout
    parser.add_argument("--decode", action="store_true", help=argparse.SUPPRESS)  # the child process of phase 1
    args = parser.parse_args()
    folder = args.prepared / f"{args.size}px"
    if args.decode:
        prepare(folder, args.size)
        return 0
    if args.measure:
        print(json.dumps(measure(folder, args.measure, args.width, args.train_images, args.val_images,
                                 args.predict_images, args.batch_size, args.augment)))
        return 0
    if not ARCHIVE.is_file():
        print(f"bench/train_memory.py: error: no UTKFace archive at {ARCHIVE} (set AUXCUT_UTKFACE)", file=sys.stderr)
        return 2
    if not (folder / "meta.json").is_file():
        print(f"decoding {ARCHIVE} at {args.size} px into {folder} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, __file__, "--decode", "--size", str(args.size), "--prepared", str(args.prepared)],
                       check=True)
    rows = []
    for arch in args.archs:
        out = subprocess.run([sys.executable, __file__, "--measure", arch, "--size", str(args.size), "--width",
                              str(args.width), "--batch-size", str(args.batch_size), "--train-images",
                              str(args.train_images), "--val-images", str(args.val_images), "--predict-images",
                              str(args.predict_images), "--prepared", str(args.prepared),
                              *(["--augment"] if args.augment else [])],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    r0 = rows[0]
    print(f"UTKFace: {r0['images']:,} images at {r0['image_shape']}, {r0['images_bytes'] / GIB:.2f} GiB as uint8 "
          f"(memory-mapped); as float32 in RAM they would be {4 * r0['images_bytes'] / GIB:.2f} GiB. Batch "
          f"{args.batch_size}, {r0['threads']} threads, augment {str(args.augment).lower()}. Peak RSS (ru_maxrss) "
          f"after each step, GiB; the aim is at most {AIM_GIB:g} GiB.\n")
    print("| arch | parameters | train / val / predicted images | built (baseline) | channel statistics | every image "
          "read | training.fit | predict_proba | peak over the baseline | aim |\n|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = {k: v / GIB for k, v in r["peaks"].items()}
        top = max(p.values())
        print(f"| `{r['arch']}` | {r['parameters']:,} | {r['train_images']:,} / {r['val_images']:,} / "
              f"{r['predict_images']:,} | {p['built']:.2f} | {p['channel statistics']:.2f} | {p['every image read']:.2f} | "
              f"{p['fit']:.2f} | "
              f"{p['predict_proba']:.2f} | {top / p['built']:.1f}x | {'met' if top <= AIM_GIB else 'not met'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
