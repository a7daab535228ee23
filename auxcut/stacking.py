"""The stacked data set (base probabilities + aux probability -> original class) and its heads.

Both heads are fit on val: the stacked head sees base + aux, the control head sees the base alone.
A head fit on val recalibrates the base by itself, so only stacked - control measures the aux.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from auxcut import AuxcutError

HeadType = Literal["logistic", "naive_bayes"]
AUX_COLUMN = "aux"


def base_columns(n_classes: int) -> list[str]:
    return [f"base_{k}" for k in range(n_classes)]


def stack(base_probs: np.ndarray, aux_prob: np.ndarray, samples: pd.DataFrame) -> pd.DataFrame:
    """One row per sample: base_0..base_{K-1}, aux, target, split (and the group columns for evaluation)."""
    if len(base_probs) != len(samples) or len(aux_prob) != len(samples):
        raise AuxcutError(f"stack: {len(base_probs)} base and {len(aux_prob)} aux predictions for {len(samples)} samples")
    frame = pd.DataFrame(base_probs, columns=base_columns(base_probs.shape[1]))
    frame[AUX_COLUMN] = aux_prob
    frame["target"] = samples["label"].to_numpy()
    frame["split"] = samples["split"].to_numpy()
    for column in [c for c in samples.columns if c.startswith("group_")]:
        frame[column] = samples[column].to_numpy()
    return frame


def features(frame: pd.DataFrame, with_aux: bool) -> np.ndarray:
    columns = [c for c in frame.columns if c.startswith("base_")]
    return frame[columns + ([AUX_COLUMN] if with_aux else [])].to_numpy(dtype=np.float64)


def make_head(kind: HeadType, C: float, max_iter: int, seed: int) -> Pipeline:
    """A small scikit-learn head; features are standardised first (they live on different scales)."""
    if kind == "logistic":
        model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    elif kind == "naive_bayes":
        model = GaussianNB()  # C, max_iter and seed do not apply
    else:
        raise AuxcutError(f"head.type: expected 'logistic' or 'naive_bayes', got {kind!r}")
    return make_pipeline(StandardScaler(), model)


def predict_all_classes(head: Pipeline, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all K classes, even if val lacked some class (its column stays 0)."""
    probs = np.zeros((len(x), n_classes))
    probs[:, head.classes_] = head.predict_proba(x)
    return probs
