"""Architectures by name (auxcut.nets.backbones): convnet as it always was, the missing-feature paper's MNIST net,
torchvision's models with the small-input stem, checkpoints that rebuild any of them, weights from disk, and the
one-line refusals before any training. Tiny images only: every net here is built and run on a few pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from auxcut import AuxcutError
from auxcut.method import auxiliary, stacking
from auxcut.nets import backbones, embedding, training
from auxcut.nets.models import ConvNet, count_parameters
from auxcut.pipeline.params import NO_WEIGHTS, load_params
from auxcut.pipeline.predictor import Predictor
from auxcut.variants import discovery, exits, fine_training, joint
from conftest import REPO, predictor_files


def test_convnet_by_name_is_todays_convnet():
    torch.manual_seed(0)
    by_name = backbones.make("convnet", (1, 8, 8), 10, width=32)
    after_make = torch.get_rng_state()
    torch.manual_seed(0)
    today = ConvNet((1, 8, 8), 10, 32)
    assert torch.equal(after_make, torch.get_rng_state())  # the size check draws nothing: training goes on the same
    assert by_name.arch == today.arch and "name" not in by_name.arch  # checkpoints stay byte for byte the same
    assert all(torch.equal(a, b) for a, b in zip(by_name.state_dict().values(), today.state_dict().values()))


@pytest.mark.parametrize("name, activation", [("pmnist_net", nn.ReLU), ("pmnist_net_relu6", nn.ReLU6),
                                              ("pmnist_net_sigmoid", nn.Sigmoid), ("pmnist_net_tanh", nn.Tanh)])
def test_pmnist_net_is_the_papers_net(name, activation):
    net = backbones.make(name, (1, 28, 28), 10, width=0)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 10, (5, 5)), (10, 20, (5, 5))]
    fc1 = next(m for m in net.features if isinstance(m, nn.Linear))
    assert (fc1.in_features, fc1.out_features) == (320, 50)  # the last conv map flattened: 20 x 4 x 4
    assert (net.classifier.in_features, net.classifier.out_features) == (50, 10)
    assert sum(isinstance(m, activation) for m in net.features) == 3
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_small_input_is_chosen_below_the_documented_side_and_can_be_overridden():
    small = backbones.make("resnet18", (1, 8, 8), 10, width=0)
    stem = small.features.net.conv1
    assert (stem.kernel_size, stem.stride) == ((3, 3), (1, 1)) and isinstance(small.features.net.maxpool, nn.Identity)
    assert small.arch["small_input"] is True
    assert small(torch.zeros(2, 1, 8, 8)).shape == (2, 10)  # one channel repeated into torchvision's three
    side = backbones.SMALL_INPUT_MAX_SIDE
    assert backbones.uses_small_input("resnet18", (3, side, side), "auto")
    assert not backbones.uses_small_input("resnet18", (3, side + 1, side + 1), "auto")
    assert not backbones.uses_small_input("resnet18", (3, 8, 8), False)
    assert not backbones.uses_small_input("convnet", (3, 8, 8), True)  # sized to its input already
    standard = backbones.make("resnet18", (3, 32, 32), 10, width=0, small_input=False)
    assert standard.features.net.conv1.kernel_size == (7, 7)


@pytest.mark.parametrize("name, shape", [("resnet18", (1, 8, 8)), ("pmnist_net_tanh", (1, 28, 28)),
                                         ("mobilenet_v3_small", (3, 16, 16))])
def test_a_checkpoint_rebuilds_its_arch(tmp_path, name, shape):
    net = backbones.make(name, shape, 3, width=0).eval()
    training.save_checkpoint(tmp_path / "net.pt", net, mean=[0.0])
    [again], _ = training.load_checkpoint(tmp_path / "net.pt")
    x = torch.randn(4, *shape)
    assert type(again) is type(net) and again.arch == net.arch
    assert torch.equal(again.eval()(x), net(x))


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_an_unknown_arch_is_one_line_listing_valid_names():
    with pytest.raises(AuxcutError) as exc:
        backbones.make("resnet19", (1, 8, 8), 10, width=8, param="aux.arch")
    assert "aux.arch: unknown arch 'resnet19'" in one_line(exc) and "resnet18" in one_line(exc)


@pytest.mark.parametrize("name, shape", [("pmnist_net", (1, 8, 8)), ("vit_b_16", (3, 32, 32))])
def test_an_arch_that_cannot_take_the_image_size_is_one_line(name, shape):
    with pytest.raises(AuxcutError, match=f"base.arch {name}.* cannot take {shape[1]}x{shape[2]} images") as exc:
        backbones.make(name, shape, 10, width=8)
    one_line(exc)


def params_with(tmp_path, monkeypatch, image_size: int = 8, **base):
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["base"].update(base)
    data["data"]["image_size"] = image_size
    data["aux"]["width"] = 4  # within the 10x rule of every base here (pmnist_net's 21,840 parameters take 5 at most)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)  # weights paths are relative to the repository root, where stages run
    return path


@pytest.mark.parametrize("base, message", [
    ({"arch": "resnet19"}, "base.arch: unknown arch 'resnet19'"),
    ({"weights": "models/none.pth"}, "base.weights: no such file models/none.pth"),
    ({"weights": "ResNet18_Weights.IMAGENET1K_V1"}, "auxcut downloads nothing at run time: fetch the .pth file"),
    ({"arch": "pmnist_net"}, r"^[^:]*params.yaml: base.arch pmnist_net cannot take 8x8 images \(.*\); change data"),
])
def test_params_refuse_an_unknown_arch_a_size_it_cannot_take_and_weights_not_on_disk(tmp_path, monkeypatch, base, message):
    with pytest.raises(AuxcutError, match=message) as exc:
        load_params(params_with(tmp_path, monkeypatch, **base))
    one_line(exc)


def test_the_params_sentinel_is_the_backbones_one():
    assert NO_WEIGHTS == backbones.NO_WEIGHTS and (REPO / NO_WEIGHTS).is_file()
    assert not backbones.load_weights(backbones.make("convnet", (1, 8, 8), 10, width=4), NO_WEIGHTS)


@pytest.mark.parametrize("name, shape", [("resnet18", (1, 8, 8)), ("convnet", (1, 8, 8)),
                                         ("pmnist_net", (1, 28, 28))])
def test_weights_from_disk_give_the_saved_models_features(tmp_path, monkeypatch, name, shape):
    trained = backbones.make(name, shape, 10, width=4)
    with torch.no_grad():  # weights no fresh init has, batch-norm statistics included (positive: variances)
        for value in trained.state_dict().values():
            value.copy_((torch.rand_like(value.float()) + 0.5).to(value.dtype))
    torch.save(trained.state_dict(), tmp_path / "weights.pt")
    params = load_params(params_with(tmp_path, monkeypatch, shape[1], arch=name, weights="weights.pt"))
    net = backbones.make(params.base.arch, shape, 3, width=4)  # another class count: the classifier is new
    assert backbones.load_weights(net, params.base.weights)
    x = torch.randn(5, *shape)
    assert torch.equal(net.eval().features(x), trained.eval().features(x))
    head = net.classifier[-1] if name == "convnet" else net.classifier
    assert head.out_features == 3


def test_a_torchvision_weights_file_loads_into_all_but_its_classifier(tmp_path):
    import torchvision

    saved = torchvision.models.resnet18(num_classes=1000).eval()  # a torchvision .pth: its own keys, ImageNet's head
    torch.save(saved.state_dict(), tmp_path / "resnet18.pth")
    net = backbones.make("resnet18", (3, 32, 32), 10, width=0, small_input=False).eval()
    backbones.load_weights(net, str(tmp_path / "resnet18.pth"))
    saved.fc = nn.Identity()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(net.features(x), saved(x))


def test_weights_of_another_arch_are_one_line(tmp_path):
    torch.save(backbones.make("resnet18", (3, 32, 32), 10, width=0, small_input=False).state_dict(), tmp_path / "w.pt")
    mismatch = r"w.pt: not weights of this resnet18: features.net.conv1.weight is \(64, 3, 7, 7\) in the file, " \
               r"\(64, 3, 3, 3\) in the net \(small_input"
    with pytest.raises(AuxcutError, match=mismatch) as exc:
        backbones.load_weights(backbones.make("resnet18", (3, 32, 32), 10, width=0), str(tmp_path / "w.pt"))
    one_line(exc)
    with pytest.raises(AuxcutError, match=r"w.pt: not weights of a pmnist_net \(\d+ keys missing") as exc:
        backbones.load_weights(backbones.make("pmnist_net", (1, 28, 28), 10, width=0), str(tmp_path / "w.pt"))
    one_line(exc)
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(AuxcutError, match="junk.pt: not a PyTorch state dict") as exc:
        backbones.load_weights(backbones.make("convnet", (1, 8, 8), 10, width=4), str(tmp_path / "junk.pt"))
    one_line(exc)


def test_an_aux_arch_breaking_the_ten_times_rule_names_the_widest_convnet_that_fits():
    shape = (1, 8, 8)
    base = count_parameters(backbones.make("convnet", shape, 10, width=32))
    with pytest.raises(AuxcutError) as exc:
        auxiliary.check_budget(shape, 8, "full", 1, base, "pmnist_net", "auto", min_ratio=10)  # pmnist cannot take 8x8 at all
    assert "aux.arch pmnist_net cannot take 8x8" in one_line(exc)
    with pytest.raises(AuxcutError) as exc:
        auxiliary.check_budget(shape, 8, "full", 1, base, "mobilenet_v3_small", "auto", min_ratio=10)
    message = one_line(exc)
    fits = int(message.split("aux.arch convnet with aux.width ")[1].split()[0])
    assert message.startswith("aux.arch=mobilenet_v3_small gives ")
    convnet = count_parameters(backbones.make("convnet", shape, 1, width=fits))
    wider = count_parameters(backbones.make("convnet", shape, 1, width=fits + 1))
    assert base / convnet >= 10 > base / wider


@pytest.mark.parametrize("name, shape", [("resnet18", (1, 8, 8)), ("pmnist_net_sigmoid", (1, 28, 28))])
def test_cut_heads_sit_on_a_copy_of_any_base(name, shape):
    base = backbones.make(name, shape, 4, width=0).eval()
    net = joint.from_base(base, n_cuts=2).eval()
    assert net.arch == {**base.arch, "n_outputs": 4 + 2 * 2}
    x = torch.randn(3, *shape)
    assert torch.allclose(net(x)[:, :4], base(x), atol=1e-6)  # the class head starts as the base's
    backbones.replace_classifier(net, 7)  # what fine-label pretraining does before fine-tuning on the coarse labels
    assert net(x).shape == (3, 7) and net.arch["n_outputs"] == 7


@pytest.mark.parametrize("mode, name, shape", [("pretrain", "pmnist_net_tanh", (1, 28, 28)),
                                               ("multihead", "pmnist_net", (1, 28, 28))])
def test_fine_label_nets_are_the_bases_arch(mode, name, shape):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, *shape), dtype=np.uint8)
    coarse, fine = np.arange(40) % 2, np.arange(40) % 4
    train, val = np.arange(30), np.arange(30, 40)
    base = backbones.make(name, shape, 2, width=0)
    train_fn = fine_training.pretrain_then_finetune if mode == "pretrain" else fine_training.multihead
    net, history = train_fn(base, 2, images, coarse, fine, train, val, epochs=1, finetune_epochs=1, seed=0,
                            mean=np.zeros(1), std=np.ones(1), batch_size=16, lr=1e-3, weight_decay=0.0, patience=2,
                            augment=False, device=torch.device("cpu"))
    assert {k: v for k, v in net.arch.items() if k != "n_outputs"} == {
        k: v for k, v in base.arch.items() if k != "n_outputs"}
    assert len(history) == 2
    probs = fine_training.coarse_probs(net, images, 2, np.zeros(1), np.ones(1), torch.device("cpu"))
    assert probs.shape == (40, 2) and np.allclose(probs.sum(1), 1)


@pytest.mark.parametrize("name, shape, size", [("resnet18", (1, 8, 8), 512), ("pmnist_net_relu6", (1, 28, 28), 50),
                                               ("convnet", (3, 8, 8), 8)])
def test_the_embedding_is_the_classifiers_input_on_any_arch(name, shape, size):
    net = backbones.make(name, shape, 3, width=8).eval()
    images = np.random.default_rng(0).integers(0, 256, (6, *shape), dtype=np.uint8)
    features = embedding.embed(net, images, np.zeros(shape[0]), np.ones(shape[0]), batch_size=4,
                               device=torch.device("cpu"))
    assert features.shape == (6, size)
    head = net.classifier[-1] if name == "convnet" else net.classifier
    logits = head(torch.as_tensor(features, dtype=torch.float32))
    expected = net(torch.as_tensor(images, dtype=torch.float32) / 255.0)
    assert torch.allclose(logits, expected, atol=1e-4)


def test_discovery_reads_any_arch():
    net = backbones.make("resnet18", (1, 8, 8), 3, width=0)
    images = np.random.default_rng(0).integers(0, 256, (5, 1, 8, 8), dtype=np.uint8)
    entropy = discovery.augmented_entropy(net, images, np.zeros(1), np.ones(1), augmentations=2, flip=False, seed=0,
                                          batch_size=4, device=torch.device("cpu"))
    assert entropy.shape == (5,) and np.all((entropy >= 0) & (entropy <= np.log(3) + 1e-6))


@pytest.mark.parametrize("name, shape, after, points", [("resnet18", (1, 8, 8), [1, 3], 4),
                                                        ("pmnist_net", (1, 28, 28), [1], 2),
                                                        ("mobilenet_v3_small", (3, 16, 16), [2], 13)])
def test_early_exits_attach_to_the_named_points_of_any_arch(name, shape, after, points):
    base = backbones.make(name, shape, 4, width=0).eval()
    assert len(exits.exit_points(base)) == points  # ResNet: layer1..4; pmnist_net: each conv's activation; blocks
    net = exits.from_base(base, after, [2] * len(after), 8, frozen=True).eval()
    x = torch.randn(3, *shape)
    assert torch.allclose(net(x)[:, -4:], base(x), atol=1e-5)  # frozen: the final exit is the base
    cost = exits.flops_per_exit(net)
    assert cost == sorted(cost) and cost[0] < exits.flops(base, shape) < cost[-1]
    again = exits.build(net.arch)
    again.load_state_dict(net.state_dict())
    assert torch.allclose(again.eval()(x), net(x))
    with pytest.raises(AuxcutError, match=f"must name exit points 1..{points - 1}"):
        exits.from_base(base, [points], [2], 8, frozen=True)


def test_early_exits_refuse_an_arch_whose_forward_is_not_its_layers_in_one_line():
    with pytest.raises(AuxcutError, match="early exits cannot attach to a shufflenet_v2_x0_5 base") as exc:
        exits.from_base(backbones.make("shufflenet_v2_x0_5", (3, 32, 32), 4, width=0), [1], [2], 8, frozen=True)
    one_line(exc)


def test_the_final_predictor_rebuilds_a_torchvision_base_and_a_pmnist_aux_from_their_files(tmp_path):
    files, images, x, head = predictor_files(tmp_path, "mobilenet_v3_small", "pmnist_net_tanh")
    predictor = Predictor.from_files(files["base"], files["aux"], files["head"], ["a", "b", "c"])
    assert predictor.image_shape == (1, 28, 28)
    np.testing.assert_allclose(predictor.predict_proba(images), stacking.predict_all_classes(head, x, 3))


@pytest.mark.parametrize("name, shape", [("convnet", (1, 8, 8)), ("resnet18", (1, 8, 8))])
def test_a_frozen_backbone_keeps_its_weights_and_statistics_while_the_classifier_learns(name, shape):
    net = backbones.make(name, shape, 3, width=4)
    net.freeze_features()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (48, *shape), dtype=np.uint8), np.arange(48) % 3
    training.fit(net, images, labels, np.arange(40), np.arange(40, 48), task="multiclass", mean=np.zeros(1),
                 std=np.ones(1), epochs=1, batch_size=16, lr=0.01, weight_decay=0.01, patience=2, seed=0,
                 device=torch.device("cpu"), desc="probe")
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith("classifier."))
    assert not all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("classifier."))


def test_freezing_without_weights_is_refused_when_params_are_read(tmp_path, monkeypatch):
    with pytest.raises(AuxcutError, match="base.freeze backbone trains only the classifier") as exc:
        load_params(params_with(tmp_path, monkeypatch, freeze="backbone"))
    one_line(exc)


def test_an_arch_without_a_linear_classifier_is_one_line():
    with pytest.raises(AuxcutError, match="squeezenet1_1: its classifier is a conv layer") as exc:
        backbones.make("squeezenet1_1", (3, 64, 64), 3, width=0)
    one_line(exc)
