"""The whole pipeline on digits with a torchvision backbone (base.arch resnet18, its small-input stem chosen by
`auto` at 8x8): every stage and every variant's default runs on a net that is not auxcut's own, on 200 images with one
epoch per net, so that it fits the suite (issue 23)."""

from __future__ import annotations

import json

import pytest

from auxcut.core import paths
from auxcut.nets import training
from conftest import STAGES, TINY, copy_repository, ran_stages, run

RESNET18_PARAMETERS = 11_173_962  # for 10 classes and one input channel, with the small-input stem


@pytest.fixture(scope="module")
def resnet_pipeline(tmp_path_factory):
    repo = tmp_path_factory.mktemp("resnet") / "repo"
    one_epoch = {f"{net}__epochs": 1 for net in ("base", "aux", "attributes", "exits", "fine")}
    env = copy_repository(repo, **{**TINY, **one_epoch, "fine__finetune_epochs": 1}, base__arch="resnet18",
                          data__max_per_class=20, tracking__enabled=False)  # MLflow is tested on the session pipeline
    result = run(["dvc", "repro"], repo, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo, result.stdout


def metrics(repo, stage: str) -> dict:
    return json.loads((repo / "metrics" / f"{stage}.json").read_text())


def test_every_stage_runs_on_digits_with_resnet18(resnet_pipeline):
    repo, output = resnet_pipeline
    assert ran_stages(output) == STAGES
    assert metrics(repo, "prepare")["n_images"] == 200
    [base], _ = training.load_checkpoint(repo / paths.BASE_MODEL)
    assert base.arch == {"name": "resnet18", "in_shape": [1, 8, 8], "n_outputs": 10, "view": "full", "small_input": True}
    assert metrics(repo, "train_base")["parameters"] == RESNET18_PARAMETERS
    aux = metrics(repo, "train_aux")  # the default convnet aux, far inside the 10x rule
    assert aux["base_parameters"] == RESNET18_PARAMETERS and aux["base_over_aux_parameters"] >= 10
    exits = metrics(repo, "train_exits")  # exits.after counts the arch's own points: after layer1 of four
    assert exits["base_parameters"] == RESNET18_PARAMETERS and exits["after"] == [1]
    assert 0 < exits["exits"][0]["flops_ratio"] < 1
    assert metrics(repo, "train_missing")["features"] == 512  # resnet18's pooled embedding
    fine, _ = training.load_checkpoint(repo / paths.FINE_MODELS)
    assert [net.arch["name"] for net in fine] == ["resnet18", "resnet18"]  # pretrain and multihead: the base's arch
    for stage in ("fairness", "robustness", "score_fine", "train_attributes"):
        assert (repo / "metrics" / f"{stage}.json").is_file()
