from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
UTKFACE_ARCHIVE = Path(os.environ.get("AUXCUT_UTKFACE", REPO.parent / "shared" / "datasets" / "utkface" / "UTKFace.tar.gz"))

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars are for people, not test logs


@pytest.fixture
def params_dict() -> dict:
    """The repository's params.yaml as a plain dict, to be varied by a test."""
    return yaml.safe_load((REPO / "params.yaml").read_text())
