from __future__ import annotations

import pytest
import yaml

from auxcut import AuxcutError
from auxcut.pipeline.params import load_params
from conftest import REPO


def write(tmp_path, data) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def test_repository_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "digits"
    assert params.aux.width < params.base.width
    assert params.gates.cut_over_bound_min == 0.878  # params.yaml `validate:`, by its alias


def _unknown_key(p):
    p["base"]["epoch"] = 3


def _wrong_type(p):
    p["base"]["epochs"] = "ten"


def _missing_key(p):
    del p["head"]["type"]


def _bad_choice(p):
    p["data"]["source"] = "cifar"


def _empty_data_path(p):
    p["data"]["path"] = ""


def _gate_out_of_range(p):
    p["validate"]["cut_over_bound_min"] = 1.5


def _unknown_objective(p):
    p["aux"]["objective"] = "boosted"


def _depth_zero(p):
    p["maxcut"]["depth"] = 0


def _whole_image_patch(p):
    p["occlusion"]["patch_size"] = 1.0


def _repeated_feature_kind(p):
    p["missing"]["features"] = ["missing", "missing"]


def _required_without_tracking(p):
    p["tracking"].update(enabled=False, required=True)


def _empty_exit_group(p):
    p["exits"]["groups"] = [[], list(range(10))]  # once summarised as "accuracy 1.000 at 51% of the FLOPs"


def _fine_labels_with_tree_exits(p):
    p["confusion"]["labels"] = "data/fine_labels.csv"
    p["exits"]["groups"] = "tree"


def _negative_seed(p):
    p["seed"] = -1


def _seed_numpy_cannot_take(p):
    p["seed"] = 2**32


def _no_groups_csv(p):
    p["data"]["groups_csv"] = ""  # a dep of prepare in dvc.yaml, so it must name a file


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_unknown_key, r"base\.epoch: unknown param"),
        (_wrong_type, r"base\.epochs: .*'ten'"),
        (_missing_key, r"head\.type: missing"),
        (_bad_choice, r"data\.source"),
        (_empty_data_path, r"data\.path: string should have at least 1 character"),
        (_gate_out_of_range, r"validate\.cut_over_bound_min: input should be less than or equal to 1 \(got 1\.5\)"),
        (_unknown_objective, r"aux\.objective: input should be 'plain', 'residual' or 'decorrelated' \(got 'boosted'\)"),
        (_depth_zero, r"maxcut\.depth: input should be greater than or equal to 1 \(got 0\)"),
        (_whole_image_patch, r"occlusion\.patch_size: input should be less than 1 \(got 1\.0\)"),
        (_repeated_feature_kind, r"missing\.features: must not repeat, got \['missing', 'missing'\]"),
        (_required_without_tracking, r"tracking: required is true but enabled is false"),
        (_empty_exit_group, r"exits\.groups: group 0 is empty"),
        (_fine_labels_with_tree_exits, r"exits\.groups tree .*confusion\.labels data/fine_labels\.csv"),
        (_negative_seed, r"seed: input should be greater than or equal to 0 \(got -1\)"),
        (_seed_numpy_cannot_take, r"seed: input should be less than 4294967296 \(got 4294967296\)"),
        (_no_groups_csv, r"data\.groups_csv: .*data/no_groups\.csv"),
    ],
)
def test_bad_param_is_named(tmp_path, params_dict, change, message):
    change(params_dict)
    with pytest.raises(AuxcutError, match=message):
        load_params(write(tmp_path, params_dict))


def test_split_must_sum_to_one(tmp_path, params_dict):
    params_dict["data"]["split"] = {"train": 0.6, "val": 0.3, "test": 0.2}
    with pytest.raises(AuxcutError, match="sum to 1"):
        load_params(write(tmp_path, params_dict))


def test_floats_accept_ints_and_exponent_strings(tmp_path, params_dict):
    params_dict["base"]["lr"] = "1e-3"  # YAML 1.1 reads 1e-3 as a string
    params_dict["head"]["C"] = 2
    params_dict["validate"]["cut_over_bound_min"] = 1
    params = load_params(write(tmp_path, params_dict))
    assert params.base.lr == pytest.approx(1e-3) and params.head.C == 2.0 and params.gates.cut_over_bound_min == 1.0


def test_error_is_one_line_and_names_file(tmp_path, params_dict):
    params_dict["aux"]["lr"] = -1
    params_dict["maxcut"]["hyperplanes"] = 10
    with pytest.raises(AuxcutError) as info:
        load_params(write(tmp_path, params_dict))
    message = str(info.value)
    assert "\n" not in message and "params.yaml" in message
    assert "aux.lr" in message and "maxcut.hyperplanes" in message


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(AuxcutError, match="not valid YAML"):
        load_params(write(tmp_path, "seed: [1,\n"))
    with pytest.raises(AuxcutError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_a_repeated_key_is_refused_with_its_line(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("base:", "seed: 3\nbase:", 1)  # a second `seed` at top level
    line = text.splitlines().index("seed: 3") + 1
    with pytest.raises(AuxcutError, match=rf"params\.yaml: duplicate key 'seed' at line {line}") as info:
        load_params(write(tmp_path, text))
    assert "\n" not in str(info.value)
    nested = (REPO / "params.yaml").read_text().replace("  epochs: 40\n", "  epochs: 40\n  epochs: 4\n", 1)
    with pytest.raises(AuxcutError, match=r"duplicate key 'epochs' at line \d+"):
        load_params(write(tmp_path, nested))
