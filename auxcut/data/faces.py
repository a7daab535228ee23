"""UTKFace file names and the class schemes built from them.

Names look like `age_gender_race_datetime.jpg.chip.jpg`; four in the official archive are
malformed (three lack the race field, one a dot) and are skipped and counted, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

RACES = ("White", "Black", "Asian", "Indian", "Others")
GENDERS = ("male", "female")
AGE_BUCKETS = ("0-25", "26-45", "46+")

ClassScheme = Literal["age", "age_race", "age_race_gender"]

# One file in the official archive has a stray space before ".jpg"; its fields are intact, so it is kept.
_NAME = re.compile(r"^(?P<age>\d{1,3})_(?P<gender>\d+)_(?P<race>\d+)_(?P<stamp>\d+) ?\.jpg\.chip\.jpg$")


@dataclass(frozen=True)
class FaceLabels:
    age: int
    gender: int
    race: int

    @property
    def age_bucket(self) -> int:
        return 0 if self.age <= 25 else 1 if self.age <= 45 else 2


def parse_name(name: str) -> FaceLabels | str:
    """The labels in a UTKFace file name, or a short reason why the name is malformed."""
    match = _NAME.match(name)
    if match is None:
        fields = name.split("_")
        if len(fields) < 4:
            return "missing field"
        return "bad format"
    age, gender, race = int(match["age"]), int(match["gender"]), int(match["race"])
    if gender >= len(GENDERS):
        return "unknown gender"
    if race >= len(RACES):
        return "unknown race"
    if age > 130:
        return "implausible age"
    return FaceLabels(age=age, gender=gender, race=race)


def class_names(scheme: ClassScheme) -> list[str]:
    if scheme == "age":  # the coarse classes of fine-label discovery: race and gender hidden from the method
        return list(AGE_BUCKETS)
    if scheme == "age_race":
        return [f"{a}/{r}" for a in AGE_BUCKETS for r in RACES]
    return [f"{a}/{r}/{g}" for a in AGE_BUCKETS for r in RACES for g in GENDERS]


def class_index(labels: FaceLabels, scheme: ClassScheme) -> int:
    """Index into class_names(scheme): age bucket major, then race, then gender."""
    if scheme == "age":
        return labels.age_bucket
    index = labels.age_bucket * len(RACES) + labels.race
    if scheme == "age_race_gender":
        index = index * len(GENDERS) + labels.gender
    return index
