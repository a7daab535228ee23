"""The stage runtime: a stage's missing or damaged input, and a stop from outside, are one line naming what to do."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from auxcut.core import paths
from auxcut.nets import training
from auxcut.nets.models import ConvNet
from auxcut.pipeline.stage import run_stage
from conftest import REPO, set_params


@pytest.fixture
def repo_dir(tmp_path, monkeypatch):
    """An empty working directory with the repository's params (tracking off), as a stage run directly sees it."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    set_params(tmp_path, tracking__enabled=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def stage_error(capsys, name, body) -> str:
    with pytest.raises(SystemExit) as info:
        run_stage(name, body)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no traceback
    return err.strip()


def test_a_missing_input_names_the_stage_that_makes_it(repo_dir, capsys):
    """`python stages/maxcut.py` before confusion ran: not FileNotFoundError, but the stage to run."""
    err = stage_error(capsys, "maxcut", lambda stage: pd.read_csv(paths.CONFUSION, index_col="true"))
    assert err == ("auxcut maxcut: error: data/confusion.csv: not found "
                   "(stage confusion writes it: run `dvc repro confusion`)")
    err = stage_error(capsys, "stack", lambda stage: np.load(paths.AUX_PROBS))
    assert err.endswith("data/predictions/aux.npy: not found (stage train_aux writes it: run `dvc repro train_aux`)")


def test_a_missing_file_that_no_stage_makes_is_named(repo_dir, capsys):
    err = stage_error(capsys, "prepare", lambda stage: open("nowhere.csv"))
    assert err == "auxcut prepare: error: nowhere.csv: not found (run the stage that writes it)"


def test_a_truncated_checkpoint_names_the_file_and_its_stage(repo_dir, capsys):
    training.save_checkpoint(paths.BASE_MODEL, ConvNet((1, 8, 8), 10, 4))
    assert len(training.load_checkpoint(paths.BASE_MODEL)[0]) == 1
    whole = paths.BASE_MODEL.read_bytes()
    for cut in (0, 10, len(whole) // 2):  # empty, a header, half: torch's EOFError, RuntimeError, OSError
        paths.BASE_MODEL.write_bytes(whole[:cut])
        err = stage_error(capsys, "confusion", lambda stage: training.load_checkpoint(paths.BASE_MODEL))
        assert err.startswith("auxcut confusion: error: models/base.pt: cannot be read (")
        assert err.endswith("); it may be truncated: re-run `dvc repro train_base`")
    paths.BASE_MODEL.unlink()
    err = stage_error(capsys, "confusion", lambda stage: training.load_checkpoint(paths.BASE_MODEL))
    assert err.endswith("models/base.pt: not found (stage train_base writes it: run `dvc repro train_base`)")
