"""Accuracy and per-group accuracy of several predictors on one test split, with bootstrap intervals.

Point estimates come from fairlearn's MetricFrame; the gap is its `difference(method="between_groups")`:
the largest minus the smallest group accuracy. Intervals come from one set of bootstrap resamples of
the test rows shared by every predictor, so differences between predictors are paired; each metric
is computed for all resamples at once with bincounts (fairlearn's own bootstrap builds a MetricFrame
per resample, about 15 ms each, which made this stage take minutes).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame
from sklearn.metrics import accuracy_score, f1_score

GAP_CONVENTION = "largest minus smallest group accuracy (fairlearn MetricFrame.difference, method='between_groups')"


def bootstrap_rows(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) row indices drawn with replacement: the resamples every predictor is scored on."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def grouped_mean(values: np.ndarray, codes: np.ndarray, n_groups: int, rows: np.ndarray) -> np.ndarray:
    """Mean of `values` per group in each resample: (n_resamples, n_groups), NaN where a group is absent."""
    n_draws = rows.shape[0]
    keys = (np.arange(n_draws)[:, None] * n_groups + codes[rows]).ravel()
    sums = np.bincount(keys, weights=values[rows].ravel(), minlength=n_draws * n_groups)
    sizes = np.bincount(keys, minlength=n_draws * n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / sizes).reshape(n_draws, n_groups)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, rows: np.ndarray) -> np.ndarray:
    """scikit-learn's macro-F1 (over labels present in truth or prediction) for each resample."""
    n_draws = rows.shape[0]
    offset = np.arange(n_draws)[:, None] * n_classes
    size = n_draws * n_classes
    t, p = y_true[rows], y_pred[rows]
    tp = np.bincount((offset + t)[t == p], minlength=size).reshape(n_draws, n_classes)
    n_true = np.bincount((offset + t).ravel(), minlength=size).reshape(n_draws, n_classes)
    n_pred = np.bincount((offset + p).ravel(), minlength=size).reshape(n_draws, n_classes)
    present = (n_true + n_pred) > 0
    f1 = np.where(present, 2 * tp / np.maximum(n_true + n_pred, 1), 0.0)
    return f1.sum(1) / present.sum(1)


def _interval(samples: np.ndarray, ci: float) -> list[float]:
    return [float(v) for v in np.nanquantile(samples, [(1 - ci) / 2, (1 + ci) / 2])]


def predictor_report(y_true: np.ndarray, y_pred: np.ndarray, groups: pd.DataFrame, rows: np.ndarray, ci: float) -> dict:
    """accuracy, macro-F1, and per group attribute: by-group accuracy, worst group, largest gap, each with a CI."""
    n_classes = int(max(y_true.max(), y_pred.max())) + 1
    correct = (y_true == y_pred).astype(np.float64)
    report: dict = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "accuracy_ci": _interval(correct[rows].mean(1), ci),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "macro_f1_ci": _interval(macro_f1(y_true, y_pred, n_classes, rows), ci),
        "groups": {},
    }
    for column in groups.columns:
        frame = MetricFrame(metrics=accuracy_score, y_true=y_true, y_pred=y_pred, sensitive_features=groups[column])
        by_group = frame.by_group
        codes = pd.Categorical(groups[column], categories=by_group.index).codes
        draws = grouped_mean(correct, codes, len(by_group), rows)
        report["groups"][column.removeprefix("group_")] = {
            "by_group": {str(g): {"accuracy": float(by_group[g]), "ci": _interval(draws[:, k], ci),
                                  "n": int((codes == k).sum())} for k, g in enumerate(by_group.index)},
            "worst_group": str(by_group.idxmin()),
            "worst_group_accuracy": float(frame.group_min()),
            "worst_group_accuracy_ci": _interval(np.nanmin(draws, 1), ci),
            "gap": float(frame.difference(method="between_groups")),
            "gap_ci": _interval(np.nanmax(draws, 1) - np.nanmin(draws, 1), ci),
        }
    return report


def paired_difference(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, groups: pd.DataFrame,
                      rows: np.ndarray, ci: float) -> dict:
    """accuracy(a) - accuracy(b) and worst-group accuracy(a) - (b), over the same resamples."""
    correct_a, correct_b = (pred_a == y_true).astype(np.float64), (pred_b == y_true).astype(np.float64)
    identity = np.arange(len(y_true))[None]
    out = {"accuracy": {"value": float(correct_a.mean() - correct_b.mean()),
                        "ci": _interval(correct_a[rows].mean(1) - correct_b[rows].mean(1), ci)}}
    for column in groups.columns:
        codes, uniques = pd.factorize(groups[column])

        def worst(correct: np.ndarray, draws: np.ndarray) -> np.ndarray:
            return np.nanmin(grouped_mean(correct, codes, len(uniques), draws), 1)

        out[f"worst_{column.removeprefix('group_')}_accuracy"] = {
            "value": float(worst(correct_a, identity)[0] - worst(correct_b, identity)[0]),
            "ci": _interval(worst(correct_a, rows) - worst(correct_b, rows), ci),
        }
    return out


def plot_group_accuracy(reports: dict[str, dict], attribute: str, title: str):
    """Bars of per-group accuracy for each predictor, with the bootstrap intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(reports)
    groups = list(reports[names[0]]["groups"][attribute]["by_group"])
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(groups) * len(names) + 2), 4))
    for k, name in enumerate(names):
        cells = reports[name]["groups"][attribute]["by_group"]
        acc = np.array([cells[g]["accuracy"] for g in groups])
        low = acc - np.array([cells[g]["ci"][0] for g in groups])
        high = np.array([cells[g]["ci"][1] for g in groups]) - acc
        ax.bar(np.arange(len(groups)) + (k - (len(names) - 1) / 2) * width, acc, width,
               yerr=np.clip([low, high], 0, None), capsize=2, label=name)
    ax.set_xticks(range(len(groups)), groups, rotation=45 if len(groups) > 6 else 0)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(loc="lower right")
    return fig
