from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from auxcut import AuxcutError
from auxcut.data import prepared, faces, sources
from conftest import DIGITS, UTKFACE_ARCHIVE

SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}


def test_digits_prepare_is_stratified_and_seeded():
    ds = sources.prepare("digits", DIGITS, "age_race", None, 8, SPLIT, seed=0)
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.dtype == np.uint8
    assert ds.images.max() == 255
    counts = ds.samples["split"].value_counts()
    assert abs(counts["train"] - 0.6 * 1797) <= 2 and abs(counts["test"] - 0.2 * 1797) <= 2
    shares = pd.crosstab(ds.samples["label"], ds.samples["split"], normalize="index")
    assert (shares["val"] - 0.2).abs().max() < 0.03  # every class in about the same proportion
    again = sources.prepare("digits", DIGITS, "age_race", None, 8, SPLIT, seed=0)
    other = sources.prepare("digits", DIGITS, "age_race", None, 8, SPLIT, seed=1)
    assert (again.samples["split"] == ds.samples["split"]).all()
    assert (other.samples["split"] != ds.samples["split"]).any()
    assert ds.group_columns == ["group_digit"]


def test_repository_digits_are_scikit_learns():
    from sklearn.datasets import load_digits

    ds = sources.load_digits(DIGITS, 8)
    bunch = load_digits()
    assert np.array_equal(ds.images[:, 0], (bunch.images * (255.0 / 16.0)).round().astype(np.uint8))
    assert np.array_equal(ds.samples["label"], bunch.target)


def test_bad_digits_csv_is_one_line(tmp_path):
    bad = tmp_path / "digits.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(AuxcutError, match=r"data\.path: .*digits.csv is not a digits CSV .*got 3 columns") as info:
        sources.prepare("digits", bad, "age_race", None, 8, SPLIT, seed=0)
    assert "\n" not in str(info.value)
    with pytest.raises(AuxcutError, match=r"data\.path: .*nowhere.csv does not exist \(data.source=digits needs a digits CSV\)"):
        sources.prepare("digits", tmp_path / "nowhere.csv", "age_race", None, 8, SPLIT, seed=0)


@pytest.mark.parametrize(
    ("cell", "message"),
    [("nan", r"row 2, column 5: nan \(pixels are whole numbers 0-16\)"),
     ("17", r"row 2, column 5: 17 \(pixels are whole numbers 0-16\)"),
     ("11", r"row 2, column 65: 11 \(the digit is a whole number 0-9\)")],
)
def test_digits_csv_names_the_bad_cell(tmp_path, cell, message):
    rows = [["0"] * 64 + ["3"] for _ in range(3)]
    rows[1][64 if cell == "11" else 4] = cell
    bad = tmp_path / "digits.csv"
    bad.write_text("".join(",".join(row) + "\n" for row in rows))
    with pytest.raises(AuxcutError, match=rf"data\.path: .*digits\.csv is not a digits CSV: {message}") as info:
        sources.load_digits(bad, 8)
    assert "\n" not in str(info.value)


def test_digits_resize():
    ds = sources.prepare("digits", DIGITS, "age_race", None, 16, SPLIT, seed=0)
    assert ds.images.shape[1:] == (1, 16, 16)


def test_save_load_roundtrip(tmp_path):
    ds = sources.prepare("digits", DIGITS, "age_race", None, 8, SPLIT, seed=0)
    prepared.save(ds, tmp_path / "prepared")
    back = prepared.load(tmp_path / "prepared")
    assert np.array_equal(np.asarray(back.images), ds.images)
    assert back.classes == ds.classes
    assert (back.samples["split"] == ds.samples["split"]).all()
    assert list(back.indices("test")) == list(ds.indices("test"))
    assert sorted(p.name for p in (tmp_path / "prepared").iterdir()) == ["images.npy", "meta.json", "samples.csv"]


def test_load_missing_says_run_prepare(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AuxcutError, match=r"data/prepared/meta\.json: not found \(stage prepare writes it: run `dvc repro prepare`\)"):
        prepared.load(Path("data/prepared"))


