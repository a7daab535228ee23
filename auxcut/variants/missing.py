"""Heads that classify from the features an image lacks (Milošević & Racković 2019, "classification based on
missing features"), on the base CNN's frozen backbone.

The base's embedding (auxcut.nets.embedding; for convnet and the ResNets, a ReLU and global average pooling): features
f >= 0 with no upper bound, so "absent" is not defined. Each feature is bounded by a cap measured on train (a high quantile of its
values), b = clip(f / cap, 0, 1) -- a ReLU-n per channel, like the paper's bounded activations -- and the missing
features are 1 - b: 1 where the feature is absent, 0 where it is at full strength. A fresh fully connected head
(one tanh hidden layer, scikit-learn's MLPClassifier) is trained on train on
- present: b (the control: a re-initialised head on the same frozen, bounded features),
- missing: 1 - b,
- both: [b, 1 - b] side by side.
Worth knowing when reading the results: 1 - b is an affine function of b, so all three heads can represent the
same functions; what differs is what training and the weight penalty make of them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.neural_network import MLPClassifier

from auxcut import AuxcutError

FeatureKind = Literal["present", "missing", "both"]
KINDS: tuple[str, ...] = ("present", "missing", "both")


def caps(features: np.ndarray, quantile: float) -> np.ndarray:
    """Each feature's bound: its `quantile` over the given (train) rows; a feature never active gets 1, so it
    stays 0 when present and 1 when missing."""
    cap = np.quantile(features, quantile, axis=0)
    return np.where(cap > 0, cap, 1.0)


def view(features: np.ndarray, cap: np.ndarray, kind: FeatureKind) -> np.ndarray:
    """The head's input: the bounded features, their complement, or both."""
    bounded = np.clip(features / cap, 0.0, 1.0)
    if kind == "present":
        return bounded
    if kind == "missing":
        return 1.0 - bounded
    if kind == "both":
        return np.column_stack([bounded, 1.0 - bounded])
    raise AuxcutError(f"missing.features: expected some of {', '.join(KINDS)}, got {kind!r}")


class MissingFeatureHead:
    """One head on one kind of features: `fit` on backbone features and labels, `predict_proba` over all classes."""

    def __init__(self, kind: FeatureKind, n_classes: int, hidden: int, alpha: float, max_iter: int,
                 cap_quantile: float, seed: int) -> None:
        self.kind, self.n_classes, self.cap_quantile = kind, n_classes, cap_quantile
        # early stopping on a seeded tenth of the rows given to fit, as the base keeps its best val epoch
        self.model = MLPClassifier(hidden_layer_sizes=(hidden,), activation="tanh", alpha=alpha, max_iter=max_iter,
                                   early_stopping=True, n_iter_no_change=20, random_state=seed)

    def fit(self, features: np.ndarray, labels: np.ndarray) -> "MissingFeatureHead":
        if len(np.unique(labels)) < 2:
            raise AuxcutError("train_missing: the train split has a single class; a head needs at least two")
        self.cap = caps(features, self.cap_quantile)
        self.model.fit(view(features, self.cap, self.kind), labels)
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        probs = np.zeros((len(features), self.n_classes))
        probs[:, self.model.classes_] = self.model.predict_proba(view(features, self.cap, self.kind))
        return probs

    @property
    def n_parameters(self) -> int:
        return int(sum(w.size for w in self.model.coefs_) + sum(b.size for b in self.model.intercepts_))
