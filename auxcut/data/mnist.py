"""The official MNIST files: gzip-compressed idx, as Yann LeCun and Corinna Cortes distribute them (a copy sits at
../shared/datasets/mnist beside the repository). Reading only: auxcut.data.sources keeps the official train/test
parts apart, subsamples and carves val.

idx: a big-endian header (magic number, item count, then the image rows and columns), then uint8 items in order.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from auxcut import AuxcutError

SIDE = 28
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # idx: unsigned bytes, 3 dimensions (images) or 1 (labels)
# The official parts: name -> (images file, labels file, images in each)
PARTS = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
         "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000)}
FILES = [name for images, labels, _ in PARTS.values() for name in (images, labels)]


def _contents(path: Path) -> bytes:
    if not path.is_file():
        raise AuxcutError(f"data.path: {path} not found (data.source mnist needs the folder with the official files "
                          f"{', '.join(FILES)})")
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, or cut short
        raise AuxcutError(f"{path}: not a complete gzip file ({exc.__class__.__name__}: {exc}); expected the official "
                          f"MNIST idx file, gzip-compressed") from None


def _header(path: Path, data: bytes, magic: int, dims: int) -> tuple[int, ...]:
    """The header's count (and rows, columns), after checking the magic number."""
    size = 4 * (1 + dims)
    if len(data) < size:
        raise AuxcutError(f"{path}: {len(data)} bytes, shorter than an idx header ({size} bytes); truncated?")
    found, *shape = (int(v) for v in np.frombuffer(data, dtype=">u4", count=1 + dims))
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise AuxcutError(f"{path}: magic number {found}, expected {magic} (an MNIST idx {kind} file)")
    return tuple(shape)


def _body(path: Path, data: bytes, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise AuxcutError(f"{path}: the header says {shape[0]} items ({expected} bytes after the header), but "
                          f"{len(data) - offset} bytes follow; truncated or not an MNIST file")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def read_images(path: Path) -> np.ndarray:
    """uint8 (N, 1, 28, 28), as the file stores them."""
    data = _contents(path)
    count, rows, cols = _header(path, data, IMAGES_MAGIC, 3)
    if (rows, cols) != (SIDE, SIDE):
        raise AuxcutError(f"{path}: images of {rows}x{cols} pixels, expected MNIST's {SIDE}x{SIDE}")
    return _body(path, data, 16, (count, 1, SIDE, SIDE))


def read_labels(path: Path) -> np.ndarray:
    """int64 (N,), each a digit 0-9."""
    data = _contents(path)
    (count,) = _header(path, data, LABELS_MAGIC, 1)
    labels = _body(path, data, 8, (count,))
    if labels.size and labels.max() > 9:
        raise AuxcutError(f"{path}: label {int(labels.max())} at item {int(np.argmax(labels))}, expected digits 0-9")
    return labels.astype(np.int64)


def read(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """One official part ("train" or "t10k"): its images and labels, checked against each other and the official
    count (a file from another data set in idx form is refused, not read as MNIST)."""
    if not folder.is_dir():
        raise AuxcutError(f"data.path: {folder} is not a folder (data.source mnist needs the folder with the official "
                          f"files {', '.join(FILES)})")
    images_name, labels_name, expected = PARTS[part]
    images, labels = read_images(folder / images_name), read_labels(folder / labels_name)
    if len(images) != len(labels):
        raise AuxcutError(f"{folder}: {images_name} has {len(images)} images but {labels_name} has {len(labels)} "
                          f"labels; expected {expected} of each")
    if len(images) != expected:
        raise AuxcutError(f"{folder / images_name}: {len(images)} images, expected the official {expected}")
    return images, labels