def test_truncated_prepared_images_name_the_file_and_the_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = sources.prepare("digits", DIGITS, "age_race", None, 8, SPLIT, seed=0, max_per_class=5)
    prepared.save(ds, Path("data/prepared"))
    images = Path("data/prepared/images.npy")
    images.write_bytes(images.read_bytes()[:1000])  # a disk that filled up, a copy cut short
    with pytest.raises(AuxcutError, match=r"^data/prepared/images\.npy: cannot be read \(ValueError: .*\); it may be "
                                          r"truncated: re-run `dvc repro prepare`$"):
        prepared.load(Path("data/prepared"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("26_1_2_20170116174525125.jpg.chip.jpg", faces.FaceLabels(26, 1, 2)),
        ("1_0_0_20161219140623097.jpg.chip.jpg", faces.FaceLabels(1, 0, 0)),
        ("116_1_4_20170120134921760.jpg.chip.jpg", faces.FaceLabels(116, 1, 4)),
        ("39_1_20170116174525125.jpg.chip.jpg", "missing field"),
        ("55_0_0_20170116232725357jpg.chip.jpg", "bad format"),
        ("24_0_1_20170116220224657 .jpg.chip.jpg", faces.FaceLabels(24, 0, 1)),
        ("30_0_7_20170116232725357.jpg.chip.jpg", "unknown race"),
        ("30_3_1_20170116232725357.jpg.chip.jpg", "unknown gender"),
    ],
)
def test_parse_name(name, expected):
    assert faces.parse_name(name) == expected


def test_class_schemes_cover_all_combinations():
    for scheme, n in (("age_race", 15), ("age_race_gender", 30)):
        names = faces.class_names(scheme)
        assert len(names) == n == len(set(names))
        seen = set()
        for age in (10, 25, 26, 45, 46, 90):
            for race in range(5):
                for gender in range(2):
                    labels = faces.FaceLabels(age, gender, race)
                    k = faces.class_index(labels, scheme)
                    name = names[k]
                    assert name.startswith(faces.AGE_BUCKETS[labels.age_bucket] + "/" + faces.RACES[race])
                    if scheme == "age_race_gender":
                        assert name.endswith(faces.GENDERS[gender])
                    seen.add(k)
        assert seen == set(range(n))
    assert faces.FaceLabels(25, 0, 0).age_bucket == 0 and faces.FaceLabels(26, 0, 0).age_bucket == 1
    assert faces.FaceLabels(45, 0, 0).age_bucket == 1 and faces.FaceLabels(46, 0, 0).age_bucket == 2


