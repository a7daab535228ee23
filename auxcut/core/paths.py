"""Where the pipeline's files live (relative to the repository root). dvc.yaml names the same paths;
tests/test_dvc_yaml.py checks that the two agree."""

from pathlib import Path

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
