"""Coarse classes made by merging the given ones (params.yaml data.coarse), so that fine-label discovery has fine
labels that are known: the pipeline trains on the coarse classes, and each image's original class stays in its row as
a hidden group attribute (the fine truth), which `discover` scores its fine labels against (ARI, NMI).

A grouping of the labels is also what an early exit predicts (exits.groups); both are checked by `check_groups`.
"""

from __future__ import annotations

import pandas as pd

from auxcut import AuxcutError
from auxcut.data.prepared import Dataset

FINE_COLUMN = "group_fine"  # the hidden original class, where no group attribute of the source already holds it


def check_groups(groups: list[list[int]], classes: list[str], key: str = "exits.groups") -> None:
    """A coarse grouping must put every class in exactly one of at least two groups, and be coarser than the classes."""
    flat = [c for group in groups for c in group]
    missing = sorted(set(range(len(classes))) - set(flat))
    extra = sorted({c for c in flat if not 0 <= c < len(classes)})
    repeated = sorted({c for c in flat if flat.count(c) > 1})
    if extra:
        raise AuxcutError(f"{key} names classes {extra} but the data has {len(classes)} (0..{len(classes) - 1})")
    if missing:
        raise AuxcutError(f"{key} leaves classes {missing} out of every group ({len(classes)} classes: "
                          f"each must be in exactly one group)")
    if repeated:
        raise AuxcutError(f"{key} puts classes {repeated} in more than one group")
    if not 2 <= len(groups) < len(classes):
        raise AuxcutError(f"{key} gives {len(groups)} groups for {len(classes)} classes: a coarse grouping "
                          f"needs at least 2 groups and fewer groups than classes")


def names(groups: list[list[int]], classes: list[str]) -> list[str]:
    """Each coarse class's name: its classes' names joined by '+' (e.g. 0+1+2+3+4)."""
    return ["+".join(classes[c] for c in group) for group in groups]


def merge(data: Dataset, groups: list[list[int]]) -> Dataset:
    """The data set with each image's label and class name those of its group (data.coarse). The original class
    name is kept as a group attribute: a source's own attribute where one already equals it image for image (digits'
    and MNIST's `digit`), else `group_fine`; `fine_attribute` names it."""
    check_groups(groups, data.classes, "data.coarse")
    coarse_of = {c: g for g, group in enumerate(groups) for c in group}
    fine_names = data.samples["label"].map(lambda c: data.classes[c])
    same = [c for c in data.group_columns if data.samples[c].astype(str).equals(fine_names)]
    samples = data.samples.copy()
    if not same:
        samples[FINE_COLUMN] = fine_names
    merged_names = names(groups, data.classes)
    samples["label"] = samples["label"].map(coarse_of).astype("int64")
    samples["class_name"] = pd.Series([merged_names[g] for g in samples["label"]], index=samples.index)
    attribute = (same[0] if same else FINE_COLUMN).removeprefix("group_")
    return Dataset(data.images, samples, merged_names, data.skipped, fine_attribute=attribute)