def _jpeg(rng: np.random.Generator, size: int = 24) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def utkface_fixture(tmp_path) -> Path:
    """Six generated faces per (age bucket, race, gender) in UTKFace's naming scheme, plus malformed names."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "UTKFace"
    folder.mkdir()
    for age in (20, 30, 60):
        for race in range(5):
            for gender in range(2):
                for k in range(6):
                    (folder / f"{age + k}_{gender}_{race}_2017011617452{k}{race}{gender}.jpg.chip.jpg").write_bytes(_jpeg(rng))
    (folder / "39_1_20170116174525125.jpg.chip.jpg").write_bytes(_jpeg(rng))
    (folder / "55_0_0_20170116232725357jpg.chip.jpg").write_bytes(_jpeg(rng))
    return folder


def test_utkface_directory_and_archive_agree(utkface_fixture, tmp_path):
    archive = tmp_path / "UTKFace.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(utkface_fixture, arcname="UTKFace")
    from_dir = sources.prepare("utkface", utkface_fixture, "age_race_gender", None, 16, SPLIT, seed=0)
    from_tar = sources.prepare("utkface", archive, "age_race_gender", None, 16, SPLIT, seed=0)
    assert from_dir.images.shape == (180, 3, 16, 16)
    assert len(from_dir.classes) == 30
    assert from_dir.skipped == {"malformed name: missing field": 1, "malformed name: bad format": 1}
    order = from_tar.samples["source"].argsort().to_numpy()
    assert np.array_equal(from_dir.images, from_tar.images[order])
    assert set(from_dir.group_columns) == {"group_race", "group_gender", "group_age"}
    assert from_dir.samples["group_race"].value_counts().to_dict() == {r: 36 for r in faces.RACES}
    summary = prepared.summary(from_dir)
    assert summary["skipped"] == 2 and summary["per_gender"] == {"female": 90, "male": 90}


def test_utkface_15_classes(utkface_fixture):
    ds = sources.prepare("utkface", utkface_fixture, "age_race", None, 16, SPLIT, seed=0)
    assert len(ds.classes) == 15
    assert np.bincount(ds.samples["label"], minlength=15).tolist() == [12] * 15
    row = ds.samples[ds.samples["source"].str.startswith("60_1_3_")].iloc[0]
    assert row["class_name"] == "46+/Indian" and row["group_gender"] == "female"


def test_missing_path_and_unreadable_image(tmp_path, utkface_fixture):
    with pytest.raises(AuxcutError, match=r"data\.path: .*nowhere does not exist"):
        sources.prepare("utkface", tmp_path / "nowhere", "age_race", None, 16, SPLIT, seed=0)
    bad = utkface_fixture / "30_1_1_20170116174525999.jpg.chip.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(AuxcutError, match=r"30_1_1_20170116174525999\.jpg\.chip\.jpg: cannot read image"):
        sources.prepare("utkface", utkface_fixture, "age_race", None, 16, SPLIT, seed=0)


def test_no_faces_found(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AuxcutError, match="no UTKFace images"):
        sources.prepare("utkface", tmp_path / "empty", "age_race", None, 16, SPLIT, seed=0)


@pytest.fixture
def imagefolder(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    root = tmp_path / "folder"
    for name in ("cat", "dog", "owl"):
        (root / name).mkdir(parents=True)
        for k in range(5):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / name / f"{k}.png")
    return root


def test_imagefolder_with_and_without_groups(imagefolder, tmp_path):
    plain = sources.prepare("imagefolder", imagefolder, "age_race", None, 8, SPLIT, seed=0)
    assert plain.classes == ["cat", "dog", "owl"] and plain.images.shape == (15, 3, 8, 8)
    assert plain.group_columns == ["group_class"]
    groups = tmp_path / "groups.csv"
    rows = [{"path": f"{c}/{k}.png", "site": "A" if k % 2 else "B"} for c in plain.classes for k in range(5)]
    pd.DataFrame(rows).to_csv(groups, index=False)
    grouped = sources.prepare("imagefolder", imagefolder, "age_race", groups, 8, SPLIT, seed=0)
    assert grouped.group_columns == ["group_site"]
    assert grouped.samples.set_index("source").loc["dog/3.png", "group_site"] == "A"
    rows[0]["site"] = None  # a blank attribute becomes its own group
    pd.DataFrame(rows).to_csv(groups, index=False)
    blank = sources.prepare("imagefolder", imagefolder, "age_race", groups, 8, SPLIT, seed=0)
    assert blank.samples.set_index("source").loc["cat/0.png", "group_site"] == "(missing)"
    pd.DataFrame(rows[1:]).to_csv(groups, index=False)
    with pytest.raises(AuxcutError, match=r"data\.groups_csv: .*no row for 1 image"):
        sources.prepare("imagefolder", imagefolder, "age_race", groups, 8, SPLIT, seed=0)


def test_groups_csv_without_group_columns_groups_by_class(imagefolder):
    """data/no_groups.csv, params.yaml's default: a dep of prepare that names a file, and no group attributes."""
    from conftest import REPO

    plain = sources.prepare("imagefolder", imagefolder, "age_race", REPO / "data" / "no_groups.csv", 8, SPLIT, seed=0)
    assert plain.group_columns == ["group_class"]
    assert (plain.samples["group_class"] == plain.samples["class_name"]).all()


