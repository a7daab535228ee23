"""aux.target and aux.min_ratio (auxcut.method.targets, auxcut.method.auxiliary): the random-cut and classes controls
on digits, what the final predictor stacks from a classes aux, and the params they are refused with."""

from __future__ import annotations

import math
from types import SimpleNamespace

import joblib
import numpy as np
import pytest
import torch
import yaml
from sklearn.linear_model import LogisticRegression

from auxcut import AuxcutError
from auxcut.data import prepared, sources
from auxcut.method import auxiliary, confusion, cutting, stacking, targets
from auxcut.nets import training
from auxcut.nets.models import ConvNet, count_parameters
from auxcut.pipeline.params import load_params
from auxcut.pipeline.predictor import Predictor
from auxcut.reports import summary
from conftest import DIGITS, digits_halves

CPU = torch.device("cpu")
SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}


@pytest.fixture(scope="module")
def max_cut():
    """The max-cut tree of a digits classifier's confusions (a logistic regression, for speed)."""
    x_fit, y_fit, x_held, y_held = digits_halves()
    probs = LogisticRegression(max_iter=200).fit(x_fit, y_fit).predict_proba(x_held)
    weights = confusion.confusion_weights(confusion.confusion_counts(y_held, probs))
    cfg = SimpleNamespace(method="auto", hyperplanes=1000, exact_max_n=20, polish="tabu", depth=1)
    return cutting.cut_classes(weights, [str(d) for d in range(10)], cfg, seed=0).tree


@pytest.fixture(scope="module")
def digits() -> prepared.Dataset:
    return sources.prepare("digits", DIGITS, "age_race", None, 8, SPLIT, seed=0, max_per_class=30)


def test_a_random_cut_is_balanced_seeded_and_not_the_max_cut(max_cut):
    drawn = targets.random_cut(max_cut.names, seed=0, draw=0)
    sides = drawn.class_sides(0)
    assert drawn.names == max_cut.names and len(drawn.nodes) == 1 and sorted(drawn.nodes[0].classes) == list(range(10))
    assert np.bincount(sides).tolist() == [5, 5]
    assert np.bincount(targets.random_cut(list("abcdefg"), 0, 0).class_sides(0)).tolist() == [4, 3]  # odd: 3 on side 1
    np.testing.assert_array_equal(targets.random_cut(max_cut.names, 0, 0).class_sides(0), sides)  # seeded
    draws = [targets.random_cut(max_cut.names, 0, d).class_sides(0) for d in range(1, 6)]
    draws.append(targets.random_cut(max_cut.names, 1, 0).class_sides(0))  # another seed, another cut
    assert not any(targets.same_partition(sides, other) for other in draws)
    assert not targets.same_partition(sides, max_cut.class_sides(0))
    assert targets.same_partition(sides, 1 - sides)  # a cut's sides may be swapped


@pytest.mark.parametrize("names", [[], ["only"]])
def test_a_random_cut_of_fewer_than_two_nodes_is_one_line(names):
    with pytest.raises(AuxcutError, match=r"^aux.target random_cut: the confusion graph has [01] node\(s\)") as exc:
        targets.random_cut(names, 0, 0)
    assert "\n" not in str(exc.value)


def test_the_aux_learns_the_cut_a_random_cut_of_its_nodes_or_the_classes(max_cut, digits):
    labels = digits.samples["label"].to_numpy()
    relabeled = {"node_0": max_cut.node_labels(labels)[:, 0]}
    cut = targets.aux_cuts("cut", max_cut, relabeled, labels, 0, 0)
    assert cut.tree is max_cut and cut.relabeled is relabeled  # the seed method: relabel's columns, as they were
    assert targets.aux_cuts("classes", max_cut, relabeled, labels, 0, 0) is None
    drawn = targets.aux_cuts("random_cut", max_cut, relabeled, labels, 0, 3)
    np.testing.assert_array_equal(drawn.relabeled["node_0"], drawn.tree.class_sides(0)[labels])
    record = targets.summary("random_cut", drawn, max_cut)["random_cut"]
    assert record["draw"] == 3 and not record["same_as_max_cut"]
    assert sorted(record["side_0"] + record["side_1"]) == max_cut.names and len(record["side_1"]) == 5
    assert targets.summary("cut", cut, max_cut) == {} == targets.summary("classes", None, max_cut)


