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

That is missing.map `pooled`. The paper inverts the last conv map itself, before any pooling, so which feature is
missing *where* survives: missing.map `spatial` (SpatialMissingHead) reads that map, flattened
(auxcut.nets.embedding.last_map: pmnist_net's 20 x 4 x 4 = 320 units at 28 px), as it comes out of the net's own
activation, and inverts it against the activation's bound: 1 - x after a sigmoid, 6 - x after ReLU6, and -x after
tanh (the paper's negation). A ReLU map (pmnist_net, convnet) has no upper bound; it is bounded per unit by the cap
measured on train, as the pooled features are (b = clip(x / cap, 0, 1), missing 1 - b). The conv layers stay frozen
(the map is read once from the base); fresh fully connected layers -- a hidden layer of the net's activation, then
the class layer -- are trained with SGD with momentum, keeping the epoch of lowest val loss.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from sklearn.neural_network import MLPClassifier
from torch import nn

from auxcut import AuxcutError
from auxcut.nets import backbones, embedding

FeatureKind = Literal["present", "missing", "both"]
KINDS: tuple[str, ...] = ("present", "missing", "both")
MapKind = Literal["pooled", "spatial"]
# missing = BOUND - x for an activation with an upper bound (tanh: the paper's negation, 0 - x); ReLU has none
BOUND = {"sigmoid": 1.0, "relu6": 6.0, "tanh": 0.0}


def features_of(base: nn.Module, map_kind: MapKind, images: np.ndarray, mean: np.ndarray, std: np.ndarray,
                device: torch.device) -> np.ndarray:
    """What a head of `map_kind` reads of uint8 images: the base's pooled embedding, or its last conv map flattened."""
    read = embedding.embed if map_kind == "pooled" else embedding.last_map
    return read(base, images, mean, std, batch_size=256, device=device)


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

    map = "pooled"  # what it reads (features_of); a class attribute, so saved heads stay what they were

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

    @property
    def iterations(self) -> int:
        return int(self.model.n_iter_)


def spatial_view(maps: np.ndarray, activation: str, cap: np.ndarray | None, kind: FeatureKind) -> np.ndarray:
    """The spatial head's input: the last conv map as it is (`present`), inverted against its activation's bound
    (`missing`), or both side by side. A ReLU map is first bounded by `cap` (clip(x / cap, 0, 1))."""
    if activation in BOUND:
        present, absent = maps, BOUND[activation] - maps
    else:
        present = np.clip(maps / cap, 0.0, 1.0)
        absent = 1.0 - present
    if kind == "present":
        return present.astype(np.float32)
    if kind == "missing":
        return absent.astype(np.float32)
    if kind == "both":
        return np.column_stack([present, absent]).astype(np.float32)
    raise AuxcutError(f"missing.features: expected some of {', '.join(KINDS)}, got {kind!r}")


class SpatialMissingHead:
    """The paper's missing-feature model on a frozen base: fresh fully connected layers (`hidden` units of the base's
    activation, then the classes) on the base's last conv map, present, inverted or both; SGD with momentum for
    `epochs` epochs, keeping the weights of the epoch with the lowest val loss. `fit` and `predict_proba` take the
    flattened maps (auxcut.nets.embedding.last_map), which the frozen conv layers give once for all epochs."""

    map = "spatial"

    def __init__(self, kind: FeatureKind, activation: str, n_classes: int, hidden: int, lr: float, momentum: float,
                 weight_decay: float, epochs: int, batch_size: int, cap_quantile: float, seed: int) -> None:
        if activation not in backbones.PMNIST_ACTIVATIONS:
            raise AuxcutError(f"missing.map spatial: no inversion for a {activation} map")
        self.kind, self.activation, self.n_classes, self.hidden = kind, activation, n_classes, hidden
        self.lr, self.momentum, self.weight_decay, self.epochs = lr, momentum, weight_decay, epochs
        self.batch_size, self.cap_quantile, self.seed = batch_size, cap_quantile, seed
        self.cap: np.ndarray | None = None
        self.history: list[dict[str, float]] = []
        self.best_epoch = 0

    def _layers(self, n_inputs: int) -> nn.Sequential:
        with torch.random.fork_rng(devices=[]):  # seeded without moving the caller's generator
            torch.manual_seed(self.seed)
            return nn.Sequential(nn.Linear(n_inputs, self.hidden), backbones.PMNIST_ACTIVATIONS[self.activation](),
                                 nn.Linear(self.hidden, self.n_classes))

    def _inputs(self, maps: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(spatial_view(maps, self.activation, self.cap, self.kind))

    def fit(self, maps: np.ndarray, labels: np.ndarray, val_maps: np.ndarray, val_labels: np.ndarray,
            on_epoch: Callable[[int, "SpatialMissingHead"], None] | None = None) -> "SpatialMissingHead":
        """Train on (maps, labels), choose the epoch on (val_maps, val_labels). `on_epoch(epoch, head)` is called after
        each epoch with that epoch's weights in place (e.g. to score test sets per epoch, as the paper's table does)."""
        if len(np.unique(labels)) < 2:
            raise AuxcutError("train_missing: the train split has a single class; a head needs at least two")
        threads = torch.get_num_threads()
        # Steps this small (a batch of `batch_size` rows through two linear layers) run fastest on one thread: on the
        # project's busy 2-core machine two threads made 12 epochs of 400 maps take 8.5 s instead of 0.16 s.
        torch.set_num_threads(1)
        try:
            return self._fit(maps, labels, val_maps, val_labels, on_epoch)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, maps: np.ndarray, labels: np.ndarray, val_maps: np.ndarray, val_labels: np.ndarray,
             on_epoch: Callable[[int, "SpatialMissingHead"], None] | None) -> "SpatialMissingHead":
        self.cap = caps(maps, self.cap_quantile) if self.activation not in BOUND else None
        x, y = self._inputs(maps), torch.as_tensor(labels, dtype=torch.int64)
        x_val, y_val = self._inputs(val_maps), torch.as_tensor(val_labels, dtype=torch.int64)
        self.layers = self._layers(x.shape[1])
        optimizer = torch.optim.SGD(self.layers.parameters(), lr=self.lr, momentum=self.momentum,
                                    weight_decay=self.weight_decay)
        loss_fn, order = nn.CrossEntropyLoss(), torch.Generator().manual_seed(self.seed)
        best_loss, best_state, self.history = float("inf"), None, []
        for epoch in range(1, self.epochs + 1):
            self.layers.train()
            loss_sum = 0.0
            for rows in torch.randperm(len(y), generator=order).split(self.batch_size):
                loss = loss_fn(self.layers(x[rows]), y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(rows)
            self.layers.eval()
            with torch.no_grad():
                logits = self.layers(x_val)
                val_loss = float(loss_fn(logits, y_val)) if len(y_val) else float("nan")
                val_acc = float((logits.argmax(1) == y_val).float().mean()) if len(y_val) else float("nan")
            if not np.isfinite(loss_sum):
                raise AuxcutError(f"train_missing: the spatial head diverged at epoch {epoch}; lower missing.lr")
            self.history.append({"epoch": epoch, "train_loss": loss_sum / len(y), "val_loss": val_loss,
                                 "val_acc": val_acc})
            if not val_loss >= best_loss:  # the first epoch, or a lower loss (an empty val keeps the last epoch)
                best_loss, self.best_epoch, best_state = val_loss, epoch, copy.deepcopy(self.layers.state_dict())
            if on_epoch is not None:
                on_epoch(epoch, self)
        self.layers.load_state_dict(best_state)
        return self

    @torch.no_grad()
    def predict_proba(self, maps: np.ndarray) -> np.ndarray:
        self.layers.eval()
        return self.layers(self._inputs(maps)).softmax(1).double().numpy()

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.layers.parameters()))

    @property
    def iterations(self) -> int:
        return len(self.history)
