"""The spatial missing-feature heads (missing.map spatial, the paper's model): the last conv map each net gives, its
inversion per activation, heads trained on a frozen base, and the params that cannot have one. Small MNIST subsets
and untrained bases: seconds in all."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from auxcut import AuxcutError
from auxcut.data import mnist
from auxcut.nets import backbones, embedding
from auxcut.pipeline.params import load_params
from auxcut.variants import missing
from conftest import REPO

MNIST = REPO.parent / "shared" / "datasets" / "mnist"
CPU = torch.device("cpu")
MEAN, STD = np.array([0.1307]), np.array([0.3081])


@pytest.fixture(scope="module")
def digits28():
    """600 official MNIST test images and their digits: 400 to fit, 100 val, 100 held out."""
    if not MNIST.is_dir():
        pytest.skip(f"no MNIST at {MNIST}")
    images, labels = mnist.read(MNIST, "t10k")
    return np.ascontiguousarray(images[:600]), labels[:600]


def _base(arch: str, side: int = 28) -> torch.nn.Module:
    torch.manual_seed(0)
    return backbones.make(arch, (1, side, side), 10, width=8)


@pytest.mark.parametrize("arch, units", [("pmnist_net", 320), ("pmnist_net_sigmoid", 320), ("convnet", 16 * 7 * 7)])
def test_the_last_map_is_the_conv_map_before_pooling_flattened(digits28, arch, units):
    images = digits28[0][:10]
    base = _base(arch).eval()
    maps = embedding.last_map(base, images, MEAN, STD, batch_size=4, device=CPU)
    assert maps.shape == (10, units) and maps.dtype == np.float32
    x = (torch.as_tensor(images, dtype=torch.float32) / 255 - MEAN[0]) / STD[0]
    layers = list(base.features)
    end = next(i for i, layer in enumerate(layers) if isinstance(layer, (torch.nn.Flatten, torch.nn.AdaptiveAvgPool2d)))
    with torch.no_grad():
        conv_map = torch.nn.Sequential(*layers[:end])(x)
        np.testing.assert_allclose(maps, conv_map.flatten(1).numpy(), atol=1e-5)
        # what follows the map in the net reads it: pmnist_net's fc layers, convnet's global pooling
        after = torch.nn.Sequential(*layers[end:])(conv_map)
        np.testing.assert_allclose(after.numpy(), base.features(x).numpy(), atol=1e-5)
    assert conv_map.shape[1:] == ((20, 4, 4) if arch != "convnet" else (16, 7, 7))


@pytest.mark.parametrize("arch, low, high, inverted", [
    ("pmnist_net_sigmoid", 0, 1, lambda x: 1 - x), ("pmnist_net_relu6", 0, 6, lambda x: 6 - x),
    ("pmnist_net_tanh", -1, 1, lambda x: -x)])
def test_a_bounded_map_is_inverted_against_its_activation(digits28, arch, low, high, inverted):
    base = _base(arch)
    layers, activation = backbones.last_map(base)
    assert activation == arch.removeprefix("pmnist_net_") and isinstance(layers[-1], backbones.PMNIST_ACTIVATIONS[activation])
    maps = embedding.last_map(base, digits28[0][:50], MEAN, STD, batch_size=50, device=CPU)
    assert low <= maps.min() and maps.max() <= high
    present = missing.spatial_view(maps, activation, None, "present")
    np.testing.assert_array_equal(present, maps)
    np.testing.assert_allclose(missing.spatial_view(maps, activation, None, "missing"), inverted(maps), atol=1e-6)
    np.testing.assert_allclose(missing.spatial_view(maps, activation, None, "both"),
                               np.column_stack([maps, inverted(maps)]), atol=1e-6)


def test_a_relu_map_is_bounded_by_its_train_cap_then_inverted(digits28):
    base = _base("pmnist_net")
    assert backbones.last_map(base)[1] == "relu"
    maps = embedding.last_map(base, digits28[0][:50], MEAN, STD, batch_size=50, device=CPU)
    cap = missing.caps(maps, 0.9)
    present = missing.spatial_view(maps, "relu", cap, "present")
    np.testing.assert_allclose(present, np.clip(maps / cap, 0, 1), atol=1e-6)
    assert present.max() == 1 and (present == 1).sum() > 0  # clipped at the cap
    np.testing.assert_allclose(missing.spatial_view(maps, "relu", cap, "missing"), 1 - present, atol=1e-6)


def test_spatial_heads_train_fresh_fc_layers_on_the_frozen_convs(digits28):
    images, labels = digits28
    base = _base("pmnist_net")  # an untrained sigmoid net's map hardly varies; a ReLU one's is capped, then inverted
    before = {k: v.clone() for k, v in base.state_dict().items()}
    maps = embedding.last_map(base, images, MEAN, STD, batch_size=128, device=CPU)
    fit, val, held = slice(0, 400), slice(400, 500), slice(500, 600)
    seen = []
    head = missing.SpatialMissingHead("missing", "relu", 10, hidden=50, lr=0.1, momentum=0.5, weight_decay=0,
                                      epochs=12, batch_size=32, cap_quantile=0.99, seed=0)
    head.fit(maps[fit], labels[fit], maps[val], labels[val], on_epoch=lambda epoch, h: seen.append(
        float((h.predict_proba(maps[held]).argmax(1) == labels[held]).mean())))
    # the conv layers (and the rest of the base) are as they were: the heads only read the map
    for key, value in base.state_dict().items():
        assert torch.equal(value, before[key]), key
    # the fc layers are fresh (the base's own fc1 is 320 -> 50 too, and not what the head starts from or ends with)
    assert head.layers[0].weight.shape == base.features[7].weight.shape
    assert not torch.allclose(head.layers[0].weight, base.features[7].weight)
    assert isinstance(head.layers[1], torch.nn.ReLU) and head.cap.shape == (320,)
    assert head.n_parameters == (320 + 1) * 50 + (50 + 1) * 10
    # SGD moved them: an untrained base's random conv map still tells digits apart, far above chance
    probs = head.predict_proba(maps[held])
    assert probs.shape == (100, 10) and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == labels[held]).mean() > 0.5
    # the epoch kept is the one of lowest val loss; on_epoch saw every epoch's own weights
    losses = [row["val_loss"] for row in head.history]
    assert head.iterations == 12 == len(seen) and head.best_epoch == int(np.argmin(losses)) + 1
    assert seen[head.best_epoch - 1] == float((probs.argmax(1) == labels[held]).mean())
    both = missing.SpatialMissingHead("both", "relu", 10, 50, 0.1, 0.5, 0, 1, 32, 0.99, 0).fit(
        maps[fit], labels[fit], maps[val], labels[val])
    assert both.layers[0].in_features == 640


def test_spatial_heads_are_seeded(digits28):
    images, labels = digits28
    images, labels = images[:200], labels[:200]
    maps = embedding.last_map(_base("pmnist_net_relu6"), images, MEAN, STD, batch_size=200, device=CPU)

    def trained(seed):
        return missing.SpatialMissingHead("present", "relu6", 10, 16, 0.01, 0.5, 0, 2, 32, 0.99, seed).fit(
            maps[:150], labels[:150], maps[150:], labels[150:]).predict_proba(maps[150:])

    np.testing.assert_array_equal(trained(0), trained(0))
    assert not np.allclose(trained(0), trained(1))


def _params(tmp_path, **missing_params):
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["data"].update(source="mnist", path="../shared/datasets/mnist", image_size=28)
    data["missing"].update(missing_params)
    data["aux"]["width"] = 5  # the widest convnet aux within pmnist_net's 10x rule
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return data, path


def test_a_net_whose_last_map_cannot_be_read_is_one_line_when_params_are_read(tmp_path):
    data, path = _params(tmp_path, map="spatial")
    for arch in ("pmnist_net", "pmnist_net_tanh", "convnet"):
        data["base"]["arch"] = arch
        path.write_text(yaml.safe_dump(data))
        assert load_params(path).missing.map == "spatial"
    data["base"]["arch"] = "resnet18"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(AuxcutError, match=r"params\.yaml: missing\.map spatial reads the last conv map of convnet or "
                                          r"pmnist_net.*base\.arch resnet18 .*set missing\.map pooled"):
        load_params(path)
    data["missing"]["map"] = "pooled"
    path.write_text(yaml.safe_dump(data))
    assert load_params(path).base.arch == "resnet18"
    with pytest.raises(AuxcutError, match="missing.map spatial reads the last conv map"):  # and on the built net
        backbones.last_map(backbones.make("mobilenet_v3_small", (1, 28, 28), 10, width=8))


def test_an_unknown_map_is_one_line(tmp_path):
    _, path = _params(tmp_path, map="channels")
    with pytest.raises(AuxcutError, match=r"missing\.map: input should be 'pooled' or 'spatial'"):
        load_params(path)
