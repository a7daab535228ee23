"""Occluded copies of the test split: parts of each image removed (set to 0, black) to test predictors on partial input.

The four cuts follow the partial-MNIST (PMNIST) test sets of Milošević & Racković (2019), written as fractions of
the image side so that they scale from 8x8 digits to 64x64 faces:
- horizontal: the top half removed;
- vertical: the left half removed;
- diagonal: two opposite quadrants removed (top right and bottom left);
- triple: three squares of 9/28 of the side removed, where the authors put them on MNIST's 28x28 grid (rows x
  columns [6, 15) x [6, 15), [18, 27) x [11, 20), [8, 17) x [17, 26));
and, beyond the paper, `patches`: a few random squares per image (seeded), of a given fraction of the side.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from auxcut import AuxcutError

Mask = np.ndarray  # bool (H, W) for a cut shared by every image, or (N, H, W) per image; True = removed

# (top, bottom, left, right) of each triple-cut square, in 28ths of the side
_TRIPLE_SQUARES = ((6, 15, 6, 15), (18, 27, 11, 20), (8, 17, 17, 26))


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's row and column centre as a fraction of the side, so a cut at 1/2 splits any size in two."""
    rows = (np.arange(height) + 0.5) / height
    cols = (np.arange(width) + 0.5) / width
    return rows[:, None], cols[None, :]


def horizontal(height: int, width: int) -> Mask:
    rows, cols = _grid(height, width)
    return np.broadcast_to(rows < 0.5, (height, width)).copy()


def vertical(height: int, width: int) -> Mask:
    rows, cols = _grid(height, width)
    return np.broadcast_to(cols < 0.5, (height, width)).copy()


def diagonal(height: int, width: int) -> Mask:
    rows, cols = _grid(height, width)
    return (rows < 0.5) != (cols < 0.5)


def triple(height: int, width: int) -> Mask:
    rows, cols = _grid(height, width)
    mask = np.zeros((height, width), dtype=bool)
    for top, bottom, left, right in _TRIPLE_SQUARES:
        mask |= (rows >= top / 28) & (rows < bottom / 28) & (cols >= left / 28) & (cols < right / 28)
    return mask


CUTS: dict[str, Callable[[int, int], Mask]] = {
    "horizontal": horizontal, "vertical": vertical, "diagonal": diagonal, "triple": triple}
SETS: tuple[str, ...] = (*CUTS, "patches")


def patches(n_images: int, height: int, width: int, count: int, size: float, seed: int) -> Mask:
    """`count` squares of side `size` x the image side per image, each placed uniformly at random (seeded) inside
    the image; they may overlap."""
    side_h, side_w = max(1, round(size * height)), max(1, round(size * width))
    rng = np.random.default_rng(seed)
    tops = rng.integers(0, height - side_h + 1, size=(n_images, count))
    lefts = rng.integers(0, width - side_w + 1, size=(n_images, count))
    rows, cols = np.arange(height), np.arange(width)
    inside_rows = (rows >= tops[..., None]) & (rows < tops[..., None] + side_h)  # (N, count, H)
    inside_cols = (cols >= lefts[..., None]) & (cols < lefts[..., None] + side_w)  # (N, count, W)
    return np.any(inside_rows[..., :, None] & inside_cols[..., None, :], axis=1)


def masks(names: list[str], n_images: int, height: int, width: int, patch_count: int, patch_size: float,
          seed: int) -> dict[str, Mask]:
    """The removed pixels of each named set. An occlusion that would leave some image with no pixel at all is an
    error naming the param: nothing can be classified from an empty image."""
    out: dict[str, Mask] = {}
    for name in names:
        if name in CUTS:
            mask = CUTS[name](height, width)
        elif name == "patches":
            mask = patches(n_images, height, width, patch_count, patch_size, seed)
        else:
            raise AuxcutError(f"occlusion.sets: unknown set {name!r}; expected some of {', '.join(SETS)}")
        kept = (~mask).reshape(-1, height * width).sum(1)
        if kept.min() == 0:
            where = "occlusion.patches (count x size)" if name == "patches" else f"occlusion.sets {name!r}"
            raise AuxcutError(f"{where}: removes the whole {height}x{width} image; nothing would be left to classify")
        out[name] = mask
    return out


def occlude(images: np.ndarray, mask: Mask) -> np.ndarray:
    """uint8 images (N, C, H, W) with the masked pixels set to 0 in every channel (a new array)."""
    mask = mask[:, None] if mask.ndim == 3 else mask[None, None]
    return np.where(mask, np.zeros((), dtype=images.dtype), images)


def removed_share(mask: Mask) -> float:
    """The mean share of each image's pixels that the mask removes."""
    return float(mask.mean())


def plot_examples(images: np.ndarray, sets: dict[str, Mask], title: str, n_examples: int = 4):
    """A grid: one row per example image, one column per set (the first column unoccluded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n_examples, len(images))
    names = ["none", *sets]
    fig, axes = plt.subplots(n, len(names), figsize=(1.6 * len(names), 1.6 * n + 0.4), squeeze=False)
    for row in range(n):
        for col, name in enumerate(names):
            image = images[row:row + 1]
            if name != "none":
                mask = sets[name]
                image = occlude(image, mask[row:row + 1] if mask.ndim == 3 else mask)
            pixels = image[0].transpose(1, 2, 0)
            ax = axes[row, col]
            ax.imshow(pixels[..., 0] if pixels.shape[2] == 1 else pixels, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
