"""Tests for auxcut.method.fairness against scikit-learn and pandas computed resample by resample."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import accuracy_score, f1_score

from auxcut.method.fairness import (
    bootstrap_rows,
    grouped_mean,
    macro_f1,
    paired_difference,
    plot_group_accuracy,
    predictor_report,
)

CI = 0.95


def make_data(n: int, seed: int, n_classes: int = 4):
    """Labels, a predictor whose accuracy depends on the group, and two group attributes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    sex = rng.choice(["f", "m"], size=n, p=[0.45, 0.55])
    age = rng.choice([0, 1, 2], size=n)
    p_correct = np.select([age == 0, age == 1], [0.92, 0.78], 0.6) - np.where(sex == "f", 0.05, 0.0)
    wrong = (y + rng.integers(1, n_classes, size=n)) % n_classes
    pred = np.where(rng.random(n) < p_correct, y, wrong)
    groups = pd.DataFrame({"group_sex": sex, "group_age": age})
    return y, pred, groups


def quantiles(samples) -> list[float]:
    return list(np.quantile(np.asarray(samples), [(1 - CI) / 2, (1 + CI) / 2]))


# --------------------------------------------------------------------------- bootstrap_rows


def test_bootstrap_rows_shape_range_and_determinism():
    rows = bootstrap_rows(37, 50, seed=3)
    assert rows.shape == (50, 37)
    assert np.issubdtype(rows.dtype, np.integer)
    assert rows.min() >= 0 and rows.max() < 37
    np.testing.assert_array_equal(rows, bootstrap_rows(37, 50, seed=3))
    assert not np.array_equal(rows, bootstrap_rows(37, 50, seed=4))
    # drawn with replacement: resamples repeat rows
    assert any(len(np.unique(r)) < 37 for r in rows)


# --------------------------------------------------------------------------- grouped_mean


def test_grouped_mean_matches_pandas_groupby():
    rng = np.random.default_rng(5)
    n, n_groups = 14, 4
    values = rng.random(n)
    codes = np.array([0] * 6 + [1] * 5 + [2] * 3)  # group 3 never occurs; group 2 is rare
    rows = bootstrap_rows(n, 40, seed=6)
    got = grouped_mean(values, codes, n_groups, rows)
    assert got.shape == (40, n_groups)
    expected = np.stack(
        [
            pd.Series(values[r]).groupby(codes[r]).mean().reindex(range(n_groups)).to_numpy()
            for r in rows
        ]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)
    assert np.isnan(got[:, 3]).all()
    assert np.isnan(got[:, 2]).any()  # the rare group drops out of some resamples
    assert not np.isnan(got[:, 0]).all()


def test_grouped_mean_identity_resample_is_plain_group_mean():
    values = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    codes = np.array([0, 0, 1, 1, 2, 2])
    got = grouped_mean(values, codes, 3, np.arange(6)[None])
    np.testing.assert_allclose(got, [[0.5, 1.0, 0.0]])


# --------------------------------------------------------------------------- macro_f1


def test_macro_f1_matches_sklearn_per_resample():
    rng = np.random.default_rng(7)
    n, k = 40, 6
    y = rng.choice(k, size=n, p=[0.35, 0.3, 0.2, 0.1, 0.05, 0.0])  # class 5 only ever predicted
    pred = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, size=n))
    rows = bootstrap_rows(n, 30, seed=8)
    got = macro_f1(y, pred, k, rows)
    assert got.shape == (30,)
    expected = [f1_score(y[r], pred[r], average="macro", zero_division=0) for r in rows]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_macro_f1_identity_resample():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0, 2])
    got = macro_f1(y, pred, 3, np.arange(7)[None])
    assert got[0] == pytest.approx(f1_score(y, pred, average="macro"))
    # by hand: F1 = 2TP / (n_true + n_pred) per class
    assert got[0] == pytest.approx(np.mean([2 * 1 / (2 + 2), 2 * 2 / (2 + 3), 2 * 2 / (3 + 2)]))


# --------------------------------------------------------------------------- predictor_report


@pytest.fixture(scope="module")
def report_case():
    y, pred, groups = make_data(500, seed=9)
    rows = bootstrap_rows(len(y), 300, seed=10)
    return y, pred, groups, rows, predictor_report(y, pred, groups, rows, CI)


