"""What the aux is trained to do beyond predicting its side of the cut: objectives that keep its errors apart from
the base's.

The stacked head gains from the aux only what the aux knows about the cut side that the base does not. A plain aux
learns the same easy images the base already gets right (reports/aux-signal-15.md: the base's own probabilities
imply the side 71.5% of the time, the plain aux is right 61% and correlates 0.55 with the base). So:

- `plain`: binary cross-entropy on the side, as in the seed method.
- `residual`: boosting-style sample weights. An image weighs exp(strength * e) (normalised to mean 1 on train), where
  e = |side - s| is the base's error on the side and s the base's probability mass on side 1 (within the node's
  classes, for a tree). The aux spends its few parameters where the base is weak on the cut.
- `decorrelated`: cross-entropy plus strength * max(0, corr(p, s | side)) over each batch: a penalty on the positive
  correlation of the aux's probability p with the base's s among the images of the same true side (the correlation
  within side 0 and within side 1, averaged by their counts). Within a side, p - side and s - side are the two errors,
  so this is the correlation of their errors (negative correlation learning). Over all images at once it would also
  penalise being right, since both probabilities correlate with the truth.

Either way the aux still predicts the side; `strength` 0 is the plain objective. The base's probabilities on train are
the only ones there are for the train images; they are more confident than on held-out images, so the residual weights
are a lower estimate of where the base errs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F

ObjectiveKind = Literal["plain", "residual", "decorrelated"]
OBJECTIVES: tuple[str, ...] = ("plain", "residual", "decorrelated")


def base_side_probability(base_probs: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """The base's probability that an image lies on side 1 of a cut, given that its class is one of the cut's classes.

    `sides` holds, for every class, 0 or 1 (its side) or -1 (not in this cut, e.g. the other branch of a tree)."""
    sides = np.asarray(sides)
    mass_1 = base_probs[:, sides == 1].sum(1)
    mass = mass_1 + base_probs[:, sides == 0].sum(1)
    return np.where(mass > 0, mass_1 / np.maximum(mass, 1e-12), 0.5)


@dataclass
class Residual:
    """Boosting-style weights from the base's side error (see the module docstring)."""

    columns: np.ndarray  # (N, 1): each image's loss weight

    @classmethod
    def fit(cls, targets: np.ndarray, base_side: np.ndarray, train_idx: np.ndarray, strength: float) -> "Residual":
        error = np.abs(targets.astype(np.float64) - base_side)
        weights = np.exp(strength * error)
        weights /= weights[train_idx].mean()
        return cls(weights.astype(np.float32)[:, None])

    def loss(self, logits: torch.Tensor, y: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        per_image = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return (per_image * columns[:, 0]).mean()


@dataclass
class Decorrelated:
    """Cross-entropy plus a penalty on the batch correlation of the aux's errors with the base's."""

    columns: np.ndarray  # (N, 1): the base's side probability s
    strength: float

    @classmethod
    def fit(cls, base_side: np.ndarray, strength: float) -> "Decorrelated":
        return cls(base_side.astype(np.float32)[:, None], strength)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, y) + self.strength * error_correlation(
            torch.sigmoid(logits), columns[:, 0], y).clamp(min=0)


def error_correlation(p: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The Pearson correlation of p and s among the images of each true side y, averaged by the sides' counts: the
    correlation of two predictors' errors given the truth. A side with fewer than 2 images, or on which p or s is
    constant, counts as uncorrelated."""
    total = p.new_zeros(())
    for side in (0.0, 1.0):
        mask = y == side
        if int(mask.sum()) < 2:
            continue
        a, b = p[mask] - p[mask].mean(), s[mask] - s[mask].mean()
        total = total + mask.sum() * (a * b).sum() / ((a.square().sum() * b.square().sum()).sqrt() + 1e-8)
    return total / len(y)


def make_objective(kind: ObjectiveKind, strength: float, targets: np.ndarray, base_side: np.ndarray,
                   train_idx: np.ndarray) -> Residual | Decorrelated | None:
    """The training objective of one aux (None: the task's plain cross-entropy)."""
    if kind == "plain" or strength == 0:
        return None
    if kind == "residual":
        return Residual.fit(targets, base_side, train_idx, strength)
    if kind == "decorrelated":
        return Decorrelated.fit(base_side, strength)
    raise ValueError(f"aux.objective: expected one of {', '.join(OBJECTIVES)}, got {kind!r}")


def side_agreement(aux_prob: np.ndarray, base_side: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """How the aux relates to the base on the cut, over some images: each one's side accuracy, the correlation of
    their probabilities, and of their errors (within each true side, what the decorrelated objective penalises)."""
    y = targets.astype(np.float64)
    p, s = (torch.as_tensor(a, dtype=torch.float64) for a in (aux_prob, base_side))

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        if len(a) < 2 or a.std() == 0 or b.std() == 0:
            return 0.0
        return float(np.corrcoef(a, b)[0, 1])

    return {"aux_side_accuracy": float(((aux_prob > 0.5) == (y == 1)).mean()),
            "base_side_accuracy": float(((base_side > 0.5) == (y == 1)).mean()),
            "probability_correlation": corr(aux_prob, base_side),
            "error_correlation": float(error_correlation(p, s, torch.as_tensor(y)))}
