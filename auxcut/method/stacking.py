"""The stacked data set (base probabilities + aux probabilities -> original class) and its heads.

Both heads are fit on val: the stacked head sees base + aux, the control head sees the base alone.
A head fit on val recalibrates the base by itself, so only stacked - control measures the aux.

There is one aux probability per cut of the tree of cuts (one for the seed method's single cut). The stacked head
takes them as they are (`head.aux_features: nodes`), or as the log-probability of each class's path down the tree
(`paths`: the sum of log p or log(1 - p) over the cuts on the class's path), which ties each aux to the classes it
separates.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from auxcut import AuxcutError
from auxcut.method.hierarchy import path_log_probs

HeadType = Literal["logistic", "naive_bayes"]
AuxFeatures = Literal["nodes", "paths"]


def base_columns(n_classes: int) -> list[str]:
    return [f"base_{k}" for k in range(n_classes)]


def aux_columns(n_auxes: int) -> list[str]:
    return [f"aux_{k}" for k in range(n_auxes)]


def stack(base_probs: np.ndarray, aux_probs: np.ndarray, samples: pd.DataFrame) -> pd.DataFrame:
    """One row per sample: base_0..base_{K-1}, aux_0..aux_{A-1} (one per cut), target, split (and the group columns
    for evaluation). `aux_probs` is (N, A), or (N,) for one aux."""
    aux_probs = np.asarray(aux_probs).reshape(len(aux_probs), -1)
    if len(base_probs) != len(samples) or len(aux_probs) != len(samples):
        raise AuxcutError(f"stack: {len(base_probs)} base and {len(aux_probs)} aux predictions for {len(samples)} samples")
    frame = pd.DataFrame(base_probs, columns=base_columns(base_probs.shape[1]))
    frame[aux_columns(aux_probs.shape[1])] = aux_probs
    frame["target"] = samples["label"].to_numpy()
    frame["split"] = samples["split"].to_numpy()
    for column in [c for c in samples.columns if c.startswith("group_")]:
        frame[column] = samples[column].to_numpy()
    return frame


def features(frame: pd.DataFrame, with_aux: bool) -> np.ndarray:
    """The head's input: base probabilities, then (with_aux) the aux probabilities, as the predictor feeds them."""
    columns = [c for c in frame.columns if c.startswith("base_")]
    return frame[columns + ([c for c in frame.columns if c.startswith("aux_")] if with_aux else [])].to_numpy(
        dtype=np.float64)


def path_features(x: np.ndarray, n_classes: int, signs: np.ndarray) -> np.ndarray:
    """[base probabilities, aux probabilities] -> [base probabilities, log-probability of each class's path]."""
    return np.column_stack([x[:, :n_classes], path_log_probs(x[:, n_classes:], signs)])


def make_head(kind: HeadType, C: float, max_iter: int, seed: int, signs: np.ndarray | None = None) -> Pipeline:
    """A small scikit-learn head; features are standardised first (they live on different scales). With `signs`
    (ClassTree.path_signs(), aux features `paths`) the aux probabilities become per-class path log-probabilities
    inside the head, so whatever feeds the head (the pipeline, the served predictor) gives it the same input."""
    if kind == "logistic":
        model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    elif kind == "naive_bayes":
        model = GaussianNB()  # C, max_iter and seed do not apply
    else:
        raise AuxcutError(f"head.type: expected 'logistic' or 'naive_bayes', got {kind!r}")
    if signs is None:
        return make_pipeline(StandardScaler(), model)
    paths = FunctionTransformer(path_features, kw_args={"n_classes": signs.shape[1], "signs": signs})
    return make_pipeline(paths, StandardScaler(), model)


def predict_all_classes(head: Pipeline, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all K classes, even if val lacked some class (its column stays 0)."""
    probs = np.zeros((len(x), n_classes))
    probs[:, head.classes_] = head.predict_proba(x)
    return probs