def test_predictor_report_point_estimates(report_case):
    y, pred, groups, rows, report = report_case
    assert report["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert report["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert set(report["groups"]) == {"sex", "age"}
    correct = pd.Series(y == pred, dtype=float)
    for column in groups.columns:
        cell = report["groups"][column.removeprefix("group_")]
        by_group = correct.groupby(groups[column]).mean()
        sizes = groups[column].value_counts()
        assert set(cell["by_group"]) == {str(g) for g in by_group.index}
        for g, acc in by_group.items():
            assert cell["by_group"][str(g)]["accuracy"] == pytest.approx(acc)
            assert cell["by_group"][str(g)]["n"] == sizes[g]
        assert cell["worst_group"] == str(by_group.idxmin())
        assert cell["worst_group_accuracy"] == pytest.approx(by_group.min())
        assert cell["gap"] == pytest.approx(by_group.max() - by_group.min())


def test_predictor_report_intervals_match_resampling(report_case):
    y, pred, groups, rows, report = report_case
    np.testing.assert_allclose(report["accuracy_ci"], quantiles([accuracy_score(y[r], pred[r]) for r in rows]))
    np.testing.assert_allclose(
        report["macro_f1_ci"],
        quantiles([f1_score(y[r], pred[r], average="macro", zero_division=0) for r in rows]),
    )
    correct = (y == pred).astype(float)
    for column in groups.columns:
        cell = report["groups"][column.removeprefix("group_")]
        values = groups[column].to_numpy()
        per_draw = pd.DataFrame([pd.Series(correct[r]).groupby(values[r]).mean() for r in rows])
        for g in per_draw.columns:
            np.testing.assert_allclose(cell["by_group"][str(g)]["ci"], quantiles(per_draw[g]))
        np.testing.assert_allclose(cell["worst_group_accuracy_ci"], quantiles(per_draw.min(axis=1)))
        np.testing.assert_allclose(cell["gap_ci"], quantiles(per_draw.max(axis=1) - per_draw.min(axis=1)))


def test_predictor_report_intervals_contain_point_estimates(report_case):
    *_, report = report_case

    def contains(interval, point):
        low, high = interval
        assert low <= high
        assert low <= point <= high

    contains(report["accuracy_ci"], report["accuracy"])
    contains(report["macro_f1_ci"], report["macro_f1"])
    for cell in report["groups"].values():
        for group in cell["by_group"].values():
            contains(group["ci"], group["accuracy"])
            assert 0.0 <= group["ci"][0] and group["ci"][1] <= 1.0
        contains(cell["worst_group_accuracy_ci"], cell["worst_group_accuracy"])
        contains(cell["gap_ci"], cell["gap"])


def test_predictor_report_intervals_narrow_with_more_data():
    widths = []
    for n in (200, 3200):
        y, pred, groups = make_data(n, seed=11)
        rows = bootstrap_rows(n, 200, seed=12)
        report = predictor_report(y, pred, groups, rows, CI)
        widths.append(
            (report["accuracy_ci"][1] - report["accuracy_ci"][0], report["macro_f1_ci"][1] - report["macro_f1_ci"][0])
        )
    (acc_small, f1_small), (acc_big, f1_big) = widths
    assert acc_big < acc_small / 2
    assert f1_big < f1_small / 2


# --------------------------------------------------------------------------- paired_difference


def test_paired_difference_with_itself_is_zero():
    y, pred, groups = make_data(300, seed=13)
    rows = bootstrap_rows(300, 100, seed=14)
    diff = paired_difference(y, pred, pred, groups, rows, CI)
    assert set(diff) == {"accuracy", "worst_sex_accuracy", "worst_age_accuracy"}
    for entry in diff.values():
        assert entry["value"] == 0.0
        assert entry["ci"] == [0.0, 0.0]


def test_paired_difference_sign_when_one_predictor_is_better():
    y, worse, groups = make_data(400, seed=15)
    rng = np.random.default_rng(16)
    better = worse.copy()
    fix = (worse != y) & (rng.random(len(y)) < 0.5)  # right wherever `worse` is right, and more
    better[fix] = y[fix]
    rows = bootstrap_rows(len(y), 200, seed=17)
    diff = paired_difference(y, better, worse, groups, rows, CI)
    assert diff["accuracy"]["value"] == pytest.approx(accuracy_score(y, better) - accuracy_score(y, worse))
    assert diff["accuracy"]["value"] > 0
    assert diff["accuracy"]["ci"][0] > 0
    for column in groups.columns:
        entry = diff[f"worst_{column.removeprefix('group_')}_accuracy"]
        worst = [pd.Series(p == y, dtype=float).groupby(groups[column]).mean().min() for p in (better, worse)]
        assert entry["value"] == pytest.approx(worst[0] - worst[1])
        assert entry["value"] > 0
        assert entry["ci"][0] >= 0  # `better` is at least as good on every group of every resample
    reverse = paired_difference(y, worse, better, groups, rows, CI)
    assert reverse["accuracy"]["value"] == pytest.approx(-diff["accuracy"]["value"])
    assert reverse["accuracy"]["ci"][1] < 0


# --------------------------------------------------------------------------- plot


def test_plot_group_accuracy_returns_figure():
    y, pred, groups = make_data(200, seed=18)
    rows = bootstrap_rows(200, 50, seed=19)
    reports = {
        "base": predictor_report(y, pred, groups, rows, CI),
        "oracle": predictor_report(y, y.copy(), groups, rows, CI),
    }
    fig = plot_group_accuracy(reports, "age", "accuracy by age")
    try:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert ax.get_title() == "accuracy by age"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base", "oracle"]
        heights = [patch.get_height() for patch in ax.patches]
        assert len(heights) == 2 * 3
        expected = [reports[name]["groups"]["age"]["by_group"][g]["accuracy"] for name in reports for g in ("0", "1", "2")]
        np.testing.assert_allclose(heights, expected)
    finally:
        plt.close(fig)
