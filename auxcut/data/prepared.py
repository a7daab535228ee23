"""The prepared data set: the one compact form every source becomes, kept on disk for the later stages.

- images: uint8 array (N, C, H, W) at the chosen square size (memory-mapped when read back),
- samples: a table with one row per image: label, class name, split, and `group_*` attributes,
- classes: the class names, in label order;
- fine_attribute: where data.coarse merged the classes, the group attribute holding each image's original class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from auxcut.core.io import atomic_dir, read_json, reading, save_npy, write_csv, write_json

SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    images: np.ndarray
    samples: pd.DataFrame
    classes: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    fine_attribute: str | None = None

    @property
    def group_columns(self) -> list[str]:
        return [c for c in self.samples.columns if c.startswith("group_")]

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.samples["split"].to_numpy() == split)


def save(data: Dataset, out_dir: Path) -> None:
    """images.npy, samples.csv and meta.json, written together: the folder appears whole or not at all."""
    with atomic_dir(out_dir) as tmp:
        save_npy(tmp / "images.npy", data.images)
        write_csv(tmp / "samples.csv", data.samples)
        # fine_attribute only where classes were merged: the files of every other data set stay as they were
        fine = {} if data.fine_attribute is None else {"fine_attribute": data.fine_attribute}
        write_json(tmp / "meta.json", {"classes": data.classes, "image_shape": list(data.images.shape[1:]),
                                       "skipped": data.skipped, **fine})


def load(out_dir: Path) -> Dataset:
    """Read a prepared data set; images are memory-mapped, so large sets stream from disk."""
    with reading(out_dir / "meta.json"):
        meta = read_json(out_dir / "meta.json")
        classes, skipped, fine_attribute = list(meta["classes"]), meta["skipped"], meta.get("fine_attribute")
    with reading(out_dir / "samples.csv"):
        samples = pd.read_csv(out_dir / "samples.csv", dtype={"split": str})
    with reading(out_dir / "images.npy"):
        images = np.load(out_dir / "images.npy", mmap_mode="r")
    return Dataset(images=images, samples=samples, classes=classes, skipped=skipped, fine_attribute=fine_attribute)


def summary(data: Dataset) -> dict:
    """Counts for metrics/prepare.json: per split, per class and split, per group, and what was skipped."""
    s = data.samples
    out: dict = {
        "n_images": len(s),
        "n_classes": len(data.classes),
        "image_shape": list(data.images.shape[1:]),
        "split": {k: int(v) for k, v in s["split"].value_counts().reindex(SPLITS).items()},
        "skipped": int(sum(data.skipped.values())),
        "skipped_by_reason": data.skipped,
        "per_class": {c: {k: int(v) for k, v in row.items()} for c, row in
                      pd.crosstab(s["class_name"], s["split"]).reindex(columns=list(SPLITS)).iterrows()},
    }
    for column in data.group_columns:
        out[f"per_{column.removeprefix('group_')}"] = {str(k): int(v) for k, v in s[column].value_counts().sort_index().items()}
    if data.fine_attribute is not None:
        out["fine_attribute"] = data.fine_attribute
    return out