def test_groups_csv_with_groups_is_refused_for_a_source_with_its_own(tmp_path):
    from conftest import REPO

    digits = sources.prepare("digits", DIGITS, "age_race", REPO / "data" / "no_groups.csv", 8, SPLIT, seed=0)
    assert digits.group_columns == ["group_digit"]
    groups = tmp_path / "groups.csv"
    groups.write_text("path,site\ndigits[0],A\n")
    with pytest.raises(AuxcutError, match=r"data\.groups_csv: .*groups\.csv has group columns \(site\), but data\.source "
                                          r"digits brings its own groups"):
        sources.prepare("digits", DIGITS, "age_race", groups, 8, SPLIT, seed=0)


def test_imagefolder_path_must_be_a_folder(imagefolder):
    a_file = imagefolder / "cat" / "0.png"
    with pytest.raises(AuxcutError, match=r"data\.path: .*0\.png is a file; data\.source imagefolder needs a folder"):
        sources.prepare("imagefolder", a_file, "age_race", None, 8, SPLIT, seed=0)


def test_imagefolder_with_one_class_is_refused_before_training(imagefolder):
    for name in ("dog", "owl"):
        for image in (imagefolder / name).iterdir():
            image.unlink()
        (imagefolder / name).rmdir()
    with pytest.raises(AuxcutError, match=r"data\.path: .*folder has 1 class \(cat\); the method needs at least 2"):
        sources.prepare("imagefolder", imagefolder, "age_race", None, 8, SPLIT, seed=0)


def test_decompression_bomb_is_one_line(imagefolder, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # the 12x12 images stand in for a 20000x20000 one
    with pytest.raises(AuxcutError, match=r"cat/0\.png: cannot read image \(DecompressionBombError: Image size \(144 "
                                          r"pixels\) exceeds limit of 100 pixels, could be decompression bomb"):
        sources.prepare("imagefolder", imagefolder, "age_race", None, 8, SPLIT, seed=0)


def test_class_too_small_for_three_splits(imagefolder):
    for k in range(3):
        (imagefolder / "owl" / f"{k}.png").unlink()
    with pytest.raises(AuxcutError, match="class 'owl' has 2 image"):
        sources.prepare("imagefolder", imagefolder, "age_race", None, 8, SPLIT, seed=0)


@pytest.mark.skipif(not UTKFACE_ARCHIVE.is_file(), reason="the shared UTKFace archive is not beside the repository")
def test_real_utkface_names():
    """Every name in the shared archive parses or is one of the four known malformed ones; counts match its README."""
    races, genders, malformed = np.zeros(5, int), np.zeros(2, int), []
    with tarfile.open(UTKFACE_ARCHIVE, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".jpg"):
                continue
            labels = faces.parse_name(Path(member.name).name)
            if isinstance(labels, str):
                malformed.append(Path(member.name).name)
                continue
            races[labels.race] += 1
            genders[labels.gender] += 1
    assert len(malformed) == 4
    assert sorted(m[:8] for m in malformed) == ["39_1_201", "55_0_0_2", "61_1_201", "61_1_201"]
    # The README counts the dot-less 55_0_0 (White, male) among its labels; we skip it as malformed.
    assert races.tolist() == [10078 - 1, 4525, 3434, 3975, 1692]
    assert genders.tolist() == [12390 - 1, 11314]


def test_too_few_images_for_the_split(utkface_fixture):
    with pytest.raises(AuxcutError, match=r"data\.split: 180 images in 30 classes cannot be split"):
        sources.prepare("utkface", utkface_fixture, "age_race_gender", None, 16, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)


def test_editing_the_groups_csv_makes_prepare_stale(tmp_path):
    """data.groups_csv is a dep of prepare (dvc.yaml), as data.path is: fairness numbers by group cannot go stale."""
    from conftest import copy_repository, repro, run

    repo = tmp_path / "repo"
    env = copy_repository(repo, data__groups_csv="groups.csv", tracking__enabled=False)
    (repo / "groups.csv").write_text("path\n")  # no group columns: digits keeps its own groups
    repro(repo, env, "prepare")
    assert "up to date" in run(["dvc", "status", "prepare"], repo, env).stdout
    (repo / "groups.csv").write_text("path\ndigits[0]\n")
    status = run(["dvc", "status", "prepare"], repo, env)
    assert status.returncode == 0 and re.search(r"modified:\s+groups\.csv", status.stdout), status.stdout + status.stderr
