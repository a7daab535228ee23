"""The aux objectives: the base's side probability, residual weights, the error-correlation penalty, and that
training really uses them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from auxcut.method import objectives
from auxcut.data import sources
from auxcut.nets import training
from auxcut.nets.models import VIEWS, ConvNet, View, count_parameters
from conftest import DIGITS


def test_base_side_probability_within_a_node():
    probs = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.1, 0.7], [0.0, 0.0, 0.0, 1.0]])
    sides = np.array([0, 1, 1, -1])  # class 3 is not under this cut
    s = objectives.base_side_probability(probs, sides)
    np.testing.assert_allclose(s, [0.5, 2 / 3, 0.5])  # no mass on the node's classes: undecided


def test_residual_weights_grow_with_the_base_error_and_average_one_on_train():
    targets = np.array([1, 1, 0, 0, 1, 0])
    base_side = np.array([0.9, 0.2, 0.1, 0.6, 0.5, 0.0])
    train = np.array([0, 1, 2, 3])
    residual = objectives.make_objective("residual", 2.0, targets, base_side, train)
    w = residual.columns[:, 0]
    assert residual.columns.shape == (6, 1) and w[train].mean() == pytest.approx(1.0)
    error = np.abs(targets - base_side)
    assert np.all(np.diff(w[np.argsort(error)]) >= -1e-7)  # more base error, more weight
    assert w[1] / w[0] == pytest.approx(np.exp(2.0 * (0.8 - 0.1)), rel=1e-5)
    logits, y = torch.tensor([0.3, -1.0]), torch.tensor([1.0, 0.0])
    columns = torch.tensor([[2.0], [0.5]])
    expected = (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * torch.tensor([2.0, 0.5])).mean()
    assert residual.loss(logits, y, columns) == pytest.approx(float(expected))


def test_plain_and_zero_strength_are_the_task_loss():
    args = (np.array([0, 1]), np.array([0.2, 0.8]), np.array([0, 1]))
    assert objectives.make_objective("plain", 3.0, *args) is None
    assert objectives.make_objective("residual", 0.0, *args) is None
    with pytest.raises(ValueError, match="aux.objective"):
        objectives.make_objective("boosted", 1.0, *args)


def test_error_correlation_matches_numpy_and_the_penalty_only_bites_when_positive():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.5).astype(np.float32)
    s = np.clip(y + rng.normal(0, 0.3, 200), 0, 1).astype(np.float32)
    p_same = np.clip(s + rng.normal(0, 0.05, 200), 0, 1).astype(np.float32)  # errors like the base's
    # within each true side, weighted by its count
    expected = sum((y == v).sum() * np.corrcoef(p_same[y == v], s[y == v])[0, 1] for v in (0, 1)) / len(y)
    got = objectives.error_correlation(torch.from_numpy(p_same), torch.from_numpy(s), torch.from_numpy(y))
    assert float(got) == pytest.approx(expected, abs=1e-5) and expected > 0.9
    decorrelated = objectives.make_objective("decorrelated", 2.0, y, s, np.arange(200))
    y_t, s_t = torch.from_numpy(y), torch.from_numpy(s)[:, None]
    logits = torch.logit(torch.from_numpy(p_same).clamp(1e-3, 1 - 1e-3))
    bce = F.binary_cross_entropy_with_logits(logits, y_t)
    assert float(decorrelated.loss(logits, y_t, s_t)) > float(bce) + 1.5  # ~ bce + 2 * 0.9
    # two predictors that are independent given the truth are not penalised, however accurate both are
    p_indep = np.clip(y + np.where(y == 1, -1, 1) * rng.uniform(0, 0.4, 200), 0, 1).astype(np.float32)
    assert abs(float(objectives.error_correlation(torch.from_numpy(p_indep), torch.from_numpy(s), y_t))) < 0.2
    # on side-1 images, an aux whose error is small where the base's is large: anti-correlated, no penalty
    ones = torch.ones(200)
    p_anti = 1 - 0.5 * s
    assert np.corrcoef(p_anti - 1, s - 1)[0, 1] < -0.99
    anti = torch.logit(torch.from_numpy(p_anti).clamp(1e-3, 1 - 1e-3))
    assert float(decorrelated.loss(anti, ones, s_t)) == pytest.approx(float(F.binary_cross_entropy_with_logits(anti, ones)))


def test_side_agreement():
    y = np.array([1, 0, 1, 0])
    out = objectives.side_agreement(np.array([0.9, 0.2, 0.4, 0.6]), np.array([0.8, 0.1, 0.7, 0.3]), y)
    assert out["aux_side_accuracy"] == 0.5 and out["base_side_accuracy"] == 1.0
    assert -1 <= out["probability_correlation"] <= 1 and -1 <= out["error_correlation"] <= 1


# --------------------------------------------------------------------------- training with an objective


@pytest.fixture(scope="module")
def digits():
    return sources.prepare("digits", DIGITS, "age_race", None, 8, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)


def _fit_odd(digits, objective, epochs=2, view="full"):
    odd = (digits.samples["label"].to_numpy() % 2).astype(np.int64)
    train, val = digits.indices("train"), digits.indices("val")
    mean, std = training.channel_stats(digits.images, train)
    training.seed_everything(0, torch.device("cpu"))
    model = ConvNet((1, 8, 8), 1, 8, view)
    return training.fit(model, digits.images, odd, train, val, task="binary", mean=mean, std=std, epochs=epochs,
                        batch_size=64, lr=0.003, weight_decay=0.0, patience=5, seed=0, device=torch.device("cpu"),
                        desc="test", objective=objective)


def test_fit_uses_the_objective(digits):
    odd = (digits.samples["label"].to_numpy() % 2).astype(np.int64)
    train = digits.indices("train")
    plain = _fit_odd(digits, None)
    def losses(result):
        return np.array([[row["train_loss"], row["val_loss"]] for row in result.history])

    # a base that is undecided everywhere gives every image the same weight: the plain training (up to rounding)
    flat = objectives.make_objective("residual", 3.0, odd, np.full(len(odd), 0.5), train)
    np.testing.assert_allclose(losses(_fit_odd(digits, flat)), losses(plain), rtol=1e-6)
    # a base that errs on the digits 3 and 8 weighs them up: another training
    base_side = np.where(np.isin(digits.samples["label"], [3, 8]), 1 - odd, odd).astype(np.float64)
    weighted = _fit_odd(digits, objectives.make_objective("residual", 3.0, odd, base_side, train))
    assert np.abs(losses(weighted) - losses(plain)).max() > 1e-3
    # val loss stays the task's own: comparable across objectives
    assert all(np.isfinite(row["val_loss"]) for row in weighted.history)
    decorrelated = _fit_odd(digits, objectives.make_objective("decorrelated", 1.0, odd, base_side, train))
    assert np.abs(losses(decorrelated) - losses(plain)).max() > 1e-3
    assert decorrelated.best["val_acc"] > 0.6  # still learns its task


@pytest.mark.parametrize("view", VIEWS)
def test_views_shape_what_the_net_sees(view):
    x = torch.randn(2, 3, 64, 64)
    seen = View(view)(x)
    assert tuple(seen.shape[1:]) == View(view).out_shape((3, 64, 64))
    assert {"full": (3, 64, 64), "gray": (1, 64, 64), "low": (3, 32, 32), "center": (3, 32, 32)}[view] == seen.shape[1:]
    if view == "center":
        assert torch.equal(seen, x[:, :, 16:48, 16:48])
    if view == "gray":  # the mean of the three channels
        torch.testing.assert_close(seen[:, 0], (x[:, 0] + x[:, 1] + x[:, 2]) / 3)
    if view == "low":  # each output pixel the mean of its 2x2 block
        blocks = x[:, :, ::2, ::2] + x[:, :, 1::2, ::2] + x[:, :, ::2, 1::2] + x[:, :, 1::2, 1::2]
        torch.testing.assert_close(seen, blocks / 4)
    model = ConvNet((3, 64, 64), 1, 4, view)
    assert model(x).shape == (2, 1) and model.arch["view"] == view
    # a view has no parameters of its own; gray saves the first convolution's colour weights
    full = count_parameters(ConvNet((3, 64, 64), 1, 4))
    assert count_parameters(model) <= full


def test_an_aux_on_another_view_learns_digits(digits):
    result = _fit_odd(digits, None, epochs=6, view="low")
    assert result.best["val_acc"] > 0.7
