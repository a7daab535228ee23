"""Checks of the heads variants' params (the aux as a head, attribute heads, early exits) against the data: the
classes and attributes a built-in source has, and coarse groupings. auxcut.pipeline.params runs them when
params.yaml is read, so a bad combination is one line before any stage trains anything."""

from __future__ import annotations

import math
from auxcut import AuxcutError
from auxcut.data import faces
from auxcut.data.coarse import check_groups  # noqa: F401 (one partition check for exits.groups and data.coarse)

DIGITS_CLASSES = [str(d) for d in range(10)]
# The group attributes each built-in source gives every image (auxcut.data.sources); an image folder's come from its CSV.
SOURCE_ATTRIBUTES = {"digits": ["digit"], "mnist": ["digit"], "utkface": ["age", "race", "gender"]}
SOURCE_CHANNELS = {"digits": 1, "mnist": 1, "utkface": 3}  # an image folder's images are read as RGB too, but its
# classes are only known once prepare reads it
DERIVED_ATTRIBUTES = ["cut", "class"]  # the top cut's side (data/relabeled.csv) and the class itself


def known_classes(source: str, scheme: str) -> list[str] | None:
    """The class names a built-in source has, whatever its images (None for an image folder: its sub-folders)."""
    if source in ("digits", "mnist"):
        return DIGITS_CLASSES
    if source == "utkface":
        return faces.class_names(scheme)
    return None


def conv_layers(image_size: int) -> int:
    """The conv layers of a full-view ConvNet at this image size: two per block (auxcut.nets.models.ConvNet)."""
    return 2 * max(1, int(math.log2(image_size / 4)))


def prefix_groups(classes: list[str]) -> list[list[int]]:
    """Classes grouped by their name before the first '/' (UTKFace: the age bucket), in order of first class."""
    groups: dict[str, list[int]] = {}
    for label, name in enumerate(classes):
        groups.setdefault(name.split("/", 1)[0], []).append(label)
    return list(groups.values())


def check_n_groups(n_groups: int, n_classes: int) -> None:
    """exits.groups clusters: the clusters of the confusion graph are a coarse exit's groups, so at least 2 and fewer
    than the classes."""
    if not 2 <= n_groups <= n_classes - 1:
        raise AuxcutError(f"exits.n_groups is {n_groups}, expected 2..{n_classes - 1} for {n_classes} classes: "
                          f"exits.groups clusters groups the classes into that many clusters of the confusion graph, "
                          f"at least 2 and fewer than the classes")


def check_attributes(names: list[str], available: list[str]) -> None:
    unknown = [n for n in names if n not in available + DERIVED_ATTRIBUTES]
    if unknown:
        raise AuxcutError(f"attributes.names has {', '.join(unknown)}, not an attribute of this data "
                          f"(expected some of: {', '.join(available + DERIVED_ATTRIBUTES)}; [] takes every one)")
