"""The final predictor as one object: a batch of images -> class probabilities and class names.

It chains what the pipeline trained: base CNN probabilities + the aux CNNs' probabilities (one per cut of the
tree of cuts, or the K class probabilities of aux.target classes) -> the stacked head (which turns them into path
features itself when the head uses them). With the aux as a head (aux.mode head), one net gives both the class
probabilities and the cuts' in one forward pass.
`AuxcutPyfunc` wraps it as an MLflow pyfunc model, which is what the registry holds and
`mlflow models serve` (`make serve`) answers HTTP requests with.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import Schema, TensorSpec
from torch import nn

from auxcut import AuxcutError
from auxcut.variants import joint
from auxcut.method import stacking
from auxcut.nets import training

MAX_BATCH = 4096  # one request's images are held in memory at once
# The served model's input schema: any array, its values kept as the request's JSON gave them. MLflow's scoring server
# casts a request to the schema's dtype before the model sees it, and a uint8 schema turned 0.5 into 0, 200.7 into 200
# and true into 1 without a word; with this one `Predictor.check` sees the raw values and answers those with HTTP 400.
# (The image shape is in the model's input example.)
SERVING_INPUT = Schema([TensorSpec(np.dtype(object), (-1,))])


class Predictor:
    """`base` and one aux per cut (aux.mode separate), or `base` alone carrying the cut heads (`joint_cuts` of them,
    aux.mode head), then the stacked head."""

    def __init__(self, base: nn.Module, auxes: list[nn.Module], head: Any, mean: np.ndarray, std: np.ndarray,
                 classes: list[str], joint_cuts: int = 0) -> None:
        self.base, self.auxes, self.head = base.eval(), [aux.eval() for aux in auxes], head
        self.mean, self.std, self.classes, self.joint_cuts = mean, std, classes, joint_cuts
        self.image_shape = tuple(base.arch["in_shape"])
        self.device = training.pick_device()

    @classmethod
    def from_files(cls, base_path: Path, aux_path: Path, head_path: Path, classes: list[str]) -> "Predictor":
        auxes, aux_state = training.load_checkpoint(Path(aux_path))
        head = joblib.load(head_path)
        if aux_state.get("mode") == "head":  # the aux checkpoint holds the whole net: backbone, class and cut heads
            [net] = auxes
            cuts = (int(net.arch["n_outputs"]) - len(classes)) // 2
            return cls(net, [], head, np.asarray(aux_state["mean"]), np.asarray(aux_state["std"]), list(classes), cuts)
        [base], state = training.load_checkpoint(Path(base_path))
        return cls(base, auxes, head, np.asarray(state["mean"]), np.asarray(state["std"]), list(classes))

    def check(self, images: Any) -> np.ndarray:
        """The images as a uint8 (N, C, H, W) array, or an AuxcutError saying what was expected. Numbers only: a bool
        is no pixel, nor is a fraction or a value outside 0..255 (a float array of whole numbers is taken)."""
        expected = f"uint8 pixel values 0..255 shaped (N, {', '.join(map(str, self.image_shape))})"
        try:
            array = np.asarray(images)
        except (TypeError, ValueError) as exc:
            raise AuxcutError(f"images: expected {expected}; got something that is not an array ({exc})") from None
        if array.ndim == len(self.image_shape):  # one image
            array = array[None]
        if array.ndim != 4 or tuple(array.shape[1:]) != self.image_shape:
            raise AuxcutError(f"images: expected {expected}; got shape {array.shape}")
        if not 1 <= len(array) <= MAX_BATCH:
            raise AuxcutError(f"images: expected 1 to {MAX_BATCH} images per call; got {len(array)}")
        if array.dtype == object:  # the JSON values of an HTTP request, as they came (see SERVING_INPUT)
            kinds = set(map(type, array.flat))  # per value, but in C: a request holds up to MAX_BATCH images
            if not all(issubclass(kind, (int, np.integer)) and not issubclass(kind, (bool, np.bool_)) for kind in kinds):
                names = ", ".join(sorted(kind.__name__ for kind in kinds))
                raise AuxcutError(f"images: expected {expected}; got values that are not all integers ({names})")
            try:
                array = array.astype(np.int64)  # integers only, so exact
                outside = array.min() < 0 or array.max() > 255
            except OverflowError:  # an integer beyond int64
                outside = True
            if outside:
                raise AuxcutError(f"images: expected {expected}; got values outside 0..255")
            array = array.astype(np.uint8)
        if array.dtype != np.uint8:
            if array.dtype.kind not in "iuf":
                raise AuxcutError(f"images: expected {expected}; got dtype {array.dtype}")
            if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 255 or np.any(array != np.round(array)):
                raise AuxcutError(f"images: expected {expected}; got values outside 0..255 or not whole numbers")
            array = array.astype(np.uint8)
        return array

    def head_inputs(self, images: Any) -> np.ndarray:
        """(N, K + cuts) what the heads read: the class probabilities (the control head reads these alone) and the
        cuts' probabilities (or, for a multiclass aux, its K class probabilities)."""
        array = self.check(images)
        kwargs = {"batch_size": 256, "device": self.device}
        if self.joint_cuts:
            base, cuts = joint.split(training.predict_proba(self.base, array, self.mean, self.std, **kwargs,
                                                            task=joint.heads(len(self.classes), self.joint_cuts)),
                                     len(self.classes))
            return np.column_stack([base, cuts])
        base = training.predict_proba(self.base, array, self.mean, self.std, task="multiclass", **kwargs)
        auxes = [training.predict_proba(aux, array, self.mean, self.std, **kwargs,  # one output: a cut's side
                                        task="binary" if aux.arch["n_outputs"] == 1 else "multiclass")
                 for aux in self.auxes]
        return np.column_stack([base, *auxes])

    def predict_proba(self, images: Any) -> np.ndarray:
        """(N, K) probabilities of the stacked head, exactly as the pipeline computes them."""
        return stacking.predict_all_classes(self.head, self.head_inputs(images), len(self.classes))

    def predict(self, images: Any) -> pd.DataFrame:
        """One row per image: the predicted label and class name, its probability, and every class's probability."""
        probs = self.predict_proba(images)
        label = probs.argmax(1)
        frame = pd.DataFrame({"label": label, "class": np.asarray(self.classes, dtype=object)[label],
                              "probability": probs[np.arange(len(probs)), label]})
        return pd.concat([frame, pd.DataFrame(probs, columns=self.classes)], axis=1)


