"""The pieces of issue 11's variants, without DVC: the aux as a head on a copy of the base, attribute labels hidden
for the masked loss, early exits (the net, its FLOPs, the threshold sweep and the operating point), and the params
that are wrong together."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from auxcut import AuxcutError
from auxcut.variants import attributes, exits, joint
from auxcut.nets import training
from auxcut.method.hierarchy import ClassTree, CutNode
from auxcut.nets.models import ConvNet, count_parameters
from auxcut.pipeline.params import load_params
from auxcut.variants.checks import prefix_groups


def test_joint_net_starts_as_the_base_with_fresh_cut_heads():
    torch.manual_seed(0)
    base = ConvNet((3, 16, 16), 6, 8).eval()
    net = joint.from_base(base, n_cuts=3).eval()
    x = torch.randn(5, 3, 16, 16)
    out = net(x)
    assert out.shape == (5, 6 + 2 * 3)
    torch.testing.assert_close(out[:, :6], base(x))  # the class head is the base's, untouched
    assert count_parameters(net) - count_parameters(base) == 3 * 2 * (base.classifier[1].in_features + 1)
    sides = np.array([[0, -1, 1], [1, 0, -1]])
    np.testing.assert_array_equal(joint.targets(np.array([4, 2]), sides), [[4, 0, -1, 1], [2, 1, 0, -1]])
    probs = np.array([[0.5, 0.5, 0.9, 0.1, 0.3, 0.7]])
    class_probs, cut_probs = joint.split(probs, 2)
    np.testing.assert_array_equal(class_probs, [[0.5, 0.5]])
    np.testing.assert_array_equal(cut_probs, [[0.1, 0.7]])  # each cut's probability of side 1


def test_hidden_labels_are_seeded_nested_per_attribute_and_train_only():
    codes = np.random.default_rng(0).integers(0, 3, size=(4000, 3))
    train = np.arange(3000)
    half, most = attributes.hide(codes, train, 0.5, seed=1), attributes.hide(codes, train, 0.9, seed=1)
    assert (half[3000:] == codes[3000:]).all() and (most[3000:] == codes[3000:]).all()  # val and test keep theirs
    for a in range(3):
        assert abs((half[train, a] == training.MISSING).mean() - 0.5) < 0.04
        assert abs((most[train, a] == training.MISSING).mean() - 0.9) < 0.03
    assert ((half == training.MISSING) <= (most == training.MISSING)).all()  # hidden at 50% is hidden at 90%
    assert not np.array_equal(half[:, 0] == -1, half[:, 1] == -1)  # each attribute draws on its own
    np.testing.assert_array_equal(half, attributes.hide(codes, train, 0.5, seed=1))
    assert (attributes.hide(codes, train, 0.0, seed=1) == codes).all()


def test_shared_heads_and_separate_nets_see_the_same_labels_and_are_scored_on_test():
    rng = np.random.default_rng(0)
    codes = np.column_stack([np.arange(48) % 2, np.arange(48) % 3])  # two attributes: a side and a 3-way class
    images = rng.integers(0, 60, size=(48, 1, 8, 8)).astype(np.uint8)
    images[:, 0, :4, :4] += (80 * codes[:, 0]).astype(np.uint8)[:, None, None]
    images[:, 0, 4:, 4:] += (60 * codes[:, 1]).astype(np.uint8)[:, None, None]
    attrs = attributes.Attributes(["side", "kind"], [["a", "b"], ["x", "y", "z"]], codes)
    train, val, test = np.arange(24), np.arange(24, 36), np.arange(36, 48)
    cfg = SimpleNamespace(width=2, epochs=2, batch_size=8, lr=0.01, weight_decay=0.0, patience=5, augment=False)
    mean, std, cpu, said = np.array([0.2]), np.array([0.3]), torch.device("cpu"), []
    shared, row = attributes.compare(images, attrs, train, val, test, 0.5, cfg, "full", 0, mean, std, cpu, True,
                                     said.append)
    hidden = attributes.hide(codes, train, 0.5, 0) == training.MISSING
    assert row["known_train_labels"] == {"side": int((~hidden[train, 0]).sum()), "kind": int((~hidden[train, 1]).sum())}
    probs = training.Heads((2, 3)).split_probs(training.predict_proba(shared, images[test], mean, std,
                                                                      task=training.Heads((2, 3)), batch_size=8,
                                                                      device=cpu))
    for a, name in enumerate(attrs.names):  # scored on test only
        assert row["shared"]["accuracy"][name] == float((probs[a].argmax(1) == codes[test, a]).mean())
    assert row["majority"] == {"side": 0.5, "kind": 4 / 12}
    assert row["shared"]["parameters"] == count_parameters(shared) == count_parameters(ConvNet((1, 8, 8), 5, 2))
    assert row["separate"]["parameters"] == sum(count_parameters(ConvNet((1, 8, 8), k, 2)) for k in (2, 3))
    assert len(said) == 1 and said[0].startswith("50% hidden: side ")
    assert attributes.compare(images, attrs, train, val, test, 0.5, cfg, "full", 0, mean, std, cpu, False,
                              said.append) is None  # torchrun's other processes: trained, not scored


def test_attribute_table_takes_the_groups_and_the_cut():
    samples = pd.DataFrame({"label": [0, 1, 2, 3], "group_race": ["b", "a", "b", "c"], "group_gender": ["m", "f", "f", "m"]})
    relabeled = pd.DataFrame({"node_0": [0, 1, 1, 0]})
    table = attributes.table(samples, relabeled, ["w", "x", "y", "z"], [])
    assert table.names == ["race", "gender", "cut"] and table.sizes == (3, 2, 2)
    np.testing.assert_array_equal(table.codes[:, 0], [1, 0, 1, 2])
    np.testing.assert_array_equal(table.codes[:, 2], [0, 1, 1, 0])
    assert attributes.table(samples, relabeled, ["w", "x", "y", "z"], ["class"]).sizes == (4,)
    with pytest.raises(AuxcutError, match="attributes.names has age"):
        attributes.table(samples, relabeled, ["w", "x", "y", "z"], ["age"])


def _tree() -> ClassTree:
    # classes 0..5: the root splits {0,1,2} | {3,4,5}; its children split {0} | {1,2} and {3,4} | {5}
    nodes = [CutNode(0, None, None, 1, [0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 1, 1], [1, 2]),
             CutNode(1, 0, 0, 2, [0, 1, 2], [0, 1, 1]), CutNode(2, 0, 1, 2, [3, 4, 5], [0, 0, 1])]
    return ClassTree([f"c{i}" for i in range(6)], 2, nodes)


def test_exit_groups_from_the_tree_the_prefix_or_a_partition():
    tree, classes = _tree(), [f"c{i}" for i in range(6)]
    first, second, third = exits.resolve_groups("tree", classes, tree, 3)
    np.testing.assert_array_equal(first, [0, 0, 0, 1, 1, 1])  # coarse -> finer down the exits
    np.testing.assert_array_equal(second, [0, 1, 1, 2, 2, 3])
    np.testing.assert_array_equal(third, second)  # below the tree's depth: its leaves
    faces = ["0-25/a", "0-25/b", "26-45/a", "26-45/b", "46+/a", "46+/b"]
    assert prefix_groups(faces) == [[0, 1], [2, 3], [4, 5]]
    np.testing.assert_array_equal(exits.resolve_groups("prefix", faces, tree, 1)[0], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(exits.resolve_groups([[0, 5], [1, 2, 3, 4]], classes, tree, 1)[0], [0, 1, 1, 1, 1, 0])
    for bad, message in [([[0, 1], [2, 3]], r"leaves classes \[4, 5\] out"), ([[0, 1, 2], [2, 3, 4, 5]], "more than one"),
                         ([[0, 1, 2, 3, 4, 5, 6]], r"names classes \[6\]"), ([[c] for c in range(6)], "6 groups for 6")]:
        with pytest.raises(AuxcutError, match=message):
            exits.resolve_groups(bad, classes, tree, 1)
    # a cut over other nodes (discovered fine labels, or a stale cut) cannot group the classes
    for other in ([f"c{i}/f" for i in range(6)], classes[:5]):
        with pytest.raises(AuxcutError, match=r"exits.groups: tree needs data/cut.json over the data's \d given classes"):
            exits.resolve_groups("tree", other, tree, 2)


def _block_confusion(blocks: list[list[int]], seed: int) -> np.ndarray:
    """Val confusion counts over the classes in `blocks`: many mistakes inside each block, a few anywhere."""
    rng = np.random.default_rng(seed)
    n = sum(map(len, blocks))
    counts = rng.integers(0, 3, (n, n)) + np.diag(rng.integers(50, 100, n))
    for block in blocks:
        counts[np.ix_(block, block)] += rng.integers(10, 20, (len(block), len(block)))
    return counts


def test_confusion_clusters_are_the_blocks_the_base_confuses_and_are_seeded():
    from auxcut.method.confusion import confusion_weights

    blocks = [[0, 4, 7, 9], [1, 2, 8], [3, 5, 6]]  # interleaved, so the class order does not give them away
    weights = confusion_weights(_block_confusion(blocks, seed=0))
    assert exits.confusion_clusters(weights, 3, seed=0) == blocks  # groups in order of their first class
    for seed in range(1, 4):  # another draw of the clustering: the same groups, numbered the same way
        assert exits.confusion_clusters(weights, 3, seed=seed) == blocks
    classes = [f"c{i}" for i in range(10)]
    first, second = exits.resolve_groups("clusters", classes, _tree(), 2, weights, 3, seed=0)
    np.testing.assert_array_equal(first, [0, 1, 1, 2, 0, 2, 2, 0, 1, 0])
    np.testing.assert_array_equal(second, first)  # one grouping at every exit
    # the clusters leave a coarse exit little of the confusion; a grouping across the blocks leaves it most
    assert exits.between_groups(weights, first) < 0.2 < 0.6 < exits.between_groups(weights, np.arange(10) % 3)
    fig = exits.plot_groups(weights, [first, second], classes, [1, 3], "clusters")
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert titles == [f"exit after layer {a}: 3 groups, {exits.between_groups(weights, first):.0%} of the "
                          f"confusion between" for a in (1, 3)]
        assert sorted(t.get_text() for t in fig.axes[0].texts) == sorted(classes)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


@pytest.mark.parametrize("n_groups", [1, 10, 0])
def test_confusion_clusters_refuse_a_group_count_outside_2_to_classes_less_1(n_groups):
    from auxcut.method.confusion import confusion_weights

    weights = confusion_weights(_block_confusion([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], seed=1))
    with pytest.raises(AuxcutError, match=rf"^exits.n_groups is {n_groups}, expected 2..9 for 10 classes"):
        exits.resolve_groups("clusters", [str(c) for c in range(10)], _tree(), 1, weights, n_groups, seed=0)
    assert len(exits.confusion_clusters(weights, 9, seed=0)) == 9  # the bounds themselves are fine


def test_exit_net_counts_flops_up_to_each_exit_and_freezes_the_base():
    torch.manual_seed(0)
    base = ConvNet((3, 32, 32), 6, 8)
    net = exits.from_base(base, [2, 4], [2, 4], 8, frozen=True)
    assert net.head_sizes == (2, 4, 6)
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(net.eval()(x)[:, -6:], base.eval()(x))  # the final exit is the base
    cost = exits.flops_per_exit(net)
    full = exits.flops(base, (3, 32, 32))
    assert cost[0] < cost[1] < full < cost[2]  # the last passes every exit on its way
    assert cost[0] < 0.5 * full
    net.train()
    assert not net.base.training and net.exits[0].training  # frozen: the base's batch norm keeps its statistics
    assert not any(p.requires_grad for p in net.base.parameters())
    with pytest.raises(AuxcutError, match="exits.after"):
        exits.from_base(base, [6], [2], 8, frozen=True)  # 3 blocks: 6 conv layers, the last is the fine exit's
    again = exits.build(net.arch)
    again.load_state_dict(net.state_dict())
    torch.testing.assert_close(again.eval()(x), net.eval()(x))


def test_flops_are_the_hand_count_of_the_convolutions_and_linear_layers():
    """2 * Cin * Cout * k^2 * H * W per 3x3 conv, 2 * in * out per linear layer (biases, batch norm, ReLU and pooling
    are not counted): the base's full depth, and each exit's cost, which adds the exit branches on the way."""
    def conv(c_in, c_out, side):
        return 2 * c_in * c_out * 3 * 3 * side * side

    def linear(n_in, n_out):
        return 2 * n_in * n_out

    base = ConvNet((3, 16, 16), 6, 4)  # two blocks: 3 -> 4 -> 4 channels at 16x16, 4 -> 8 -> 8 at 8x8, then 8 -> 6
    full = conv(3, 4, 16) + conv(4, 4, 16) + conv(4, 8, 8) + conv(8, 8, 8) + linear(8, 6)
    assert full == 239_712 and exits.flops(base, (3, 16, 16)) == full
    net = exits.from_base(base, [1, 3], [2, 3], 5, frozen=True)
    branch_1 = conv(4, 5, 8) + linear(5, 2)  # after layer 1: pooled from 16x16 to 8x8, then one conv to 5 channels
    branch_3 = conv(8, 5, 8) + linear(5, 3)  # after layer 3: already 8x8
    assert exits.flops_per_exit(net) == [conv(3, 4, 16) + branch_1,
                                         conv(3, 4, 16) + conv(4, 4, 16) + conv(4, 8, 8) + branch_1 + branch_3,
                                         full + branch_1 + branch_3]


def test_sweep_answers_at_the_first_sure_exit_and_picks_the_cheapest_point_on_val():
    labels = np.array([0, 1, 2, 3])
    groups = [np.array([0, 0, 1, 1])]
    coarse = np.array([[0.95, 0.05], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3]])  # the last image's coarse answer is wrong
    fine = np.eye(4)[[0, 1, 2, 2]] * 0.9 + 0.025  # the fine net is wrong on the last image too
    outputs = exits.ExitOutputs([coarse], fine)
    np.testing.assert_array_equal(exits.answer(outputs, (0.75,)), [0, 1, 0, 1])
    curve = exits.sweep(outputs, labels, groups, [30, 110], 100, [0.5, 0.75, 0.9])
    assert len(curve) == 4 and curve["threshold_1"].isna().sum() == 1
    never = curve[curve["threshold_1"].isna()].iloc[0]
    assert never["accuracy"] == 0.75 and never["coarse_share"] == 0 and never["flops"] == pytest.approx(1.1)
    at_half = curve[curve["threshold_1"] == 0.5].iloc[0]
    assert at_half["coarse_share"] == 1 and at_half["accuracy"] == 0.75 and at_half["flops"] == pytest.approx(0.3)
    at_75 = curve[curve["threshold_1"] == 0.75].iloc[0]
    assert at_75["coarse_share"] == 0.5 and at_75["coarse_right"] == 1 and at_75["fine_right"] == 0.25
    assert at_75["accuracy"] == 0.75 and at_75["flops"] == pytest.approx((0.3 * 2 + 1.1 * 2) / 4)
    best = exits.frontier(curve)
    assert list(best["flops"]) == sorted(best["flops"]) and best["accuracy"].is_monotonic_increasing
    # all coarse at 0.5 has 75% accuracy but a coarse answer right 75% < 90% of the time: 0.75 is the cheapest allowed
    point = exits.operating_point(curve, full_accuracy=0.75)
    assert curve.loc[point, "threshold_1"] == 0.75
    aim = exits.aim(curve.loc[point].to_dict(), 0.75)
    assert aim["accuracy_within_1_point"] and aim["coarse_right_at_least_90_percent"]
    assert not aim["flops_at_most_60_percent"] and not aim["met"]


def test_exits_are_scored_on_test_at_the_point_picked_on_val():
    labels = np.tile([0, 1, 2, 3], 2)  # rows 0..3 val, 4..7 test
    groups = [np.array([0, 0, 1, 1])]
    val_coarse = np.array([[0.95, 0.05], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3]])  # as in the sweep test above
    test_coarse = np.array([[0.95, 0.05], [0.8, 0.2], [0.2, 0.8], [0.3, 0.7]])  # on test every coarse answer is right
    fine = np.eye(4)[[0, 1, 2, 2, 0, 1, 2, 2]] * 0.9 + 0.025
    outputs = exits.ExitOutputs([np.vstack([val_coarse, test_coarse])], fine)
    split = {"val": np.arange(4), "test": np.arange(4, 8)}
    scored = exits.score(outputs, labels, split, groups, [30, 110], 100, [0.5, 0.75, 0.9])
    assert scored.full == {"val": 0.75, "test": 0.75}
    assert scored.curves["val"].loc[scored.point, "threshold_1"] == 0.75  # picked on val: 0.5 is wrong too often there
    table = scored.table()
    assert table.loc[scored.point, "val_coarse_right"] == 1 and table.loc[scored.point, "val_flops"] == pytest.approx(0.7)
    assert list(table["accuracy"]) == list(scored.curves["test"]["accuracy"])
    torch.manual_seed(0)
    base = ConvNet((3, 32, 32), 4, 8)
    fitted = training.FitResult(exits.from_base(base, [2], [2], 8, frozen=True), 2, [{"epoch": 1}, {"epoch": 2}])
    base_probs = np.eye(4)[[0, 1, 2, 3, 0, 1, 3, 3]]  # wrong on one test image
    metrics = exits.summary(scored, outputs, labels, split["test"], groups, ["a", "b", "c", "d"], [2], fitted, base,
                            base_probs)
    point = metrics["operating_point"]
    assert point["threshold_1"] == 0.75 and point["picked_on"] == "val"
    # reported with the test curve's columns at that row: on test, 0.75 lets three images out coarse (on val two)
    assert point["test"] == scored.curves["test"].loc[scored.point, list(point["test"])].to_dict()
    assert point["test"]["coarse_share"] == 0.75 and point["test"]["coarse_right"] == 1
    assert metrics["exits"] == [{"after_layer": 2, "groups": ["a+b", "c+d"], "flops": 30, "flops_ratio": 0.3,
                                 "test_accuracy": 1.0}]
    assert metrics["base_accuracy"] == 0.75 and metrics["full_accuracy"] == scored.full
    assert metrics["exit_parameters"] == count_parameters(fitted.model.exits) and metrics["epochs_run"] == 2
    assert metrics["aim"] == exits.aim(scored.picked, 0.75)


def _params_with(tmp_path, change) -> str:
    raw = yaml.safe_load(open("params.yaml"))
    change(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p["exits"].update(groups=[[0, 1, 2], [3, 4]]), r"exits.groups leaves classes \[5, 6, 7, 8, 9\] out"),
    (lambda p: p["exits"].update(groups="prefix"), "10 groups for 10 classes"),
    (lambda p: p["exits"].update(groups="clusters", n_groups=10), r"exits.n_groups is 10, expected 2..9 for 10 classes"),
    (lambda p: (p["data"].update(source="utkface", classes="age_race"), p["exits"].update(groups="clusters", n_groups=1)),
     r"exits.n_groups is 1, expected 2..14 for 15 classes"),
    (lambda p: p["exits"].update(after=[2]), "exits.after .* 2 conv layers"),
    (lambda p: p["exits"].update(after=[1, 1]), "after must be increasing"),
    (lambda p: p["exits"].update(thresholds=[0.0, 0.5]), r"thresholds must be in \(0, 1\]"),
    (lambda p: p["attributes"].update(hidden=[0.5, 1.2]), r"hidden fraction must be in \[0, 1\).*1.2"),
    (lambda p: p["attributes"].update(hidden=[-0.1]), r"hidden fraction must be in \[0, 1\)"),
    (lambda p: p["attributes"].update(names=["race"]), "attributes.names has race"),
    (lambda p: p["aux"].update(mode="head", objective="residual"), "aux.mode head .* aux.objective must be plain"),
    (lambda p: (p["data"].update(source="utkface", classes="age_race"), p["exits"].update(groups=[list(range(10)), [10]])),
     r"leaves classes \[11, 12, 13, 14\] out"),
])
def test_wrong_combinations_are_one_line_naming_the_params(tmp_path, change, message):
    with pytest.raises(AuxcutError, match=message) as caught:
        load_params(_params_with(tmp_path, change))
    assert "\n" not in str(caught.value) and str(caught.value).startswith(str(tmp_path))


def test_utkface_age_bucket_grouping_is_valid(tmp_path):
    path = _params_with(tmp_path, lambda p: (p["data"].update(source="utkface", classes="age_race_gender", image_size=64),
                                             p["exits"].update(groups="prefix", after=[2, 4]),
                                             p["attributes"].update(names=["age", "race", "gender", "cut"])))
    params = load_params(path)
    assert params.exits.groups == "prefix" and params.exits.after == [2, 4]
