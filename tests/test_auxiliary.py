"""The aux of train_aux (auxcut.method.auxiliary, auxcut.variants.joint_training): the parameter budget, each cut's
metrics and the two training modes, on real ConvNets."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from auxcut import AuxcutError
from auxcut.data import prepared
from auxcut.method import auxiliary
from auxcut.method.hierarchy import ClassTree, CutNode
from auxcut.nets import training
from auxcut.nets.models import VIEWS, ConvNet, count_parameters
from auxcut.variants import joint, joint_training

SHAPE = (3, 32, 32)


def auxes(width: int, view: str, n_nets: int) -> int:
    """What n_nets auxes of this width and view weigh, counted on the nets themselves."""
    return n_nets * count_parameters(ConvNet(SHAPE, 1, width, view))


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("n_nets", [1, 3, 7])  # a single cut; the trees of maxcut.depth 2 and 3
def test_the_budget_passes_at_ten_times_and_refuses_below(view, n_nets):
    asked = auxes(8, view, n_nets)
    assert auxiliary.check_budget(SHAPE, 8, view, n_nets, 10 * asked, min_ratio=10) == asked  # exactly 10x: allowed
    with pytest.raises(AuxcutError) as refused:
        auxiliary.check_budget(SHAPE, 8, view, n_nets, math.ceil(9.99 * asked), min_ratio=10)  # 9.99x: refused
    message = str(refused.value)
    assert "\n" not in message and "aux.width=8" in message and "9.99x fewer" in message
    assert ("auxes (one per cut of the tree)" in message) == (n_nets > 1)


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("n_nets", [1, 3])
def test_the_refusal_names_the_widest_width_that_fits(view, n_nets):
    # a base exactly 10x the auxes of width 5: 5 fits (at the boundary), 6 does not
    base = 10 * auxes(5, view, n_nets)
    assert auxes(6, view, n_nets) * 10 > base
    with pytest.raises(AuxcutError, match=r"\(aux\.width 5 fits\)$"):
        auxiliary.check_budget(SHAPE, 12, view, n_nets, base, min_ratio=10)
    with pytest.raises(AuxcutError, match=r"no aux\.width fits: lower maxcut\.depth or widen the base"):
        auxiliary.check_budget(SHAPE, 12, view, n_nets, 10 * auxes(1, view, n_nets) - 1, min_ratio=10)


def tree() -> ClassTree:
    # classes 0..3: the root splits {0,1} | {2,3}, and its child splits {2} | {3}
    nodes = [CutNode(0, None, None, 1, [0, 1, 2, 3], [0, 0, 1, 1], [None, 1]), CutNode(1, 0, 1, 2, [2, 3], [0, 1])]
    return ClassTree([f"c{i}" for i in range(4)], 2, nodes)


def dataset(per_class: int = 30) -> prepared.Dataset:
    """Four classes of 8x8 images, told apart by which quadrant is bright; 1/2 train, 1/4 val, 1/4 test."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), per_class)
    images = rng.integers(0, 60, size=(len(labels), 1, 8, 8)).astype(np.uint8)
    for i, label in enumerate(labels):
        top, left = divmod(label, 2)
        images[i, 0, 4 * top:4 * top + 4, 4 * left:4 * left + 4] += 180
    split = np.tile(np.array(["train", "train", "val", "test"]), len(labels) // 4)
    samples = pd.DataFrame({"label": labels, "class_name": [f"c{k}" for k in labels], "split": split})
    return prepared.Dataset(images=images, samples=samples, classes=[f"c{k}" for k in range(4)])


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")  # the empty test split
def test_node_metrics_score_a_cut_on_its_own_images_per_split():
    ds = dataset(per_class=4)  # 16 images: rows 0..7 are classes 0 and 1 (not under the cut), 8..15 classes 2 and 3
    targets = tree().node_labels(ds.samples["label"].to_numpy())[:, 1]
    prob = np.where(targets == 1, 0.9, 0.1)
    prob[[8, 12]] = 0.8  # wrong on row 8 (class 2, side 0), still right on row 12 (class 3, side 1)
    base_side = np.full(16, 0.5)
    metrics = auxiliary.node_metrics(1, prob, targets, base_side, ds)
    under = {s: [i for i in ds.indices(s) if targets[i] >= 0] for s in prepared.SPLITS}
    assert under == {"train": [8, 9, 12, 13], "val": [10, 14], "test": [11, 15]}
    assert metrics["accuracy"] == {"train": 0.75, "val": 1.0, "test": 1.0}
    assert metrics["majority_rate"] == {"train": 0.5, "val": 0.5, "test": 0.5}
    assert metrics["test"]["aux_side_accuracy"] == 1.0 and metrics["test"]["base_side_accuracy"] == 0.5
    # a cut with no image in a split says so, rather than scoring nothing as 0
    none_in_test = np.where(ds.samples["split"].to_numpy() == "test", -1, targets)
    assert auxiliary.node_metrics(1, prob, none_in_test, base_side, ds)["accuracy"]["test"] is None


def settings(**changes) -> SimpleNamespace:
    cfg = dict(width=2, epochs=2, batch_size=16, lr=0.01, weight_decay=0.0, patience=5, augment=False,
               objective="plain", strength=0.0, view="full", mode="separate", arch="convnet", small_input="auto",
               target="cut", min_ratio=10.0)
    return SimpleNamespace(**{**cfg, **changes})


def inputs(ds: prepared.Dataset, width: int = 16):
    torch.manual_seed(0)
    base = ConvNet(tuple(ds.images.shape[1:]), len(ds.classes), width)
    labels = ds.samples["label"].to_numpy()
    base_probs = np.eye(4)[labels] * 0.6 + 0.1
    relabeled = pd.DataFrame({f"node_{k}": tree().node_labels(labels)[:, k] for k in range(2)})
    mean, std = training.channel_stats(ds.images, ds.indices("train"))
    return base, base_probs, relabeled, mean, std


def test_separate_auxes_one_per_cut_within_the_budget():
    ds = dataset()
    base, base_probs, relabeled, mean, std = inputs(ds)
    said = []
    out = auxiliary.train_separate(ds, tree(), relabeled, base, base_probs, base_probs, mean, std, settings(), 0,
                                   torch.device("cpu"), True, said.append)
    per_aux = count_parameters(ConvNet((1, 8, 8), 1, 2))
    assert len(out.models) == 2 and out.parameters == 2 * per_aux
    assert [n["parameters"] for n in out.nodes] == [per_aux, per_aux] and [n["classes"] for n in out.nodes] == [4, 2]
    assert out.aux_probs.shape == (len(ds.samples), 2) and out.class_probs is base_probs  # stacked on the base's
    np.testing.assert_allclose(out.aux_probs[:, 1], training.predict_proba(out.models[1], ds.images, mean, std,
                                                                           task="binary", batch_size=16,
                                                                           device=torch.device("cpu")))
    assert said == [f"base {count_parameters(base):,} parameters, 2 aux(es) {2 * per_aux:,} "
                    f"({count_parameters(base) / (2 * per_aux):.1f}x fewer); objective plain, view full"]
    # torchrun's other processes train but return nothing; over the budget, nothing trains at all
    assert auxiliary.train_separate(ds, tree(), relabeled, base, base_probs, base_probs, mean, std, settings(), 0,
                                    torch.device("cpu"), False, said.append) is None
    with pytest.raises(AuxcutError, match="2 auxes"):
        auxiliary.train_separate(ds, tree(), relabeled, base, base_probs, base_probs, mean, std, settings(width=8),
                                 0, torch.device("cpu"), True, lambda _: pytest.fail("trained over the budget"))
    metrics = auxiliary.summary(out, settings(), ds, base, base_probs, mean, std, torch.device("cpu"))
    assert metrics["auxes"] == 2 and metrics["nodes"] == out.nodes and metrics["inference"]["forward_passes"] == 3
    assert metrics["base_over_aux_parameters"] == count_parameters(base) / out.parameters
    assert metrics["class_accuracy"]["base"] == metrics["class_accuracy"]["stacked_on"] == 1.0


def test_cut_heads_on_the_base_stack_on_their_own_class_head():
    ds = dataset()
    base, base_probs, relabeled, mean, std = inputs(ds)
    out = joint_training.train_heads(ds, tree(), relabeled, base, base_probs, base_probs, mean, std,
                                     settings(mode="head"), 0, torch.device("cpu"), True, lambda _: None)
    [net] = out.models
    assert out.parameters == count_parameters(net) - count_parameters(base) == 2 * 2 * (base.classifier[1].in_features + 1)
    probs = training.predict_proba(net, ds.images, mean, std, task=joint.heads(4, 2), batch_size=16,
                                   device=torch.device("cpu"))
    np.testing.assert_allclose(out.class_probs, probs[:, :4])
    np.testing.assert_allclose(out.aux_probs, probs[:, [5, 7]])
    assert [n["parameters"] for n in out.nodes] == [out.parameters // 2] * 2
    metrics = auxiliary.summary(out, settings(mode="head"), ds, base, base_probs, mean, std, torch.device("cpu"))
    assert metrics["mode"] == "head" and metrics["inference"]["forward_passes"] == 1