class AuxcutPyfunc(mlflow.pyfunc.PythonModel):
    """The MLflow face of `Predictor`; the classes travel in the model's config."""

    def load_context(self, context: Any) -> None:
        a = context.artifacts
        self.predictor = Predictor.from_files(a["base"], a["aux"], a["head"], context.model_config["classes"])

    # model_input is hinted as an ndarray, a type MLflow reads no schema from (the signature gives it, SERVING_INPUT):
    # any other hint would become the input schema, and none at all has MLflow warn on every import of this module.
    def predict(self, context, model_input: np.ndarray, params=None):  # noqa: ANN001, ANN201
        try:
            return self.predictor.predict(model_input)
        except AuxcutError as exc:  # the scoring server answers this error code with HTTP 400
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None


def log_pyfunc(base_path: Path, aux_path: Path, head_path: Path, classes: list[str], example: np.ndarray,
               registered_name: str) -> Any:
    """Log the predictor as a pyfunc model in the active MLflow run and register it as a new version."""
    predictor = Predictor.from_files(base_path, aux_path, head_path, classes)
    example = predictor.check(example)
    with warnings.catch_warnings():  # that an integer column cannot hold a missing value: `label` never misses one
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
        signature = infer_signature(example, predictor.predict(example))
    signature.inputs = SERVING_INPUT
    package = Path(__file__).resolve().parent
    requirements = package.parent / "requirements.txt"
    return mlflow.pyfunc.log_model(
        name="predictor", python_model=AuxcutPyfunc(),
        artifacts={"base": str(base_path), "aux": str(aux_path), "head": str(head_path)},
        model_config={"classes": list(classes)}, code_paths=[str(package)], signature=signature,
        input_example=example, registered_model_name=registered_name,
        pip_requirements=str(requirements) if requirements.is_file() else None)
