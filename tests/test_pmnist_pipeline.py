"""The whole pipeline on a small MNIST subset from ../shared with the missing-feature paper's net (base.arch pmnist_net)
and its spatial missing-feature heads: every stage and every variant's default runs on a net that is not auxcut's
own, and a change of base.arch makes stale exactly the stages that read it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
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


def test_discovery_on_merged_digits_is_scored_against_the_hidden_digits(mnist_pipeline, tmp_path):
    # data.coarse: two coarse classes of five digits each; the digit stays a hidden group attribute that discover scores
    # its fine labels against, and the report files them. Last in the file: it leaves the copy's outputs on the merged
    # data.
    from sklearn.metrics import adjusted_rand_score

    from auxcut.data import prepared
    from auxcut.reports import discovery as discovery_report

    repo, env, _ = mnist_pipeline
    set_params(repo, data__coarse=[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    result = run(["dvc", "repro", "score_fine"], repo, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert ran_stages(result.stdout) == ["prepare", "train_base", "discover", "train_fine", "score_fine"]
    found = metrics(repo, "discover")
    truth = found["fine_truth"]
    ds = prepared.load(repo / paths.PREPARED)
    assert ds.classes == ["0+1+2+3+4", "5+6+7+8+9"] and truth["attribute"] == ds.fine_attribute == "digit"
    fine = pd.read_csv(repo / paths.FINE_LABELS)["fine"].to_numpy()
    train = ds.indices("train")
    clustered = train[fine[train] >= 0]
    assert truth["clustered_train"]["images"] == len(clustered) == found["assigned"] > 0
    assert truth["test"]["images"] == len(ds.indices("test")) == 300
    digits = ds.samples["group_digit"].astype(str).to_numpy()
    assert truth["clustered_train"]["ari"] == pytest.approx(adjusted_rand_score(digits[clustered], fine[clustered]))
    # filed as a study run would be, and once more as an ablation lever of it (the same numbers: the table's shape)
    runs = tmp_path / "project" / "reports" / "runs"
    for lever in ("", "no-umap"):
        folder = runs / f"mnist-s0{'-' + lever if lever else ''}"
        folder.mkdir(parents=True)
        for stage in ("discover", "score_fine"):
            (folder / f"{stage}.json").write_text((repo / "metrics" / f"{stage}.json").read_text())
        config = f"mnist-2x5 (cpu{', lever ' + lever if lever else ''})"
        params = {"data.coarse": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], "data.max_per_class": 30}
        (folder / "run.json").write_text(json.dumps({"config": config, "seed": 0, "head": "logistic", "params": params}))
    page = discovery_report.write(tmp_path / "project").read_text()
    ari = f"{truth['clustered_train']['ari']:.3f}"
    assert f"| the clustered train images | {ari} |" in page and "| discovered fine labels against the hidden digit |" in page
    floor = f"{discovery_report.merge_alone([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], 30)[0]:.3f}"
    assert f"| nothing discovered: one label per coarse class (the merge alone, equally many images per digit) | {floor} |" in page
    assert "## What each step contributes: mnist-2x5 (cpu)" in page
    assert "| no UMAP: HDBSCAN on the features (discovery.reduce none) | " in page
