"""Occluded copies of the test split: parts of each image removed (set to 0, black) to test predictors on partial input.

The four cuts follow the partial-MNIST (PMNIST) test sets of Milošević & Racković (2019), written as fractions of
the image side so that they scale from 8x8 digits to 64x64 faces:
- horizontal: the top half removed;
- vertical: the left half removed;
- diagonal: two opposite quadrants removed (top right and bottom left);
- triple: "33% removed in three randomly placed squares", read as three non-overlapping 9x9 squares (9/28 of the
  side: the whole number of pixels nearest to a square of 11% of the area; together 243 of 784 pixels, 31%), the
  same three for every image, where the authors' set has them: rows x columns [6, 15) x [6, 15), [18, 27) x
  [11, 20), [8, 17) x [17, 26) of MNIST's 28x28 grid;
and, beyond the paper, `patches`: a few random squares per image (seeded), of a given fraction of the side.

At 28x28 the four cuts are the paper's sets pixel for pixel; at other sizes a pixel is removed when its centre lies
in the cut's region of the unit square.
"""

from __future__ import annotations

import math
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


def _patch_side(size: float, side: int) -> int:
    """A patch's side in pixels: `size` of the image's side, at least one pixel."""
    return max(1, round(size * side))


def patches(n_images: int, height: int, width: int, count: int, size: float, seed: int) -> Mask:
    """`count` squares of side `size` x the image side per image, each placed uniformly at random (seeded) inside
    the image; they may overlap."""
    side_h, side_w = _patch_side(size, height), _patch_side(size, width)
    rng = np.random.default_rng(seed)
    tops = rng.integers(0, height - side_h + 1, size=(n_images, count))
    lefts = rng.integers(0, width - side_w + 1, size=(n_images, count))
    rows, cols = np.arange(height), np.arange(width)
    inside_rows = (rows >= tops[..., None]) & (rows < tops[..., None] + side_h)  # (N, count, H)
    inside_cols = (cols >= lefts[..., None]) & (cols < lefts[..., None] + side_w)  # (N, count, W)
    return np.any(inside_rows[..., :, None] & inside_cols[..., None, :], axis=1)


def check_leaves_pixels(names: list[str], image_size: int, patch_count: int, patch_size: float) -> None:
    """An occlusion that could remove the whole image_size x image_size image is an error naming its params, made when
    params.yaml is read (before any training): nothing can be classified from an empty image. For `patches` that is
    whenever enough squares are drawn to cover the image in some placement: ceil(image_size / side)^2 squares of the
    side do, and fewer never can (no square holds two of the pixels at multiples of the side in both directions)."""
    for name in names:
        if name in CUTS and CUTS[name](image_size, image_size).all():
            raise AuxcutError(f"occlusion.sets {name!r}: removes the whole {image_size}x{image_size} image "
                              f"(data.image_size); nothing would be left to classify")
    if "patches" in names:
        side = _patch_side(patch_size, image_size)
        covering = math.ceil(image_size / side) ** 2
        if patch_count >= covering:
            raise AuxcutError(f"occlusion.patch_count {patch_count} x patch_size {patch_size:g}: {patch_count} random "
                              f"{side}x{side} squares can remove the whole {image_size}x{image_size} image "
                              f"(data.image_size), {covering} of them cover it; use at most {covering - 1} squares or "
                              f"smaller ones")


def masks(names: list[str], n_images: int, height: int, width: int, patch_count: int, patch_size: float,
          seed: int) -> dict[str, Mask]:
    """The removed pixels of each named set (the params are checked by check_leaves_pixels)."""
    out: dict[str, Mask] = {}
    for name in names:
        if name in CUTS:
            out[name] = CUTS[name](height, width)
        elif name == "patches":
            out[name] = patches(n_images, height, width, patch_count, patch_size, seed)
        else:
            raise AuxcutError(f"occlusion.sets: unknown set {name!r}; expected some of {', '.join(SETS)}")
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