def settings(**changes) -> SimpleNamespace:
    cfg = dict(width=2, epochs=2, batch_size=32, lr=0.01, weight_decay=0.0, patience=5, augment=False,
               objective="plain", strength=0.0, view="full", mode="separate", arch="convnet", small_input="auto",
               target="classes", min_ratio=10.0)
    return SimpleNamespace(**{**cfg, **changes})


def test_a_classes_aux_gives_k_probabilities_that_are_stacked_and_served(digits, tmp_path):
    torch.manual_seed(0)
    base = ConvNet((1, 8, 8), 10, 16).eval()
    mean, std = training.channel_stats(digits.images, digits.indices("train"))
    base_probs = training.predict_proba(base, digits.images, mean, std, task="multiclass", batch_size=64, device=CPU)
    out = auxiliary.train_classes(digits, base, base_probs, mean, std, settings(epochs=1), 0, CPU, True, lambda _: None)
    [aux] = out.models
    assert out.aux_probs.shape == (300, 10) and out.parameters == count_parameters(ConvNet((1, 8, 8), 10, 2))
    np.testing.assert_allclose(out.aux_probs.sum(1), 1, atol=1e-5)
    metrics = auxiliary.summary(out, settings(), digits, base, base_probs, mean, std, CPU)
    assert metrics["target"] == "classes" and metrics["min_ratio"] == 10 and "base_agreement" not in metrics
    test = digits.indices("test")
    assert metrics["class_agreement"]["aux_accuracy"] == metrics["accuracy"]["test"] == float(
        (out.aux_probs[test].argmax(1) == digits.samples["label"].to_numpy()[test]).mean())
    # stacked as K columns beside the base's K, and the served predictor feeds the head the same
    frame = stacking.stack(out.class_probs, out.aux_probs, digits.samples)
    assert [c for c in frame.columns if c.startswith("aux_")] == [f"aux_{k}" for k in range(10)]
    x = stacking.features(frame, with_aux=True)
    head = stacking.make_head("logistic", 1.0, 200, 0).fit(x, frame["target"])
    training.save_checkpoint(tmp_path / "base.pt", base, mean=mean.tolist(), std=std.tolist())
    training.save_checkpoint(tmp_path / "aux.pt", out.models, mean=mean.tolist(), std=std.tolist(), mode="separate",
                             n_classes=10)
    joblib.dump(head, tmp_path / "head.joblib")
    served = Predictor.from_files(tmp_path / "base.pt", tmp_path / "aux.pt", tmp_path / "head.joblib", digits.classes)
    np.testing.assert_allclose(served.head_inputs(digits.images[:50]), x[:50], atol=1e-6)


def test_min_ratio_passes_at_the_ratio_and_refuses_below_it():
    shape = (1, 8, 8)
    asked = count_parameters(ConvNet(shape, 10, 4))  # a classes aux: its K outputs count
    assert auxiliary.check_budget(shape, 4, "full", 1, 3 * asked, min_ratio=3, n_outputs=10) == asked
    with pytest.raises(AuxcutError, match=r"only 2\.99x fewer .* at least 3x smaller \(aux\.width 3 fits\)$"):
        auxiliary.check_budget(shape, 4, "full", 1, 3 * asked - 1, min_ratio=3, n_outputs=10)
    assert auxiliary.check_budget(shape, 4, "full", 1, asked, min_ratio=1, n_outputs=10) == asked  # as large as the base


def write_params(tmp_path, params_dict, **aux) -> str:
    params_dict["aux"].update(aux)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params_dict))
    return str(path)


