from __future__ import annotations

import pytest
import yaml

from auxcut import AuxcutError
from auxcut.params import load_params
from conftest import REPO


def write(tmp_path, data) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def test_repository_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "digits"
    assert params.aux.width < params.base.width


def test_unknown_key_is_named(tmp_path, params_dict):
    params_dict["base"]["epoch"] = 3
    with pytest.raises(AuxcutError, match=r"base\.epoch: unknown param"):
        load_params(write(tmp_path, params_dict))


def test_wrong_type_names_key_and_value(tmp_path, params_dict):
    params_dict["base"]["epochs"] = "ten"
    with pytest.raises(AuxcutError, match=r"base\.epochs: .*'ten'"):
        load_params(write(tmp_path, params_dict))


def test_missing_key(tmp_path, params_dict):
    del params_dict["head"]["type"]
    with pytest.raises(AuxcutError, match=r"head\.type: missing"):
        load_params(write(tmp_path, params_dict))


def test_bad_choice(tmp_path, params_dict):
    params_dict["data"]["source"] = "cifar"
    with pytest.raises(AuxcutError, match=r"data\.source"):
        load_params(write(tmp_path, params_dict))


def test_split_must_sum_to_one(tmp_path, params_dict):
    params_dict["data"]["split"] = {"train": 0.6, "val": 0.3, "test": 0.2}
    with pytest.raises(AuxcutError, match="sum to 1"):
        load_params(write(tmp_path, params_dict))


def test_floats_accept_ints_and_exponent_strings(tmp_path, params_dict):
    params_dict["base"]["lr"] = "1e-3"  # YAML 1.1 reads 1e-3 as a string
    params_dict["head"]["C"] = 2
    params = load_params(write(tmp_path, params_dict))
    assert params.base.lr == pytest.approx(1e-3) and params.head.C == 2.0


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
