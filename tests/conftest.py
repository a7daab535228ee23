from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
UTKFACE_ARCHIVE = Path(os.environ.get("AUXCUT_UTKFACE", REPO.parent / "shared" / "datasets" / "utkface" / "UTKFace.tar.gz"))

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars are for people, not test logs


@pytest.fixture
def params_dict() -> dict:
    """The repository's params.yaml as a plain dict, to be varied by a test."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


def digits_halves(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits (pixels scaled to 0..1), shuffled and cut in two: x_fit, y_fit, x_held, y_held."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order] / 16.0, y[order]
    half = len(y) // 2
    return x[:half], y[:half], x[half:], y[half:]
