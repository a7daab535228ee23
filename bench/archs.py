"""The archs of auxcut.nets.backbones side by side: parameters, FLOPs per image (torch.utils.flop_counter) and
inference images/s on this machine's CPU, at digits' 8x8 (one channel) and MNIST's 28x28, for 10 classes; and the
two ways of splitting a torchvision net at its classifier (backbones' module surgery against torchvision's
feature_extraction), timed to build and to run.

    python bench/archs.py                      # the table of docs/nets.md
    python bench/archs.py --archs resnet18 convnet --seconds 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auxcut import AuxcutError  # noqa: E402
from auxcut.nets import backbones  # noqa: E402
from auxcut.nets.models import count_parameters  # noqa: E402

ARCHS = ["convnet", "pmnist_net", "resnet18", "mobilenet_v3_small", "efficientnet_b0", "alexnet", "vgg11_bn"]
SHAPES = [(1, 8, 8), (1, 28, 28)]


@torch.no_grad()
def images_per_second(net: torch.nn.Module, shape: tuple[int, int, int], seconds: float, batch: int = 64) -> float:
    """Forward passes on a batch of random images for about `seconds`, after one warm-up batch; best of two."""
    net.eval()
    x = torch.randn(batch, *shape)
    net(x)
    best = 0.0
    for _ in range(2):
        started, images = time.perf_counter(), 0
        while time.perf_counter() - started < seconds / 2:
            net(x)
            images += batch
        best = max(best, images / (time.perf_counter() - started))
    return best


def split_comparison(shape: tuple[int, int, int], seconds: float) -> list[str]:
    """resnet18's embedding two ways: backbones' `features` (the model with its fc taken out) and a
    torchvision feature extractor (an FX-traced copy returning the flatten node)."""
    from torchvision.models import feature_extraction, get_model

    started = time.perf_counter()
    net = backbones.make("resnet18", shape, 10, width=0, small_input=False)
    built_split = time.perf_counter() - started
    started = time.perf_counter()
    extractor = feature_extraction.create_feature_extractor(get_model("resnet18", num_classes=10),
                                                            return_nodes={"flatten": "embedding"})
    built_fx = time.perf_counter() - started
    x3 = (3, *shape[1:])
    extractor.eval()
    rate_split = _rate(net.eval().features, x3, seconds)
    rate_fx = _rate(lambda x: extractor(x)["embedding"], x3, seconds)
    return [f"resnet18 at {shape[1]}x{shape[2]}: split at the classifier built in {built_split:.2f} s "
            f"(includes the size check), {rate_split:,.0f} images/s; feature_extraction built in {built_fx:.2f} s "
            f"(model included), {rate_fx:,.0f} images/s"]


@torch.no_grad()
def _rate(fn, shape: tuple[int, int, int], seconds: float, batch: int = 64) -> float:
    x = torch.randn(batch, *shape)
    fn(x)
    started, images = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        fn(x)
        images += batch
    return images / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=ARCHS)
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per arch and size")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; inference, batches of 64, 10 classes")
    print("| arch | small-input stem | parameters at 8x8 / 28x28 | FLOPs per image at 8x8 | at 28x28 | "
          "images/s at 8x8 | at 28x28 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.archs:
        cells: dict[str, list[str]] = {"params": [], "flops": [], "rate": []}
        small = "-"
        for shape in SHAPES:
            try:
                net = backbones.make(name, shape, 10, width=32)
            except AuxcutError:
                cells["params"].append("-")
                cells["flops"].append("cannot take it")
                cells["rate"].append("-")
                continue
            small = "yes (auto)" if net.arch.get("small_input") else small
            cells["params"].append(f"{count_parameters(net):,}")
            cells["flops"].append(f"{backbones.flops_per_image(net) / 1e6:,.2f} M")
            cells["rate"].append(f"{images_per_second(net, shape, args.seconds):,.0f}")
        print(f"| `{name}` | {small} | {' / '.join(cells['params'])} | {' | '.join(cells['flops'])} | "
              f"{' | '.join(cells['rate'])} |", flush=True)
    for line in split_comparison((1, 64, 64), args.seconds):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