def test_an_aux_over_the_budget_is_refused_when_params_are_read(tmp_path, params_dict):
    # before train_base trains: the base params build (digits 1 x 8 x 8, 10 classes, base.width 32) against the aux
    base, aux = count_parameters(ConvNet((1, 8, 8), 10, 32)), count_parameters(ConvNet((1, 8, 8), 1, 16))
    assert 3 < base / aux < 10
    with pytest.raises(AuxcutError) as exc:
        load_params(write_params(tmp_path, params_dict, width=16))
    assert str(exc.value) == (f"{tmp_path / 'params.yaml'}: aux.width=16 gives {aux:,} parameters, {aux:,} in all: only "
                              f"{math.floor(100 * base / aux) / 100:.2f}x fewer than the base's {base:,}; the aux must "
                              f"be at least 10x smaller (aux.width 9 fits)")
    assert load_params(write_params(tmp_path, params_dict, width=16, min_ratio=3)).aux.width == 16  # lowered: fits
    # MNIST with the paper's net: 21,840 parameters take a convnet aux of width 5, not the default 8
    params_dict["data"].update(source="mnist", image_size=28)
    params_dict["base"]["arch"] = "pmnist_net"
    with pytest.raises(AuxcutError, match=r"aux.width=8 gives .* than the base's 21,840; .* \(aux.width 5 fits\)$"):
        load_params(write_params(tmp_path, params_dict, width=8, min_ratio=10))
    params_dict["data"].update(source="imagefolder")  # its classes are counted by prepare: train_aux checks then
    assert load_params(write_params(tmp_path, params_dict, width=8)).aux.width == 8


def test_min_ratio_below_one_is_one_params_line(tmp_path, params_dict):
    assert load_params(write_params(tmp_path, params_dict, min_ratio=1)).aux.min_ratio == 1.0
    with pytest.raises(AuxcutError) as exc:
        load_params(write_params(tmp_path, params_dict, min_ratio=0.99))
    assert str(exc.value) == (f"{tmp_path / 'params.yaml'}: aux.min_ratio: must be at least 1 (auxes at most as large "
                              f"as the base; the seed method's rule is 10), got 0.99")


@pytest.mark.parametrize(("changes", "message"), [
    ({"aux": {"target": "random_cut"}, "maxcut": {"depth": 2}}, "aux.target random_cut trains one aux, but maxcut.depth 2"),
    ({"aux": {"target": "classes"}, "head": {"aux_features": "paths"}}, "head.aux_features paths reads"),
    ({"aux": {"target": "classes", "mode": "head"}}, "aux.target classes trains one separate multiclass aux"),
    ({"aux": {"target": "classes", "objective": "residual"}}, "aux.target classes trains one separate multiclass aux"),
])
def test_a_control_with_what_needs_the_tree_of_cuts_is_refused(tmp_path, params_dict, changes, message):
    for section, values in changes.items():
        params_dict[section].update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params_dict))
    with pytest.raises(AuxcutError, match=message) as exc:
        load_params(path)
    assert "\n" not in str(exc.value)


def test_a_random_cut_takes_the_aux_variants_of_a_cut(tmp_path, params_dict):
    params = load_params(write_params(tmp_path, params_dict, target="random_cut", objective="residual", mode="separate"))
    assert params.aux.target == "random_cut"


def test_the_summary_says_when_the_aux_is_a_control_or_the_rule_is_lowered():
    assert summary.aux_control_lines({"target": "cut", "min_ratio": 10.0}) == []
    drawn = {"draw": 2, "side_0": ["0", "1"], "side_1": ["2"], "same_as_max_cut": False}
    [line] = summary.aux_control_lines({"target": "random_cut", "min_ratio": 10.0, "random_cut": drawn})
    assert line.startswith("aux target: random_cut (a control)") and line.endswith("(draw 2), not the max-cut: 0, 1 | 2")
    agree = {"aux_accuracy": 0.5, "base_accuracy": 0.75, "error_correlation": 0.25}
    classes, lowered = summary.aux_control_lines({"target": "classes", "min_ratio": 3.0, "class_agreement": agree})
    assert classes.endswith("test accuracy aux 0.500, base 0.750; error correlation +0.25")
    assert lowered.endswith("aux.min_ratio 3: the auxes need only be 3x smaller than the base, not the seed method's 10x")
