"""The whole pipeline on a small MNIST subset from ../shared with the missing-feature paper's net (base.arch pmnist_net)
and its spatial missing-feature heads: every stage and every variant's default runs on a net that is not auxcut's
own, and a change of base.arch makes stale exactly the stages that read it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from auxcut.core import paths
from auxcut.nets import training
from conftest import STAGES, TINY, copy_repository, dvc_stages, ran_stages, run, set_params
from test_mnist import MNIST_DIR, needs_mnist

pytestmark = needs_mnist


@pytest.fixture(scope="module")
def mnist_pipeline(tmp_path_factory):
    repo = tmp_path_factory.mktemp("pmnist") / "repo"
    # aux.width 5: the widest convnet aux 10x smaller than pmnist_net's 21,840 parameters (width 8 is refused)
    env = copy_repository(repo, **TINY, data__source="mnist", data__path=str(MNIST_DIR), data__max_per_class=30,
                          data__image_size=28, base__arch="pmnist_net", aux__width=5, missing__map="spatial", missing__max_iter=30,
                          tracking__enabled=False)  # MLflow is tested on digits
    result = run(["dvc", "repro"], repo, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo, env, result.stdout


def metrics(repo, stage: str) -> dict:
    return json.loads((repo / "metrics" / f"{stage}.json").read_text())


def test_every_stage_runs_on_mnist_with_the_papers_net(mnist_pipeline):
    repo, _, output = mnist_pipeline
    assert ran_stages(output) == STAGES
    prepared = metrics(repo, "prepare")
    assert prepared["n_images"] == 600 and prepared["image_shape"] == [1, 28, 28]  # 30 a digit per official part
    [base], state = training.load_checkpoint(repo / paths.BASE_MODEL)
    assert base.arch["name"] == "pmnist_net" and base.arch["in_shape"] == [1, 28, 28]
    assert sum(p.numel() for p in base.parameters()) == 21_840  # 260 + 5,020 + 16,050 + 510
    missing = metrics(repo, "train_missing")
    # the paper's map: 20 channels x 4 x 4 after the second conv, pooling and ReLU, read before the flatten
    assert (missing["map"], missing["activation"], missing["features"]) == ("spatial", "relu", 320)
    assert set(missing["heads"]) == {"present", "missing", "both"}
    for kind, head in missing["heads"].items():  # fc 320 (640 for both) -> 64 -> 10
        n_inputs = 640 if kind == "both" else 320
        assert head["parameters"] == n_inputs * 64 + 64 + 64 * 10 + 10 and 1 <= head["best_epoch"] <= head["iterations"]
    robustness = metrics(repo, "robustness")
    for name in ("none", "horizontal", "vertical", "diagonal", "triple"):
        assert {"base", "fc_present", "fc_missing", "fc_both"} <= set(robustness["sets"][name]["predictors"])
    base_probs = np.load(repo / paths.BASE_PROBS)
    assert base_probs.shape == (600, 10)


def test_a_base_arch_change_makes_exactly_its_readers_stale(mnist_pipeline):
    repo, env, _ = mnist_pipeline
    params = repo / "params.yaml"
    original = params.read_text()
    set_params(repo, base__arch="pmnist_net_tanh")
    try:
        status = json.loads(run(["dvc", "status", "--json"], repo, env).stdout)
    finally:
        params.write_text(original)
    readers = {name for name, stage in dvc_stages().items()
               if any(p in ("base", "base.arch") for p in stage.get("params", []))}
    assert set(status) == readers and "train_base" in readers and "prepare" not in readers, status
    assert json.loads(run(["dvc", "status", "--json"], repo, env).stdout) == {}
