from __future__ import annotations

import numpy as np
import pytest
import torch

from auxcut import AuxcutError
from auxcut.data import sources
from auxcut.nets import training
from auxcut.nets.backbones import build
from auxcut.nets.models import ConvNet, count_parameters
from conftest import DIGITS

SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}


@pytest.fixture(scope="module")
def digits():
    return sources.prepare("digits", DIGITS, "age_race", None, 8, SPLIT, seed=0)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 64, 64), (3, 200, 200)])
def test_convnet_is_sized_to_the_input(shape):
    model = ConvNet(shape, 15, 16)
    out = model(torch.zeros(2, *shape))
    assert out.shape == (2, 15)
    assert build(model.arch).arch == model.arch


def test_default_aux_is_ten_times_smaller(params_dict):
    for shape in [(1, 8, 8), (3, 64, 64)]:
        base = count_parameters(ConvNet(shape, 30, params_dict["base"]["width"]))
        aux = count_parameters(ConvNet(shape, 1, params_dict["aux"]["width"]))
        assert base / aux >= 10


def _fit(digits, seed=0, epochs=4, task="multiclass", targets=None):
    labels = digits.samples["label"].to_numpy() if targets is None else targets
    train, val = digits.indices("train"), digits.indices("val")
    mean, std = training.channel_stats(digits.images, train)
    device = training.pick_device()
    training.seed_everything(seed, device)
    model = ConvNet((1, 8, 8), 10 if task == "multiclass" else 1, 16)
    result = training.fit(model, digits.images, labels, train, val, task=task, mean=mean, std=std, epochs=epochs,
                          batch_size=64, lr=0.003, weight_decay=1e-4, patience=10, seed=seed, device=device, desc="test")
    return result, mean, std


