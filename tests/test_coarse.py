"""Coarse classes merged from given ones (data.coarse): the merged labels, the original class kept as a hidden group
attribute, and the merges that are not a partition. On digits: seconds. (Discovery on merged digits, scored against
the hidden digits, is in test_discovery.py, beside the other UMAP runs: numba compiles UMAP once per test process.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from auxcut import AuxcutError
from auxcut.data import coarse, prepared, sources
from auxcut.pipeline.params import load_params
from conftest import DIGITS, REPO

SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}
HALVES = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_merged_digits_train_on_the_halves_and_keep_the_digit_hidden(tmp_path):
    plain = sources.prepare("digits", DIGITS, "age_race", None, 8, SPLIT, seed=0)
    merged = sources.prepare("digits", DIGITS, "age_race", None, 8, SPLIT, seed=0, coarse_groups=HALVES)
    assert merged.classes == ["0+1+2+3+4", "5+6+7+8+9"]
    digit = plain.samples["label"].to_numpy()
    assert np.array_equal(merged.samples["label"].to_numpy(), (digit >= 5).astype(int))
    assert merged.samples["class_name"].tolist() == [merged.classes[int(d >= 5)] for d in digit]
    # the digit stays as it was, a group attribute the training never reads; no second copy of it
    assert merged.group_columns == ["group_digit"] and merged.fine_attribute == "digit"
    assert merged.samples["group_digit"].tolist() == [str(d) for d in digit]
    # the same images in each split as without the merge (stratified by the digits), and the same pixels
    assert merged.samples["split"].tolist() == plain.samples["split"].tolist()
    assert np.array_equal(merged.images, plain.images)
    prepared.save(merged, tmp_path / "merged")
    back = prepared.load(tmp_path / "merged")
    assert back.fine_attribute == "digit" and back.classes == merged.classes
    assert prepared.summary(back)["fine_attribute"] == "digit"
    prepared.save(plain, tmp_path / "plain")  # an unmerged data set's files are as they were before data.coarse
    assert "fine_attribute" not in (tmp_path / "plain" / "meta.json").read_text()
    assert prepared.load(tmp_path / "plain").fine_attribute is None and "fine_attribute" not in prepared.summary(plain)


def test_a_source_without_the_class_as_an_attribute_gets_group_fine():
    samples = pd.DataFrame({"source": list("abcdef"), "label": [0, 1, 2, 3, 2, 0], "group_site": list("xyxyxy")})
    data = prepared.Dataset(np.zeros((6, 1, 4, 4), np.uint8), samples, ["cat", "dog", "owl", "emu"])
    merged = coarse.merge(data, [[0, 3], [1, 2]])
    assert merged.classes == ["cat+emu", "dog+owl"] and merged.fine_attribute == "fine"
    assert merged.samples["label"].tolist() == [0, 1, 1, 0, 1, 0]
    assert merged.samples["group_fine"].tolist() == ["cat", "dog", "owl", "emu", "owl", "cat"]
    assert merged.samples["group_site"].tolist() == list("xyxyxy")
    assert data.samples["label"].tolist() == [0, 1, 2, 3, 2, 0]  # the given data set is left as it was


@pytest.mark.parametrize("groups, message", [
    ([[0, 1, 2, 3], [5, 6, 7, 8, 9]], r"data\.coarse leaves classes \[4\] out of every group"),
    ([[0, 1, 2, 3, 4], [4, 5, 6, 7, 8, 9]], r"data\.coarse puts classes \[4\] in more than one group"),
    ([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]], r"data\.coarse names classes \[10\] but the data has 10"),
    ([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]], r"data\.coarse: a merge needs at least 2 groups \(or \[\] for none\)"),
    ([[d] for d in range(10)], r"data\.coarse gives 10 groups for 10 classes"),
])
def test_a_merge_that_is_not_a_partition_is_one_line_when_params_are_read(tmp_path, groups, message):
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["data"]["coarse"] = groups
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(AuxcutError, match=message) as info:
        load_params(path)
    assert "\n" not in str(info.value)


def test_params_check_exits_groups_against_the_merged_classes(tmp_path):
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["data"]["coarse"] = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    data["exits"]["groups"] = [[0, 1], [2, 3, 4]]  # a grouping of the 5 merged classes
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_params(path).data.coarse[4] == [8, 9]
    data["exits"]["groups"] = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]  # the digits' classes, not the merged ones
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(AuxcutError, match=r"exits\.groups names classes \[5, 6, 7, 8, 9\] but the data has 5"):
        load_params(path)


def test_an_image_folder_merge_is_checked_when_prepare_reads_its_classes():
    samples = pd.DataFrame({"source": list("abc"), "label": [0, 1, 2]})
    data = prepared.Dataset(np.zeros((3, 1, 4, 4), np.uint8), samples, ["cat", "dog", "owl"])
    with pytest.raises(AuxcutError, match=r"^data\.coarse names classes \[3\] but the data has 3 \(0\.\.2\)$"):
        coarse.merge(data, [[0, 1], [2, 3]])
