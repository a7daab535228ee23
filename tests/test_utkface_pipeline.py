"""The pipeline on real faces: a 600-image subset (40 per class) of the shared UTKFace archive."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import STAGES, UTKFACE_ARCHIVE, copy_repository, ran_stages, repro, run, set_params

pytestmark = pytest.mark.skipif(not UTKFACE_ARCHIVE.is_file(), reason="the shared UTKFace archive is not beside the repository")


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    repo = tmp_path_factory.mktemp("faces") / "repo"
    env = copy_repository(repo, data__source="utkface", data__path=str(UTKFACE_ARCHIVE), data__classes="age_race",
                          data__image_size=32, data__max_per_class=40, base__width=8, base__epochs=2,
                          base__augment=True, aux__width=2, aux__epochs=2, attributes__epochs=2,
                          exits__epochs=2, exits__groups="prefix", exits__after=[2], fine__epochs=2,
                          fine__finetune_epochs=2, discovery__augmentations=2, fairness__bootstrap=100,
                          tracking__enabled=False)  # the real faces through every stage; MLflow is tested on digits
    result = run(["dvc", "repro"], repo, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo, result.stdout, env


def metrics(repo, stage: str) -> dict:
    return json.loads((repo / "metrics" / f"{stage}.json").read_text())


def test_subset_runs_every_stage(faces):
    repo, output, _ = faces
    assert ran_stages(output) == STAGES
    # the face attributes and the cut get a head each; the age-bucket exit names the three buckets
    assert metrics(repo, "train_attributes")["attributes"] == ["race", "gender", "age", "cut"]
    assert metrics(repo, "train_exits")["exits"][0]["groups"] == [
        "+".join(f"{age}/{race}" for race in ("White", "Black", "Asian", "Indian", "Others"))
        for age in ("0-25", "26-45", "46+")]


def test_prepare_counts_classes_groups_and_malformed_names(faces):
    repo, *_ = faces
    prep = metrics(repo, "prepare")
    assert prep["n_images"] == 600 and prep["n_classes"] == 15 and prep["image_shape"] == [3, 32, 32]
    assert prep["skipped"] == 4  # the archive's malformed names, counted even though not needed
    assert all(sum(per.values()) == 40 for per in prep["per_class"].values())
    assert prep["per_race"] == {race: 120 for race in ("Asian", "Black", "Indian", "Others", "White")}
    assert sum(prep["per_gender"].values()) == 600


def test_fairness_reports_race_gender_and_age(faces):
    repo, *_ = faces
    fair = metrics(repo, "fairness")
    for name in ("base", "control", "stacked"):
        groups = fair["predictors"][name]["groups"]
        assert set(groups) == {"race", "gender", "age"}
        assert set(groups["race"]["by_group"]) == {"Asian", "Black", "Indian", "Others", "White"}
        assert sum(g["n"] for g in groups["gender"]["by_group"].values()) == fair["test_rows"] == 120
    cut = metrics(repo, "maxcut")
    assert cut["n"] == 15 and cut["method"] == "exact" and cut["cut"] <= cut["sdp_bound"] * (1 + 1e-9)
    assert metrics(repo, "train_aux")["base_over_aux_parameters"] >= 10


def test_age_bucket_classes_hide_race_and_gender_from_discovery(faces):
    # Last in this file: it turns the copy into the discovery setting (the age bucket is the class).
    repo, _, env = faces
    set_params(repo, data__classes="age", data__max_per_class=150, exits__groups="tree")  # 3 age classes: no prefix
    output = repro(repo, env, "discover")
    assert ran_stages(output) == ["prepare", "train_base", "discover"]
    found = metrics(repo, "discover")
    assert found["coarse_classes"] == 3 and found["train_images"] == 270
    assert {"race", "gender", "race x gender"} <= set(found["agreement"])
    assert found["class_attributes"] == ["age"]  # the age bucket is the class; race and gender are hidden
    assert all(0 <= a["nmi"] <= 1 for a in found["agreement"].values())
    assert sum(c["kept"] for c in found["by_coarse_class"].values()) == found["kept"] == 135
    # every face of every split has the nearest fine label of each age bucket, one of that bucket's own
    fine = pd.read_csv(repo / "data" / "fine_labels.csv")
    assert len(fine) == 450
    owner = [name.rsplit("/", 1)[0] for name in found["names"]]
    for c, name in enumerate(found["by_coarse_class"]):  # in class order
        assert {owner[k] for k in fine[f"nearest_in_{c}"]} == {name}
