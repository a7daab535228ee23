"""Tests for auxcut.method.stacking, with base/aux probabilities from classifiers fit on scikit-learn's digits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from auxcut import AuxcutError
from conftest import digits_halves
from auxcut.method.stacking import aux_columns, base_columns, features, make_head, predict_all_classes, stack

K = 10
AUX_SIDE = np.array([0, 1, 1, 0, 1, 0, 0, 1, 0, 1])  # an arbitrary binary split of the digit classes


def toy_samples(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    base = rng.dirichlet(np.ones(4), size=n)
    aux = rng.random(n)
    samples = pd.DataFrame(
        {
            "path": [f"img_{i}.png" for i in range(n)],
            "label": rng.integers(0, 4, size=n),
            "split": rng.choice(["train", "val", "test"], size=n),
            "group_sex": rng.choice(["f", "m"], size=n),
            "group_age": rng.integers(0, 3, size=n),
        },
        index=rng.permutation(np.arange(100, 100 + n)),  # a shuffled, non-default index
    )
    return base, aux, samples


@pytest.fixture(scope="module")
def digits_stack():
    """Base (10-class) and aux (binary) probabilities from classifiers fit on the first half of digits."""
    x_fit, y_fit, x_held, y_held = digits_halves()
    base_model = LogisticRegression(C=0.05, max_iter=1000).fit(x_fit, y_fit)
    aux_model = LogisticRegression(C=0.05, max_iter=1000).fit(x_fit, AUX_SIDE[y_fit])
    samples = pd.DataFrame(
        {
            "label": y_held,
            "split": np.where(np.arange(len(y_held)) % 2 == 0, "val", "test"),
            "group_parity": y_held % 2,
        }
    )
    return stack(base_model.predict_proba(x_held), aux_model.predict_proba(x_held)[:, 1], samples)


# --------------------------------------------------------------------------- stack / features


def test_stack_columns_and_values():
    base, aux, samples = toy_samples(25, seed=1)
    frame = stack(base, aux, samples)
    assert list(frame.columns) == base_columns(4) + ["aux_0", "target", "split", "group_sex", "group_age"]
    assert base_columns(4) == ["base_0", "base_1", "base_2", "base_3"]
    assert len(frame) == 25
    np.testing.assert_array_equal(frame[base_columns(4)].to_numpy(), base)
    np.testing.assert_array_equal(frame["aux_0"].to_numpy(), aux)
    # rows line up by position, not by the samples' index
    np.testing.assert_array_equal(frame["target"].to_numpy(), samples["label"].to_numpy())
    np.testing.assert_array_equal(frame["split"].to_numpy(), samples["split"].to_numpy())
    np.testing.assert_array_equal(frame["group_sex"].to_numpy(), samples["group_sex"].to_numpy())
    np.testing.assert_array_equal(frame["group_age"].to_numpy(), samples["group_age"].to_numpy())
    assert "path" not in frame.columns and "label" not in frame.columns


@pytest.mark.parametrize("base_rows, aux_rows", [(24, 25), (25, 24), (26, 26), (0, 25)])
def test_stack_rejects_mismatched_lengths(base_rows, aux_rows):
    base, aux, samples = toy_samples(25, seed=2)
    base = np.resize(base, (base_rows, 4))
    aux = np.resize(aux, aux_rows)
    with pytest.raises(AuxcutError, match="stack"):
        stack(base, aux, samples)


def test_features_with_and_without_aux():
    base, aux, samples = toy_samples(30, seed=3)
    frame = stack(base, aux, samples)
    with_aux = features(frame, with_aux=True)
    without = features(frame, with_aux=False)
    assert with_aux.shape == (30, 5)
    assert without.shape == (30, 4)
    assert with_aux.dtype == np.float64 and without.dtype == np.float64
    np.testing.assert_array_equal(without, base)
    np.testing.assert_array_equal(with_aux[:, :4], base)
    np.testing.assert_array_equal(with_aux[:, 4], aux)


def test_stack_of_several_auxes_keeps_their_order():
    base, aux, samples = toy_samples(20, seed=4)
    auxes = np.column_stack([aux, 1 - aux, aux / 2])
    frame = stack(base, auxes, samples)
    assert aux_columns(3) == ["aux_0", "aux_1", "aux_2"] and list(frame.columns[4:7]) == aux_columns(3)
    np.testing.assert_array_equal(features(frame, with_aux=True)[:, 4:], auxes)


def test_features_on_digits_stack(digits_stack):
    assert features(digits_stack, True).shape == (len(digits_stack), K + 1)
    assert features(digits_stack, False).shape == (len(digits_stack), K)


# --------------------------------------------------------------------------- heads


def test_make_head_kinds():
    logistic = make_head("logistic", C=0.3, max_iter=123, seed=5)
    assert isinstance(logistic, Pipeline)
    assert isinstance(logistic.steps[0][1], StandardScaler)
    model = logistic.steps[-1][1]
    assert isinstance(model, LogisticRegression)
    assert (model.C, model.max_iter, model.random_state) == (0.3, 123, 5)
    bayes = make_head("naive_bayes", C=0.3, max_iter=123, seed=5)
    assert isinstance(bayes.steps[0][1], StandardScaler)
    assert isinstance(bayes.steps[-1][1], GaussianNB)


@pytest.mark.parametrize("kind", ["logistic", "naive_bayes"])
@pytest.mark.parametrize("with_aux", [True, False])
def test_heads_fit_on_digits_probabilities(digits_stack, kind, with_aux):
    val = digits_stack[digits_stack["split"] == "val"]
    test = digits_stack[digits_stack["split"] == "test"]
    head = make_head(kind, C=1.0, max_iter=2000, seed=0).fit(features(val, with_aux), val["target"])
    probs = head.predict_proba(features(test, with_aux))
    assert probs.shape == (len(test), K)
    assert np.all(probs >= 0) and np.all(probs <= 1)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(head.classes_, np.arange(K))
    # a head on good base probabilities should classify digits well
    assert (probs.argmax(1) == test["target"].to_numpy()).mean() > 0.85


# --------------------------------------------------------------------------- predict_all_classes


@pytest.mark.parametrize("kind", ["logistic", "naive_bayes"])
def test_predict_all_classes_fills_missing_classes(digits_stack, kind):
    missing = [3, 7]
    val = digits_stack[(digits_stack["split"] == "val") & ~digits_stack["target"].isin(missing)]
    test = digits_stack[digits_stack["split"] == "test"]
    x_test = features(test, True)
    head = make_head(kind, C=1.0, max_iter=2000, seed=0).fit(features(val, True), val["target"])
    assert len(head.classes_) == K - len(missing)
    probs = predict_all_classes(head, x_test, K)
    assert probs.shape == (len(test), K)
    np.testing.assert_array_equal(probs[:, missing], 0.0)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    present = [c for c in range(K) if c not in missing]
    np.testing.assert_allclose(probs[:, present], head.predict_proba(x_test))
    # the predicted class is the head's own prediction
    np.testing.assert_array_equal(probs.argmax(1), head.predict(x_test))


def test_predict_all_classes_with_all_classes_is_predict_proba(digits_stack):
    val = digits_stack[digits_stack["split"] == "val"]
    x = features(val, False)
    head = make_head("logistic", C=1.0, max_iter=2000, seed=0).fit(x, val["target"])
    np.testing.assert_allclose(predict_all_classes(head, x, K), head.predict_proba(x))


def test_predict_all_classes_non_contiguous_classes():
    # classes 1 and 4 of 6 only: columns land on their class index, everything else is 0
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(-2, 1, size=(30, 2)), rng.normal(2, 1, size=(30, 2))])
    y = np.repeat([1, 4], 30)
    head = make_head("logistic", C=1.0, max_iter=500, seed=0).fit(x, y)
    probs = predict_all_classes(head, x, 6)
    assert probs.shape == (60, 6)
    np.testing.assert_array_equal(probs[:, [0, 2, 3, 5]], 0.0)
    np.testing.assert_allclose(probs[:, [1, 4]], head.predict_proba(x))
    assert (probs.argmax(1) == y).mean() > 0.9


def test_unknown_head_type_is_an_error():
    with pytest.raises(AuxcutError, match="head.type"):
        make_head("forest", 1.0, 100, 0)
