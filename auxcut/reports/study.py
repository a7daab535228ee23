"""The UTKFace study: presets, and a runner that reproduces each (configuration, seed, head) in its own
scratch copy of the repository and files its metrics under reports/runs/ for the report.

    auxcut study flags utkface-15 cpu          # the `-S` overrides of a preset, for dvc exp run
    auxcut study run --configs utkface-15 --seeds 0 1 2 --hardware cpu
    auxcut study run --configs utkface-15 --seeds 1 --heads logistic --lever aux-w5-e30 \
        --set aux.width=5 --set aux.epochs=30 --set aux.patience=6   # a lever: its own row in the report
    auxcut study run --configs utkface-15 --seeds 0 1 2 --heads logistic \
        --levers preset residual decorrelated view-center tree2-paths   # named levers (LEVERS), base trained once
    auxcut study run --configs utkface-15 --seeds 0 1 2 --heads logistic --levers preset aux-head exits-age
    auxcut study run --configs utkface-15 --seeds 0 1 2 --heads logistic --lever partial-input \
        --stages fairness robustness   # only these stages (and what they need): the occlusion report's runs
    auxcut study run --configs utkface-15 --seeds 0 1 2 --heads logistic --levers occlusion-spatial \
        --stages robustness    # the missing-feature paper's spatial model under occlusion
    auxcut study run --configs utkface-15 --seeds 0 1 2 --heads logistic --stages fairness \
        --levers cut-w4 random-cut-w4 classes-aux-w4   # the capacity study's row at the preset's aux size (also w9, w16)
    auxcut study run --configs utkface-3 --seeds 0 1 2 --heads logistic --stages score_fine
    auxcut study run --configs mnist-2x5 mnist-5x2 --seeds 0 1 2 --heads logistic --stages score_fine \
        --levers preset no-filter no-umap      # discovery where the fine labels (the digits) are known
    auxcut study report     # reports/study-utkface.md, variants-heads.md, variants-occlusion.md,
                            # variants-discovery.md (each + .json)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from auxcut import AuxcutError
from auxcut.core.io import shows_data
from auxcut.core.tracking import project_root
from auxcut.reports import capacity

MNIST_FOLDER = "../shared/datasets/mnist"
MNIST: dict[str, Any] = {"data.source": "mnist", "data.path": MNIST_FOLDER, "data.image_size": 28,
                         "data.max_per_class": 300, "base.augment": False, "fine.augment": False,
                         "exits.after": [2],  # the convnet has 4 conv layers at 28 px: an exit sits after 1..3
                         # the CPU preset's 12 epochs leave the base's val loss still falling on 2,250 images
                         "base.epochs": 30, "base.patience": 6, "fine.epochs": 15, "fine.finetune_epochs": 15,
                         "fine.patience": 6}
CONFIGS: dict[str, dict[str, Any]] = {
    "utkface-15": {"data.source": "utkface", "data.classes": "age_race"},
    "utkface-30": {"data.source": "utkface", "data.classes": "age_race_gender"},
    # issue 12's discovery: the age bucket is the coarse class; race and gender are hidden from the method
    "utkface-3": {"data.source": "utkface", "data.classes": "age"},
    # issue 24's discovery where the fine labels are known: MNIST digits merged into coarse classes (the digit stays a
    # hidden group attribute). 300 images per digit in each official set (225 train, 75 val, 300 test) leave the coarse
    # task headroom below 99%. A config's own values win over the hardware's: digits are 28 px and never flipped.
    "mnist-2x5": {**MNIST, "data.coarse": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]},
    "mnist-5x2": {**MNIST, "data.coarse": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]},
}
HARDWARE: dict[str, dict[str, Any]] = {
    # 2-core CPU: ~15 minutes end to end for utkface-15
    # the attribute nets at half resolution and width 8 (3 fractions x 5 nets), exits on a frozen base after blocks 1, 2
    "cpu": {"data.image_size": 64, "base.width": 16, "base.epochs": 12, "base.patience": 4, "base.augment": True,
            "aux.width": 4, "aux.epochs": 12, "aux.patience": 4,
            "attributes.hidden": [0.0, 0.5, 0.9], "attributes.view": "low", "attributes.width": 8,
            "attributes.epochs": 6, "attributes.patience": 3, "attributes.augment": True,
            "exits.after": [2, 4], "exits.epochs": 4, "exits.patience": 2,
            "discovery.min_cluster_size": 50, "fine.epochs": 6, "fine.finetune_epochs": 6, "fine.patience": 4,
            "fine.augment": True},
    "gpu": {"data.image_size": 128, "base.width": 32, "base.epochs": 30, "base.batch_size": 128, "base.patience": 6,
            "base.augment": True, "aux.width": 8, "aux.epochs": 30, "aux.batch_size": 128, "aux.patience": 6,
            "attributes.hidden": [0.0, 0.5, 0.9], "attributes.width": 32, "attributes.epochs": 30,
            "attributes.batch_size": 128, "attributes.patience": 6, "attributes.augment": True,
            "exits.after": [2, 4, 6], "exits.epochs": 15, "exits.batch_size": 128, "exits.width": 32,
            "discovery.min_cluster_size": 50, "fine.epochs": 15, "fine.finetune_epochs": 15, "fine.batch_size": 128,
            "fine.patience": 6, "fine.augment": True},
}
HEADS = ("logistic", "naive_bayes")
# The named levers of the aux (issue 10), each on top of a preset; `preset` is the preset itself. Widths keep every
# lever within the 10x parameter budget on the CPU preset (base width 16 at 64 px): a view of half the side drops a
# block, so its aux can be wider; a depth-2 tree has three auxes.
LEVERS: dict[str, dict[str, Any]] = {
    "preset": {},
    "residual": {"aux.objective": "residual", "aux.strength": 2.0},
    "decorrelated": {"aux.objective": "decorrelated", "aux.strength": 1.0},
    "view-center": {"aux.view": "center", "aux.width": 8},
    "view-gray": {"aux.view": "gray"},
    "view-low": {"aux.view": "low", "aux.width": 8},
    "tree2-paths": {"maxcut.depth": 2, "aux.width": 2, "head.aux_features": "paths"},
    "tree2-nodes": {"maxcut.depth": 2, "aux.width": 2, "head.aux_features": "nodes"},
    # issue 11: the cut as a head on the base (fine-tuned from it: a lower lr, few epochs), exits grouped by age bucket
    "aux-head": {"aux.mode": "head", "aux.lr": 0.001, "aux.epochs": 4, "aux.patience": 2, "aux.augment": True},
    "exits-age": {"exits.groups": "prefix"},
    "exits-joint": {"exits.backbone": "joint", "exits.lr": 0.001},  # the whole net learns the exits (Gran-HBN trains so)
    # issue 25: exits over groups of the classes the base confuses with each other (HD-CNN's coarse categories): 5
    # groups of 15 classes (exits-age's age buckets are 3 groups of 5)
    "exits-clusters": {"exits.groups": "clusters", "exits.n_groups": 5},
    # issue 24: the missing-feature paper's model (its last conv map, inverted; SGD-trained fully connected heads) under
    # occlusion, beside the pooled heads of the preset (run with --stages robustness)
    "occlusion-spatial": {"missing.map": "spatial"},
    # issue 24: what discovery's uncertainty filter and UMAP each contribute (run with --stages score_fine)
    "no-filter": {"discovery.keep": 1.0},
    "no-umap": {"discovery.reduce": "none"},
}
# issue 25's capacity study: the max-cut aux against a random cut and a multiclass aux at three sizes (run with --stages
# fairness)
LEVERS.update(capacity.levers())
# What `auxcut study run` runs without --configs: the UTKFace study (the MNIST configs are discovery's, run with
# --stages score_fine).
STUDY_CONFIGS = sorted(name for name, config in CONFIGS.items() if config["data.source"] == "utkface")
DEFAULT_ARCHIVE = "../shared/datasets/utkface/UTKFace.tar.gz"


def archive_path() -> str:
    """The UTKFace archive or folder: $AUXCUT_UTKFACE, else the shared copy beside the repository."""
    return os.environ.get("AUXCUT_UTKFACE", DEFAULT_ARCHIVE)


def preset(config: str, hardware: str, seed: int = 0, head: str = "logistic") -> dict[str, Any]:
    if config not in CONFIGS:
        raise AuxcutError(f"configuration: expected one of {', '.join(CONFIGS)}, got {config!r}")
    if hardware not in HARDWARE:
        raise AuxcutError(f"hardware: expected one of {', '.join(HARDWARE)}, got {hardware!r}")
    ours = {**CONFIGS[config]}  # a config's own values win over the hardware's
    ours.setdefault("data.path", archive_path())
    return {**ours, **{k: v for k, v in HARDWARE[hardware].items() if k not in ours}, "seed": seed, "head.type": head}


def flags(overrides: dict[str, Any]) -> list[str]:
    """`-S key=value` pairs for `dvc exp run`."""
    out = []
    for key, value in overrides.items():
        text = str(value).lower() if isinstance(value, bool) else json.dumps(value, separators=(",", ":")) \
            if isinstance(value, list) else value  # a list without spaces: one shell word, read as YAML by DVC
        out += ["-S", f"{key}={text}"]
    return out


def set_params(params_file: Path, overrides: dict[str, Any]) -> None:
    params = yaml.safe_load(params_file.read_text())
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        if leaf not in node:
            raise AuxcutError(f"preset: {dotted} is not a param in {params_file}")
        node[leaf] = value
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def _is_result(name: str) -> bool:
    """A tracked file the pipeline writes (dvc.lock, metrics, the plots DVC keeps in git): the scratch copy's own
    stages make their own, so the repository's (the digits run's) never overwrite them there."""
    return name == "dvc.lock" or (name.startswith(("metrics/", "plots/")) and not name.endswith(".gitignore"))


def _scratch_copy(root: Path, scratch: Path) -> None:
    """The repository's tracked and new files (no results) in a git repository: DVC's working copy for one
    (configuration, hardware, seed). Its results (data/, models/, dvc.lock, DVC's cache) are kept from one call to
    the next, so the preset and each lever on it share the stages they have in common (the base CNN is trained once
    per seed) and a lever re-runs only the stages its params make stale."""
    git = ["git", "-c", "user.name=auxcut-study", "-c", "user.email=study@auxcut.invalid"]
    fresh = not (scratch / ".git").is_dir()
    if fresh:
        scratch.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q"], cwd=scratch, check=True, capture_output=True)
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root,
                            capture_output=True, text=True, check=True).stdout
    names = {name for name in listed.split("\0") if name and not _is_result(name) and (root / name).is_file()}
    if not fresh:  # files the repository no longer has go from the copy too
        copied = subprocess.run(["git", "ls-files", "-z"], cwd=scratch, capture_output=True, text=True, check=True).stdout
        for name in set(filter(None, copied.split("\0"))) - names:
            if not _is_result(name) and not name.endswith(".gitignore"):
                (scratch / name).unlink(missing_ok=True)
    for name in sorted(names):
        (scratch / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, scratch / name)
    for cmd in (["git", "add", "-A"], git + ["commit", "-qm", "study copy", "--allow-empty"]):
        subprocess.run(cmd, cwd=scratch, check=True, capture_output=True)


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """`key=value` overrides from the command line, values read as YAML (so 5 is an int, true a bool)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise AuxcutError(f"--set: expected key=value (e.g. aux.width=5), got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def upstream(scratch: Path, stages: list[str], env: dict[str, str]) -> set[str]:
    """The stages `dvc repro STAGES` runs: these and every stage they depend on (DVC's own graph)."""
    ran: set[str] = set()
    for stage in stages:  # `dvc dag` takes one target
        dot = subprocess.run([sys.executable, "-m", "dvc", "dag", "--dot", stage], cwd=scratch, env=env, check=True,
                             capture_output=True, text=True).stdout
        ran |= set(re.findall(r'^"([^"]+)";$', dot, flags=re.MULTILINE))
    return ran


def run_one(root: Path, config: str, hardware: str, seed: int, heads: tuple[str, ...], lever: str = "",
            extra: dict[str, Any] | None = None, stages: list[str] | None = None) -> list[Path]:
    """Reproduce one (configuration, seed) and file the metrics of each head (the heads share the CNNs).
    A lever (a name and param overrides on top of the preset) is filed as a configuration of its own.
    With `stages`, only those stages and what they need run, and only their metrics are filed (the scratch copy
    may hold other stages' metrics from an earlier code or base, which must not pass for this run's)."""
    suffix = f"-{lever}" if lever else ""
    scratch = root / ".study" / f"{config}-{hardware}-s{seed}"
    _scratch_copy(root, scratch)
    # Stage commands say `python`: this interpreter's environment first on PATH makes it the one that runs them.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}"),
           "AUXCUT_PIPELINE_RUN": f"{config}-{hardware}-s{seed}-{time.strftime('%Y%m%dT%H%M%S')}"}
    filed, ran = [], None
    for head in heads:
        overrides = {**preset(config, hardware, seed, head), **(extra or {})}
        data = Path(overrides["data.path"])  # the scratch copy is elsewhere: a relative path is the repository's
        overrides["data.path"] = str(data if data.is_absolute() else (root / data).resolve())
        set_params(scratch / "params.yaml", overrides)
        print(f"auxcut study: {config} {hardware} seed {seed} head {head}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "dvc", "repro", *(stages or [])], cwd=scratch, env=env, check=True)
        if stages and ran is None:  # the graph follows the params (confusion.labels), which the heads share
            ran = upstream(scratch, stages, env)
        # Tracked names never start with "utkface": no path in the project may pass for the data set itself.
        out = root / "reports" / "runs" / f"{hardware}-{config}-s{seed}-{head}{suffix}"
        out.mkdir(parents=True, exist_ok=True)
        for file in out.glob("*.json"):  # a filed run is one run's metrics, never mixed with an earlier one's
            file.unlink()
        for file in (scratch / "metrics").glob("*.json"):
            if ran is None or file.stem in ran:
                shutil.copy2(file, out / file.name)
        meta = {"config": f"{config} ({hardware}{', lever ' + lever if lever else ''})", "seed": seed, "head": head,
                "params": overrides, **({"stages": sorted(ran)} if ran is not None else {})}
        (out / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
        filed.append(out)
        if seed == 0 and head == heads[0]:
            _file_figures(scratch / "plots", root / "reports" / "figures" / f"{hardware}-{config}{suffix}")
    return filed


def _file_figures(plots: Path, figures: Path) -> None:
    """The first seed's figures (confusion matrices, the cut, per-group bars) for the report; never a plot that shows
    the data's images (marked so by the stage that drew it): the faces are for research use only, and reports/ is
    committed."""
    shutil.rmtree(figures, ignore_errors=True)
    for png in plots.rglob("*.png"):
        if shows_data(png):
            continue
        (figures / png.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(png, figures / png.parent.name / png.name)


def write_report(root: Path) -> Path:
    # Imported here: the variant pages read torch models' modules, which `auxcut study --help` need not load.
    from auxcut.reports import discovery, heads, occlusion
    from auxcut.reports.pages import aggregate, load_runs, render, write_page

    records = load_runs(root / "reports" / "runs")
    if not records:
        raise AuxcutError(f"{root / 'reports' / 'runs'}: no runs yet (auxcut study run ...)")
    preface = ("Generated by `auxcut study report` from the runs in `reports/runs/` (one folder per "
               "configuration, seed and head; each holds the pipeline's metrics files). Base, control head and stacked "
               "head are scored on the same held-out test split of each seed; the control head is the stacked head's "
               "twin fit on the base probabilities alone, so `aux gain = stacked - control` is what the aux model adds. "
               "Configurations named `lever ...` are a preset with some params changed (see their `run.json`; the "
               "named levers are `auxcut.reports.study.LEVERS`: aux objectives, views and a depth-2 tree of cuts). Each seed's "
               "levers share its base CNN, so their differences are the aux's alone -- except `lever partial-input`: the "
               "preset run again for the occlusion stages (`--stages fairness robustness`) after a training-code change, "
               "so its base was retrained and its differences from the preset include the base's. Why the plain aux adds so little, "
               "measured on one run: `reports/aux-signal-15.md` (`python bench/aux_signal.py`). The aim (issue 10): "
               "on utkface-15 with the logistic head, an aux gain of at least +1.0 point whose 3-seed interval lies "
               "above zero, with the worst race group not below the control's. GPU preset: not run, no accelerator "
               "machine was lent to this work (every number here is from the 2-core CPU preset).")
    page = render(records, "auxcut on UTKFace", preface) + "\n".join(["", *capacity.section(root)])
    write_page(root, "study-utkface", page.rstrip("\n") + "\n", records, aggregate(records))
    for variants in (heads.write(root), occlusion.write(root), discovery.write(root)):
        if variants is not None:
            print(variants)
    return root / "reports" / "study-utkface.md"


def preset_flags(config: str, hardware: str) -> str:
    """What `auxcut study flags` prints: the preset's `-S` overrides for `dvc exp run` (seed and head left to it)."""
    return " ".join(flags({k: v for k, v in preset(config, hardware).items() if k not in ("seed", "head.type")}))


def run_study(root: Path, configs: list[str], seeds: list[int], hardware: str, heads: list[str], lever: str = "",
              sets: list[str] | None = None, levers: list[str] | None = None, stages: list[str] | None = None) -> Path:
    """`auxcut study run`: every configuration x seed x (lever) x head filed under reports/runs/, then the report.
    `lever` and `sets` (key=value) name one lever of the user's own; `levers` runs named ones from LEVERS."""
    extra = parse_set(sets or [])
    if lever and not re.fullmatch(r"[A-Za-z0-9_.-]+", lever):
        raise AuxcutError(f"--lever: expected a name of letters, digits, '.', '_' or '-' (a folder name), got {lever!r}")
    if extra and not lever:
        raise AuxcutError("--set needs --lever NAME: a run with other params is not the preset's")
    if levers and (lever or extra):
        raise AuxcutError("--levers runs named levers; --lever/--set name one of your own: use one or the other")
    runs = [(name if name != "preset" else "", LEVERS[name]) for name in levers] if levers else [(lever, extra)]
    for config in configs:
        for seed in seeds:  # seed by seed: each seed's levers share its base CNN
            for name, overrides in runs:
                run_one(root, config, hardware, seed, tuple(heads), name, overrides, stages)
    return write_report(root)
