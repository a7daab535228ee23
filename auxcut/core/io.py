"""Atomic file output: a stage that fails half-way must never leave a half-written output behind."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import secrets
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auxcut import AuxcutError
from auxcut.core.paths import made_by


def _fresh_beside(path: Path, suffix: str, create: Callable[[Path], None]) -> Path:
    """A new, uniquely named file or folder beside `path`, made by `create` (which fails if the name is taken).
    Not tempfile's mkstemp / mkdtemp: their private modes (0600, 0700) would carry over to the output when it is renamed
    into place, whatever the umask; created here with open()'s and mkdir()'s modes, the umask decides, as for any file."""
    while True:
        candidate = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
        try:
            create(candidate)
            return candidate
        except FileExistsError:
            continue


def _create_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _fresh_beside(path, ".tmp" + path.suffix, _create_file)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; it replaces `path` whole only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_beside(path, ".tmp", Path.mkdir)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unreadable(path: str | Path, exc: Exception) -> AuxcutError:
    """One line for a pipeline file that is missing or cannot be read: the file, and the stage that writes it."""
    stage = made_by(path)
    rerun = f"run `dvc repro {stage}`" if stage else "run the stage that writes it"
    if isinstance(exc, FileNotFoundError):
        return AuxcutError(f"{path}: not found ({f'stage {stage} writes it: ' if stage else ''}{rerun})")
    detail = str(exc).splitlines()[0] if str(exc) else "no data"
    return AuxcutError(f"{path}: cannot be read ({exc.__class__.__name__}: {detail}); it may be truncated: re-{rerun}")


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Around the read of a stage's output: a missing, truncated or corrupt file (numpy's, pandas', torch's or
    pickle's own errors) becomes one line naming it and the stage that writes it."""
    try:
        yield
    except AuxcutError:
        raise
    except (OSError, ValueError, EOFError, RuntimeError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise unreadable(path, exc) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no NaN; DVC and MLflow read null as "no value"
    return value


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# A PNG text key on plots that show the data's own images (the UTKFace faces are for research use only): whatever
# files figures where others see them (the study, under the committed reports/) leaves these out.
SHOWS_DATA_KEY = "auxcut-shows-data"


def save_figure(path: str | Path, figure: Any, shows_data: bool = False) -> None:
    """Save a matplotlib figure atomically and close it; `shows_data` marks a PNG that draws the data's images."""
    import matplotlib.pyplot as plt

    fmt = Path(path).suffix.lstrip(".") or "png"
    if shows_data and fmt != "png":
        raise AuxcutError(f"{path}: a plot of the data's images is saved as .png, which carries the mark")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight",
                       **({"metadata": {SHOWS_DATA_KEY: "yes"}} if shows_data else {}))
    plt.close(figure)


def shows_data(path: str | Path) -> bool:
    """Whether a PNG was saved as a plot of the data's images (save_figure's mark)."""
    from PIL import Image

    with Image.open(path) as image:
        return getattr(image, "text", {}).get(SHOWS_DATA_KEY) == "yes"
