"""Where the pipeline's files live (relative to the repository root). dvc.yaml names the same paths;
tests/test_dvc_yaml.py checks that the two agree."""

from pathlib import Path, PurePosixPath

import yaml

PREPARED = Path("data/prepared")
BASE_MODEL = Path("models/base.pt")
BASE_PROBS = Path("data/predictions/base.npy")
CONFUSION = Path("data/confusion.csv")
CUT = Path("data/cut.json")
RELABELED = Path("data/relabeled.csv")
AUX_MODEL = Path("models/aux.pt")
AUX_PROBS = Path("data/predictions/aux.npy")
CLASS_PROBS = Path("data/predictions/class_probs.npy")  # what the stacked set takes as its base_ columns
STACKED = Path("data/stacked.csv")
CONTROL_HEAD = Path("models/head_control.joblib")
STACKED_HEAD = Path("models/head_stacked.joblib")
CONTROL_PROBS = Path("data/predictions/head_control.npy")
STACKED_PROBS = Path("data/predictions/head_stacked.npy")
METRICS = Path("metrics")
PLOTS = Path("plots")
ATTRIBUTES_MODEL = Path("models/attributes.pt")
EXITS_MODEL = Path("models/exits.pt")
OCCLUDED = Path("data/occluded.npz")
MISSING_HEADS = Path("models/missing_heads.joblib")
FINE_LABELS = Path("data/fine_labels.csv")
FINE_MODELS = Path("models/fine.pt")
FINE_PROBS = Path("data/predictions/fine.npz")


def made_by(path: str | Path) -> str | None:
    """The dvc.yaml stage that writes `path` (one of its outs, metrics or plots, or a file inside an out folder), or
    None (not a stage's output, or no dvc.yaml beside the package). A relative path is relative to the working
    directory, the repository root when a stage runs."""
    path = Path(path)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return None
    parts = PurePosixPath(path.as_posix()).parts
    dvc_yaml = Path(__file__).resolve().parents[2] / "dvc.yaml"  # the stages run from this checkout or DVC's copy of it
    try:
        stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    for name, stage in stages.items():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                out = PurePosixPath(entry if isinstance(entry, str) else next(iter(entry))).parts
                if parts[:len(out)] == out:
                    return name
    return None