def test_fit_learns_digits_and_predicts_probabilities(digits):
    result, mean, std = _fit(digits, epochs=15)
    assert len(result.history) == 15 and 1 <= result.best_epoch <= 15
    assert result.best["val_acc"] > 0.9
    probs = training.predict_proba(result.model, digits.images, mean, std, task="multiclass", batch_size=100,
                                   device=training.pick_device())
    assert probs.shape == (1797, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    test = digits.indices("test")
    assert (probs[test].argmax(1) == digits.samples["label"].to_numpy()[test]).mean() > 0.85


def test_fit_is_deterministic_on_cpu(digits):
    first, _, _ = _fit(digits, seed=3, epochs=2)
    second, _, _ = _fit(digits, seed=3, epochs=2)
    other, _, _ = _fit(digits, seed=4, epochs=2)
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    assert any(not torch.equal(v, other.model.state_dict()[k]) for k, v in first.model.state_dict().items())


def test_binary_task_and_early_stopping(digits):
    odd = (digits.samples["label"].to_numpy() % 2).astype(np.int64)
    result, mean, std = _fit(digits, epochs=5, task="binary", targets=odd)
    assert result.best["val_acc"] > 0.75
    probs = training.predict_proba(result.model, digits.images, mean, std, task="binary", batch_size=256,
                                   device=training.pick_device())
    assert probs.shape == (1797,) and ((probs >= 0) & (probs <= 1)).all()
    # the kept weights are those of the best val-loss epoch
    assert result.best["val_loss"] == min(row["val_loss"] for row in result.history)


def test_early_stopping_keeps_the_best_epochs_weights(digits):
    """A net shown 50 images (8 times an epoch) overfits them: training stops `patience` epochs after the best val
    loss, and the model returned has that epoch's weights, not the last ones."""
    labels = digits.samples["label"].to_numpy()
    train, val = np.tile(digits.indices("train")[:50], 8), digits.indices("val")
    mean, std = training.channel_stats(digits.images, train[:50])
    device = training.pick_device()
    training.seed_everything(0, device)
    epochs, patience = 30, 3
    result = training.fit(ConvNet((1, 8, 8), 10, 32), digits.images, labels, train, val, task="multiclass", mean=mean,
                          std=std, epochs=epochs, batch_size=32, lr=0.01, weight_decay=0.0, patience=patience, seed=0,
                          device=device, desc="test")
    assert len(result.history) == result.best_epoch + patience < epochs
    assert result.best["val_loss"] == min(row["val_loss"] for row in result.history)
    assert result.history[-1]["val_loss"] > result.best["val_loss"] * 1.001  # the last weights are told apart below
    probs = training.predict_proba(result.model, digits.images[val], mean, std, task="multiclass", batch_size=64,
                                   device=device)
    val_loss = float(np.mean(-np.log(probs[np.arange(len(val)), labels[val]])))
    assert val_loss == pytest.approx(result.best["val_loss"], rel=1e-4)


def test_divergence_is_a_clear_error(digits):
    train, val = digits.indices("train"), digits.indices("val")
    mean, std = training.channel_stats(digits.images, train)
    with pytest.raises(AuxcutError, match="diverged"):
        training.fit(ConvNet((1, 8, 8), 10, 8), digits.images, digits.samples["label"].to_numpy(), train, val,
                     task="multiclass", mean=mean, std=std, epochs=3, batch_size=64, lr=1e30, weight_decay=0.0,
                     patience=3, seed=0, device=training.pick_device(), desc="test")


def test_checkpoint_roundtrip(tmp_path, digits):
    model = ConvNet((1, 8, 8), 10, 8)
    training.save_checkpoint(tmp_path / "m.pt", model, mean=[0.5], std=[0.2], classes=digits.classes)
    [loaded], state = training.load_checkpoint(tmp_path / "m.pt")
    assert state["classes"] == digits.classes and state["mean"] == [0.5]
    x = torch.randn(3, 1, 8, 8)
    model.eval(), loaded.eval()
    assert torch.equal(model(x), loaded(x))
    with pytest.raises(AuxcutError, match="not found"):
        training.load_checkpoint(tmp_path / "missing.pt")


def test_same_weights_give_the_same_checkpoint_bytes(tmp_path):
    # DVC hashes checkpoints: identical weights must not look changed and re-run the stages that read them.
    model = ConvNet((1, 8, 8), 10, 8)
    for name in ("a.pt", "b.pt"):
        training.save_checkpoint(tmp_path / name, model, mean=[0.5], std=[0.2])
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_flip_and_shift_keeps_shape_content_and_is_seeded():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    a = training.flip_and_shift(x, torch.Generator().manual_seed(0))
    b = training.flip_and_shift(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    # a shift of at most 1 pixel (1/16 of 16): the centre 14x14 of each output is a window of the input or its mirror
    for i in range(2):
        centre = a[i, :, 1:15, 1:15]
        windows = [src[:, dy:dy + 14, dx:dx + 14] for src in (x[i], x[i].flip(2)) for dy in range(3) for dx in range(3)]
        assert any(torch.equal(centre, w) for w in windows)


def test_augmented_training_runs_and_stays_deterministic(digits):
    labels = digits.samples["label"].to_numpy()
    train, val = digits.indices("train"), digits.indices("val")
    mean, std = training.channel_stats(digits.images, train)
    results = []
    for _ in range(2):
        training.seed_everything(0, training.pick_device())
        model = ConvNet((1, 8, 8), 10, 8)
        results.append(training.fit(model, digits.images, labels, train, val, task="multiclass", mean=mean, std=std,
                                    epochs=2, batch_size=64, lr=0.003, weight_decay=0.0, patience=5, seed=0,
                                    device=training.pick_device(), desc="test", augment=True))
    assert results[0].history == results[1].history
    training.seed_everything(0, training.pick_device())
    plain = training.fit(ConvNet((1, 8, 8), 10, 8), digits.images, labels, train, val, task="multiclass", mean=mean,
                         std=std, epochs=2, batch_size=64, lr=0.003, weight_decay=0.0, patience=5, seed=0,
                         device=training.pick_device(), desc="test", augment=False)
    for row, augmented in zip(plain.history, results[0].history):  # the same seed and batches, other images
        assert row["train_loss"] != augmented["train_loss"] and row["val_loss"] != augmented["val_loss"]


def test_heads_skip_missing_labels_and_learn_each_head(digits):
    """Two heads on one net (the digit, and digit >= 5), with most of the second head's train labels missing: the
    loss skips them, both heads learn, and predict_proba gives each head's softmax side by side."""
    labels = digits.samples["label"].to_numpy()
    train, val = digits.indices("train"), digits.indices("val")
    targets = np.column_stack([labels, (labels >= 5).astype(np.int64)])
    hidden = np.random.default_rng(0).random(len(labels)) < 0.9
    targets[hidden & np.isin(np.arange(len(labels)), train), 1] = training.MISSING
    heads = training.Heads((10, 2))
    mean, std = training.channel_stats(digits.images, train)
    device = training.pick_device()
    training.seed_everything(0, device)
    result = training.fit(ConvNet((1, 8, 8), 12, 16), digits.images, targets, train, val, task=heads, mean=mean,
                          std=std, epochs=15, batch_size=64, lr=0.003, weight_decay=1e-4, patience=15, seed=0,
                          device=device, desc="test")
    assert 0.8 < result.best["val_acc"] <= 1
    probs = training.predict_proba(result.model, digits.images, mean, std, task=heads, batch_size=100, device=device)
    assert probs.shape == (1797, 12)
    np.testing.assert_allclose(probs[:, :10].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs[:, 10:].sum(1), 1.0, atol=1e-5)
    test = digits.indices("test")
    assert (probs[test, :10].argmax(1) == labels[test]).mean() > 0.85
    assert (probs[test, 10:].argmax(1) == (labels[test] >= 5)).mean() > 0.75  # from 10% of the labels


def test_masked_heads_loss_ignores_missing_labels():
    loss = training.MaskedHeadsLoss(training.Heads((3, 2)))
    logits = torch.randn(4, 5)
    y = torch.tensor([[0, -1], [2, -1], [1, -1], [0, -1]])
    only_first = torch.nn.functional.cross_entropy(logits[:, :3], y[:, 0])
    assert torch.allclose(loss(logits, y), only_first)
    y[0, 1] = 1  # one known label of the second head adds exactly its own cross-entropy
    second = torch.nn.functional.cross_entropy(logits[:1, 3:], y[:1, 1])
    assert torch.allclose(loss(logits, y), only_first + second)
    with pytest.raises(AuxcutError, match="heads"):
        training.Heads((3, 1))


def test_heads_split_side_by_side_probabilities_back_into_heads():
    probs = np.arange(20, dtype=float).reshape(4, 5)
    classes, cut = training.Heads((3, 2)).split_probs(probs)
    np.testing.assert_array_equal(classes, probs[:, :3])
    np.testing.assert_array_equal(cut, probs[:, 3:])
