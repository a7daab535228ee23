"""The study report and presets: records from real metrics files (the digits pipeline), aggregates over seeds."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy import stats

from auxcut import AuxcutError
from auxcut.reports import study
from auxcut.pipeline.params import load_params
from auxcut.reports.pages import aggregate, collect, load_runs, mean_interval, render
from conftest import REPO


def test_mean_interval_matches_a_t_interval():
    values = [0.61, 0.64, 0.60]
    got = mean_interval(values)
    low, high = stats.t.interval(0.95, df=2, loc=np.mean(values), scale=stats.sem(values))
    assert got["mean"] == pytest.approx(np.mean(values)) and got["ci"] == pytest.approx([low, high])
    assert mean_interval([0.5]) == {"mean": 0.5, "ci": None, "n": 1}


def test_records_aggregates_and_markdown_from_real_runs(pipeline, tmp_path):
    repo, _, _ = pipeline
    runs = tmp_path / "runs"
    for seed in (0, 1):
        run = runs / f"digits-s{seed}-logistic"
        shutil.copytree(repo / "metrics", run)
        (run / "run.json").write_text(json.dumps({"config": "digits", "seed": seed, "head": "logistic"}))
    # a variant's run of some stages only (`--stages score_fine`) has no method numbers: left out, not an error
    partial = runs / "digits-s2-logistic"
    partial.mkdir()
    for stage in ("prepare", "train_base", "discover", "train_fine", "score_fine"):
        shutil.copy(repo / "metrics" / f"{stage}.json", partial)
    (partial / "run.json").write_text(json.dumps({"config": "digits", "seed": 2, "head": "logistic"}))
    assert collect(partial) is None
    records = load_runs(runs)
    assert [r["seed"] for r in records] == [0, 1]
    fair = json.loads((repo / "metrics" / "fairness.json").read_text())
    assert records[0]["stacked_accuracy"] == fair["predictors"]["stacked"]["accuracy"]
    assert records[0]["aux_gain"] == pytest.approx(fair["predictors"]["stacked"]["accuracy"]
                                                   - fair["predictors"]["control"]["accuracy"])
    assert records[0]["base_digit=3"] == fair["predictors"]["base"]["groups"]["digit"]["by_group"]["3"]["accuracy"]
    assert collect(runs / "digits-s0-logistic")["seconds"]["train_base"] > 0
    agg = aggregate(records)
    assert list(agg) == ["digits / logistic"] and agg["digits / logistic"]["seeds"] == [0, 1]
    assert agg["digits / logistic"]["base_accuracy"]["ci"] == pytest.approx([records[0]["base_accuracy"]] * 2)
    page = render(records, "digits study")
    assert page.startswith("# digits study") and "| digits / logistic | 2 |" in page
    assert f"{100 * records[0]['base_accuracy']:.1f}" in page and "Accuracy by digit" in page


def test_presets_are_valid_params(tmp_path):
    for config in study.CONFIGS:
        for hardware in study.HARDWARE:
            params = tmp_path / f"{config}-{hardware}.yaml"
            shutil.copy(REPO / "params.yaml", params)
            study.set_params(params, study.preset(config, hardware, seed=2, head="naive_bayes"))
            loaded = load_params(params)
            assert loaded.data.source == study.CONFIGS[config]["data.source"]
            assert loaded.seed == 2 and loaded.head.type == "naive_bayes"
            assert loaded.base.width >= 10 ** 0.5 * loaded.aux.width  # the 10x budget holds roughly as width^2
    for name, lever in study.LEVERS.items():  # every named lever is params that load on the preset it tops
        params = tmp_path / f"lever-{name}.yaml"
        shutil.copy(REPO / "params.yaml", params)
        study.set_params(params, {**study.preset("utkface-15", "cpu"), **lever})
        assert load_params(params).exits.groups == lever.get("exits.groups", load_params(REPO / "params.yaml").exits.groups)
    # a config's own values win over the hardware's (MNIST is 28 px and never flipped), the rest is the hardware's
    mnist = study.preset("mnist-5x2", "cpu")
    assert (mnist["data.image_size"], mnist["base.augment"], mnist["fine.augment"]) == (28, False, False)
    assert mnist["discovery.min_cluster_size"] == study.HARDWARE["cpu"]["discovery.min_cluster_size"]
    flags = study.flags(study.preset("utkface-30", "cpu"))
    assert "data.classes=age_race_gender" in flags and "base.augment=true" in flags
    with pytest.raises(AuxcutError, match="configuration"):
        study.preset("cifar", "cpu")
    with pytest.raises(AuxcutError, match="not a param"):
        study.set_params(tmp_path / "utkface-15-cpu.yaml", {"base.depth": 3})


def test_lever_overrides_are_parsed_as_yaml_and_bad_ones_named():
    assert study.parse_set(["aux.width=5", "base.augment=false", "head.C=0.5"]) == {
        "aux.width": 5, "base.augment": False, "head.C": 0.5}
    with pytest.raises(AuxcutError, match="expected key=value"):
        study.parse_set(["aux.width"])


def test_a_lever_naming_no_param_is_refused(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    with pytest.raises(AuxcutError, match="aux.depth is not a param"):
        study.set_params(tmp_path / "params.yaml", study.parse_set(["aux.depth=3"]))


def test_heads_report_from_real_runs(pipeline, tmp_path):
    """reports/variants-heads.md from the digits pipeline's metrics: two seeds of the preset, one of the aux as a head
    (its train_aux metrics marked as the head mode's), one of the exits on another grouping."""
    from auxcut.reports import heads

    repo, _, _ = pipeline
    root = tmp_path / "project"
    runs = root / "reports" / "runs"
    for seed, lever in ((0, ""), (1, ""), (0, "aux-head"), (0, "exits-age")):
        run = runs / f"digits-s{seed}-logistic{'-' + lever if lever else ''}"
        shutil.copytree(repo / "metrics", run)
        config = f"digits (cpu{', lever ' + lever if lever else ''})"
        (run / "run.json").write_text(json.dumps({"config": config, "seed": seed, "head": "logistic"}))
    aux = json.loads((runs / "digits-s0-logistic-aux-head" / "train_aux.json").read_text())
    aux["mode"], aux["inference"]["forward_passes"] = "head", 1
    (runs / "digits-s0-logistic-aux-head" / "train_aux.json").write_text(json.dumps(aux))
    exits = json.loads((runs / "digits-s0-logistic-exits-age" / "train_exits.json").read_text())
    exits["groups"] = "prefix"
    (runs / "digits-s0-logistic-exits-age" / "train_exits.json").write_text(json.dumps(exits))
    shutil.copytree(runs / "digits-s0-logistic", runs / "digits-s0-naive_bayes")  # another head: left out
    (runs / "digits-s0-naive_bayes" / "run.json").write_text(json.dumps({"config": "digits (cpu)", "seed": 0,
                                                                         "head": "naive_bayes"}))
    path = heads.write(root)
    page = path.read_text()
    data = json.loads((root / "reports" / "variants-heads.json").read_text())
    assert len(data["runs"]) == 4
    agg = data["aggregates"]
    assert agg["aux/digits/separate"]["seeds"] == [0, 1] and agg["aux/digits/head"]["seeds"] == [0]
    assert agg["attributes/digits"]["seeds"] == [0, 1]  # the preset's runs: one attribute comparison per seed
    assert agg["exits/digits/tree, frozen backbone"]["seeds"] == [0, 1]
    assert agg["exits/digits/prefix, frozen backbone"]["seeds"] == [0]
    fair = json.loads((repo / "metrics" / "fairness.json").read_text())
    assert agg["aux/digits/head"]["stacked_accuracy"]["mean"] == fair["predictors"]["stacked"]["accuracy"]
    m = json.loads((repo / "metrics" / "train_exits.json").read_text())
    tree = agg["exits/digits/tree, frozen backbone"]
    assert tree["point_flops"]["mean"] == pytest.approx(m["operating_point"]["test"]["flops"])
    assert tree["point_drop"]["ci"] == pytest.approx([tree["point_drop"]["mean"]] * 2)  # the same run twice
    for heading in ("### The aux as a head", "### Attribute heads with hidden labels", "### Early exits", "Gran-HBN"):
        assert heading in page
    attrs = json.loads((repo / "metrics" / "train_attributes.json").read_text())
    digit = attrs["by_fraction"][0]["shared"]["accuracy"]["digit"]
    assert f"| 0% | digit |" in page and f"{100 * digit:.1f}" in page
    empty = tmp_path / "empty"
    (empty / "reports" / "runs").mkdir(parents=True)
    assert heads.write(empty) is None  # no run with the variants yet: nothing written


def test_a_run_of_some_stages_files_their_metrics_only(pipeline):
    """`study run --stages robustness` files the metrics of the stages DVC runs for it: the graph's ancestors."""
    repo, env, _ = pipeline
    assert study.upstream(repo, ["robustness"], env) == {
        "prepare", "train_base", "confusion", "maxcut", "relabel", "train_aux", "stack", "fit_head", "occlude",
        "train_missing", "robustness"}
    assert "discover" in study.upstream(repo, ["fairness", "train_fine"], env)


def test_scratch_copy_keeps_its_own_results(tmp_path):
    """The study's scratch copy takes the repository's code and params, never its results: a stage's tracked plot
    (cache: false) or metrics from the repository's digits run must not overwrite the scratch pipeline's own, or DVC
    sees changed outputs and restores them on every lever; a file the repository drops goes from the copy."""
    import subprocess

    root, scratch = tmp_path / "repo", tmp_path / "scratch"
    for name, text in {"code.py": "x = 1\n", "gone.py": "", "plots/train_base/history.csv": "digits\n",
                       "plots/train_base/.gitignore": "/*.png\n", "metrics/train_base.json": "{}", "dvc.lock": ""}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    study._scratch_copy(root, scratch)
    assert (scratch / "code.py").read_text() == "x = 1\n" and (scratch / "plots/train_base/.gitignore").is_file()
    for result in ("plots/train_base/history.csv", "metrics/train_base.json", "dvc.lock"):
        assert not (scratch / result).exists()
    (scratch / "plots/train_base/history.csv").write_text("utkface\n")  # the scratch pipeline's own run
    (root / "gone.py").unlink()
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    (root / "code.py").write_text("x = 2\n")
    study._scratch_copy(root, scratch)
    assert (scratch / "plots/train_base/history.csv").read_text() == "utkface\n"
    assert (scratch / "code.py").read_text() == "x = 2\n" and not (scratch / "gone.py").exists()


def test_occlusion_report_from_real_runs(pipeline, tmp_path):
    """reports/variants-occlusion.md from the digits pipeline's metrics: two seeds of the preset (a lever's run and
    another head's is left out, a lever's is a row of its own), the second with a shifted missing-feature head so the
    interval is a real one."""
    from auxcut.reports import occlusion

    repo, _, _ = pipeline
    root = tmp_path / "project"
    runs = root / "reports" / "runs"
    for seed, suffix, config, head in ((0, "", "digits (cpu)", "logistic"), (1, "", "digits (cpu)", "logistic"),
                                       (0, "-aux-head", "digits (cpu, lever aux-head)", "logistic"),
                                       (0, "-nb", "digits (cpu)", "naive_bayes")):
        run = runs / f"digits-s{seed}{suffix}"
        shutil.copytree(repo / "metrics", run)
        (run / "run.json").write_text(json.dumps({"config": config, "seed": seed, "head": head}))
    robust = json.loads((runs / "digits-s1" / "robustness.json").read_text())
    horizontal = robust["sets"]["horizontal"]
    horizontal["predictors"]["fc_missing"]["accuracy"] += 0.1
    horizontal["minus_base"]["fc_missing"]["value"] += 0.1
    (runs / "digits-s1" / "robustness.json").write_text(json.dumps(robust))
    page = occlusion.write(root).read_text()
    data = json.loads((root / "reports" / "variants-occlusion.json").read_text())
    assert len(data["runs"]) == 3 and data["aggregates"]["digits (cpu, lever aux-head)"]["seeds"] == [0]
    a = data["aggregates"]["digits (cpu)"]
    first = json.loads((repo / "metrics" / "robustness.json").read_text())["sets"]
    assert a["seeds"] == [0, 1]
    assert a["triple/base"]["mean"] == pytest.approx(first["triple"]["predictors"]["base"]["accuracy"])
    assert a["triple/base"]["ci"] == pytest.approx([a["triple/base"]["mean"]] * 2)  # the same run twice
    shifted = a["horizontal/fc_missing-base"]
    assert shifted["mean"] == pytest.approx(first["horizontal"]["minus_base"]["fc_missing"]["value"] + 0.05)
    assert shifted["ci"][0] < shifted["mean"] < shifted["ci"][1]
    assert "| triple |" in page and "40.87" in page and "+4.2" in page and "Worst digit group" in page
    empty = tmp_path / "empty"
    (empty / "reports" / "runs").mkdir(parents=True)
    assert occlusion.write(empty) is None


def test_the_merge_alone_is_the_floor_of_the_agreement_with_the_hidden_classes():
    from sklearn.metrics import adjusted_rand_score

    from auxcut.reports.discovery import merge_alone

    assert merge_alone([[0], [1], [2]], 50) == pytest.approx((1.0, 1.0))  # nothing merged: the classes themselves
    assert merge_alone([[0, 1, 2]], 50) == pytest.approx((0.0, 0.0))  # one group: no information
    halves, pairs = merge_alone([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], 300), merge_alone([[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]], 300)
    digits = np.repeat(np.arange(10), 300)
    assert halves[0] == pytest.approx(adjusted_rand_score(digits, digits >= 5)) and 0.1 < halves[0] < pairs[0] < 0.7


def test_discovery_report_from_real_runs(pipeline, tmp_path):
    """reports/variants-discovery.md from the digits pipeline's metrics: two seeds, the second's pretrained net a point
    better, so the gain's interval over seeds is a real one; the agreement with the hidden digit is carried through."""
    from auxcut.reports import discovery

    repo, _, _ = pipeline
    root = tmp_path / "project"
    runs = root / "reports" / "runs"
    for seed in (0, 1):
        shutil.copytree(repo / "metrics", runs / f"digits-s{seed}")
        (runs / f"digits-s{seed}" / "run.json").write_text(json.dumps({"config": "digits (cpu)", "seed": seed,
                                                                        "head": "logistic"}))
    scored = json.loads((runs / "digits-s1" / "score_fine.json").read_text())
    scored["modes"]["pretrain"]["test_accuracy"] += 0.01
    scored["modes"]["pretrain"]["minus_base"]["accuracy"]["value"] += 0.01
    (runs / "digits-s1" / "score_fine.json").write_text(json.dumps(scored))
    # seed 0 as filed before score_fine was a stage: train_fine.json held the scores
    trained = json.loads((runs / "digits-s0" / "train_fine.json").read_text())
    old = json.loads((runs / "digits-s0" / "score_fine.json").read_text())
    (runs / "digits-s0" / "train_fine.json").write_text(json.dumps({**trained, **old}))
    (runs / "digits-s0" / "score_fine.json").unlink()
    # a run that trained the nets but never scored them has no gain to report: left out
    unscored = runs / "digits-s2"
    unscored.mkdir()
    for name in ("discover.json", "train_fine.json"):
        shutil.copy(repo / "metrics" / name, unscored)
    (unscored / "run.json").write_text(json.dumps({"config": "digits (cpu)", "seed": 2, "head": "logistic"}))
    page = discovery.write(root).read_text()
    a = json.loads((root / "reports" / "variants-discovery.json").read_text())["aggregates"]["digits (cpu)"]
    found = json.loads((repo / "metrics" / "discover.json").read_text())
    first = json.loads((repo / "metrics" / "score_fine.json").read_text())["modes"]["pretrain"]
    assert a["seeds"] == [0, 1] and a["fine_labels"]["mean"] == found["fine_labels"]
    assert a["ari/digit"]["mean"] == pytest.approx(found["agreement"]["digit"]["ari"])
    gain = a["pretrain/gain"]
    assert gain["mean"] == pytest.approx(first["minus_base"]["accuracy"]["value"] + 0.005)
    assert gain["ci"][0] < gain["mean"] < gain["ci"][1]
    assert a["aim_met"]["pretrain"] == (gain["ci"][0] > 0)
    assert "| digit |" in page and "91.66" in page and "| pretrain |" in page and "| multihead |" in page
    empty = tmp_path / "empty"
    (empty / "reports" / "runs").mkdir(parents=True)
    assert discovery.write(empty) is None


def test_capacity_section_from_real_runs(pipeline, tmp_path):
    """The capacity study's section of study-utkface.md from the digits pipeline's metrics filed as the three targets at
    one size over 3 seeds (each control's train_aux.json rewritten as that target records itself, and each run's aux
    gain set), plus a run at a size with one target only: aggregates, the paired cut - control differences, the aim's
    verdict both ways, the figure and the sizes not run."""
    from auxcut.reports import capacity

    repo, _, _ = pipeline
    root = tmp_path / "project"
    runs = root / "reports" / "runs"
    gains = {"cut": [0.020, 0.025, 0.030], "random_cut": [0.000, 0.004, 0.002], "classes": [0.010, 0.005, 0.008]}

    def file_run(target: str, width: int, seed: int, gain: float, lever: str | None = None) -> None:
        lever = lever or f"{capacity.TARGETS[target]}-w{width}"
        run = runs / f"digits-s{seed}-logistic-{lever}"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(repo / "metrics", run)
        params = {**capacity.levers().get(lever, {}), "aux.width": width}
        (run / "run.json").write_text(json.dumps({"config": f"digits (cpu, lever {lever})", "seed": seed,
                                                  "head": "logistic", "params": params}))
        aux = json.loads((run / "train_aux.json").read_text())
        aux["target"], aux["min_ratio"] = target, capacity.WIDTHS[width]
        if target == "classes":  # the classes aux records its agreement with the base on the classes
            aux["class_agreement"] = {"aux_accuracy": 0.5, "base_accuracy": 0.6, "error_correlation": 0.3}
            del aux["base_agreement"]
        if target == "random_cut":
            aux["random_cut"] = {"draw": 0, "side_0": [], "side_1": [], "same_as_max_cut": seed == 2}
        (run / "train_aux.json").write_text(json.dumps(aux))
        fair = json.loads((run / "fairness.json").read_text())
        fair["differences"]["stacked_minus_control"]["accuracy"]["value"] = gain
        (run / "fairness.json").write_text(json.dumps(fair))

    for target, values in gains.items():
        for seed, gain in enumerate(values):
            file_run(target, 4, seed, gain)
    file_run("cut", 9, 0, 0.01)
    shutil.copytree(runs / "digits-s0-logistic-cut-w4", runs / "digits-s0-logistic-view-low")  # another lever: not read
    (runs / "digits-s0-logistic-view-low" / "run.json").write_text(json.dumps(
        {"config": "digits (cpu, lever view-low)", "seed": 0, "head": "logistic", "params": {"aux.width": 8}}))
    assert capacity.collect(runs / "digits-s0-logistic-view-low") is None
    records = load_runs(runs, capacity.collect)
    assert len(records) == 10
    agg = capacity.aggregate(records)
    assert set(agg) == {(4, "cut"), (4, "random_cut"), (4, "classes"), (9, "cut")}
    assert agg[(4, "cut")]["aux_gain"]["mean"] == pytest.approx(0.025)
    paired = agg[(4, "random_cut")]["cut_minus_this"]
    assert paired["mean"] == pytest.approx(np.mean(np.subtract(gains["cut"], gains["random_cut"])))
    assert paired["ci"] == pytest.approx(mean_interval(list(np.subtract(gains["cut"], gains["random_cut"])))["ci"])
    assert agg[(4, "classes")]["aux_own_accuracy"]["mean"] == 0.5 and agg[(4, "random_cut")]["same_as_max_cut"] == 1
    met, sentences = capacity.verdict(agg)
    assert met and "the method working" in sentences[0] and "no answer at this size" in sentences[1]
    lines = capacity.section(root)
    text = "\n".join(lines)
    assert "**met**" in text and "| 4 | classes | 3 |" in text and "10 (lowered)" not in text and "3 (lowered)" in text
    assert "Not run yet: random-cut-w9, classes-aux-w9, cut-w16" in text
    assert (root / capacity.FIGURE).stat().st_size > 10_000
    # a multiclass aux as good as the cut: the cut's gain is still a point, but no longer above both controls'
    for seed, gain in enumerate([0.021, 0.024, 0.031]):
        file_run("classes", 4, seed, gain)
    met, sentences = capacity.verdict(capacity.aggregate(load_runs(runs, capacity.collect)))
    assert not met and "does not add more than both controls at this size" in sentences[0]
    for seed, gain in enumerate([0.002, 0.012, 0.004]):  # and a cut gain whose interval holds zero
        file_run("cut", 4, seed, gain)
    met, sentences = capacity.verdict(capacity.aggregate(load_runs(runs, capacity.collect)))
    assert not met and "does not add a point at this size" in sentences[0]
    assert "The multiclass aux adds more than the max-cut" in sentences[0] and "random cut adds more" not in sentences[0]
    empty = tmp_path / "empty"
    (empty / "reports" / "runs").mkdir(parents=True)
    assert capacity.section(empty) == []


def test_occlusion_report_pairs_spatial_heads_with_their_pooled_twins(pipeline, tmp_path):
    """A lever with missing.map spatial is set against the same configuration's pooled runs, seed by seed."""
    from auxcut.reports import occlusion

    repo, _, _ = pipeline
    runs = tmp_path / "project" / "reports" / "runs"
    for seed in (0, 1):
        for lever, params in (("partial-input", {}), ("occlusion-spatial", {"missing.map": "spatial"})):
            run = runs / f"digits-s{seed}-{lever}"
            shutil.copytree(repo / "metrics", run)
            (run / "run.json").write_text(json.dumps({"config": f"digits (cpu, lever {lever})", "seed": seed,
                                                      "head": "logistic", "params": params}))
        spatial = runs / f"digits-s{seed}-occlusion-spatial" / "robustness.json"
        robust = json.loads(spatial.read_text())
        robust["sets"]["vertical"]["predictors"]["fc_missing"]["accuracy"] += 0.02 * (seed + 1)
        spatial.write_text(json.dumps(robust))
    page = occlusion.write(tmp_path / "project").read_text()
    heading = "## digits (cpu, lever occlusion-spatial) against digits (cpu, lever partial-input) (2 seeds: 0, 1)"
    assert heading in page and "against digits (cpu, lever occlusion-spatial)" not in page
    table = page[page.index(heading):]
    vertical = next(line for line in table.splitlines() if line.startswith("| vertical |"))
    expected = mean_interval([0.02, 0.04])
    assert vertical.split(" | ")[2] == f"+3.0 [{100 * expected['ci'][0]:+.1f}, {100 * expected['ci'][1]:+.1f}]"
    horizontal = next(line for line in table.splitlines() if line.startswith("| horizontal |"))
    assert set(horizontal.strip("| ").split(" | ")[1:]) == {"+0.0 [+0.0, +0.0]"}


def test_the_study_files_figures_but_never_one_that_shows_the_data_images(pipeline, tmp_path):
    """The first seed's plots are filed under reports/figures/ (committed), except those that show the images: the
    UTKFace faces are for research use only."""
    repo, _, _ = pipeline
    assert (repo / "plots" / "occlusion" / "examples.png").is_file()  # the occlude stage drew the images
    figures = tmp_path / "figures"
    study._file_figures(repo / "plots", figures)
    filed = {p.relative_to(figures).as_posix() for p in figures.rglob("*.png")}
    assert "maxcut/cut.png" in filed and "confusion/base_val.png" in filed
    assert "occlusion/examples.png" not in filed and not (figures / "occlusion").exists()
