"""A study report from the metrics files of several pipeline runs: one record per run, aggregates
per configuration over seeds, and a markdown page that states the numbers plainly.

A run is a folder holding the pipeline's `metrics/*.json` plus `run.json` (configuration name,
seed, head, device); `collect` turns it into one flat record.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

STAGES = ("prepare", "train_base", "confusion", "maxcut", "relabel", "train_aux", "stack", "fit_head", "fairness")
PREDICTORS = ("base", "control", "stacked")


def collect(run_dir: Path) -> dict[str, Any] | None:
    """One record: what the run was, and its headline numbers (test split unless named otherwise); None for a run
    without the method's stages (a variant's `--stages` run)."""
    if not all((run_dir / f"{stage}.json").is_file() for stage in STAGES):
        return None
    meta = json.loads((run_dir / "run.json").read_text())
    m = {stage: json.loads((run_dir / f"{stage}.json").read_text()) for stage in STAGES}
    fair, aux, cut = m["fairness"], m["train_aux"], m["maxcut"]
    record: dict[str, Any] = {**meta, "n_classes": m["prepare"]["n_classes"], "test_rows": fair["test_rows"]}
    for name in PREDICTORS:
        p = fair["predictors"][name]
        record[f"{name}_accuracy"] = p["accuracy"]
        record[f"{name}_macro_f1"] = p["macro_f1"]
        for attribute, g in p["groups"].items():
            record[f"{name}_worst_{attribute}"] = g["worst_group_accuracy"]
            record[f"{name}_worst_{attribute}_group"] = g["worst_group"]
            record[f"{name}_gap_{attribute}"] = g["gap"]
            for group, cell in g["by_group"].items():
                record[f"{name}_{attribute}={group}"] = cell["accuracy"]
    for key, label in (("control_minus_base", "recalibration_gain"), ("stacked_minus_control", "aux_gain")):
        d = fair["differences"][key]
        record[label] = d["accuracy"]["value"]
        record[f"{label}_ci"] = d["accuracy"]["ci"]
        for metric, value in d.items():
            if metric.startswith("worst_"):
                record[f"{label}_{metric}"] = value["value"]
    agreement = aux.get("base_agreement", {})  # runs made before the aux objectives have none
    record.update({
        "auxes": aux.get("auxes", 1), "depth": cut.get("depth", 1),
        "aux_base_side_accuracy": agreement.get("base_side_accuracy"),
        "aux_probability_correlation": agreement.get("probability_correlation"),
        "aux_error_correlation": agreement.get("error_correlation"),
        "aux_test_accuracy": aux["accuracy"]["test"], "aux_majority_rate": aux["majority_rate"]["test"],
        "base_over_aux_parameters": aux["base_over_aux_parameters"],
        "gw_cut_over_sdp_bound": cut.get("gw_cut_over_sdp_bound"), "cut_method": cut["method"],
        "seconds": {stage: m[stage]["seconds"] for stage in STAGES},
        "device": m["train_base"].get("device", "cpu"),
    })
    return record


def variant_runs(runs_dir: Path, collect: Callable[[Path], dict[str, Any] | None]) -> list[dict[str, Any]]:
    """A variant page's records: the logistic head's runs that `collect` reads (None for a run without the variant's
    stages)."""
    return [r for r in load_runs(runs_dir, collect) if r["head"] == "logistic"]


def write_variant_page(root: Path, stem: str, collect: Callable[[Path], dict[str, Any] | None],
                       aggregate: Callable[[list[dict[str, Any]]], dict[str, Any]],
                       render: Callable[[list[dict[str, Any]], dict[str, Any]], str]) -> Path | None:
    """reports/<stem>.md and .json from the runs in reports/runs/ that `collect` reads; None when there is none yet."""
    records = variant_runs(root / "reports" / "runs", collect)
    if not records:
        return None
    agg = aggregate(records)
    return write_page(root, stem, render(records, agg), records, agg)


def by_config(records: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The records grouped by configuration, in name order."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r["config"]].append(r)
    return sorted(groups.items())


def split_lever(config: str) -> tuple[str, str]:
    """'mnist-2x5 (cpu, lever no-umap)' -> ('mnist-2x5 (cpu)', 'no-umap'); a preset run is lever 'preset'. The lever is
    read back out of the label run_one writes: runs filed before run.json named it have no field of their own."""
    name, _, rest = config.partition(" (")
    hardware, _, lever = rest.rstrip(")").partition(", lever ")
    return f"{name} ({hardware})", lever or "preset"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def seed_means(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """The seeds, and each key's mean over the runs that have a number for it, with its t-interval."""
    return {"seeds": sorted(r["seed"] for r in runs),
            **{k: mean_interval([r[k] for r in runs if _number(r.get(k))]) for k in keys}}


def mean_interval(values: list[float], level: float = 0.95) -> dict[str, Any]:
    """Mean over seeds with a t-interval (None for a single seed)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return {"mean": None, "ci": None, "n": 0}
    if len(x) < 2:
        return {"mean": float(x.mean()), "ci": None, "n": len(x)}
    half = stats.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return {"mean": float(x.mean()), "ci": [float(x.mean() - half), float(x.mean() + half)], "n": len(x)}


def aggregate(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per (configuration, head): every numeric field as mean and t-interval over seeds."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[f"{r['config']} / {r['head']}"].append(r)
    out = {}
    for key, runs in sorted(groups.items()):
        numeric = sorted({k for r in runs for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                         - {"seed"})
        out[key] = {"seeds": sorted(r["seed"] for r in runs),
                    **{k: mean_interval([r[k] for r in runs if isinstance(r.get(k), (int, float))]) for k in numeric}}
    return out


def meets_aim(a: dict[str, Any], aim: float = 0.01, attribute: str = "race") -> bool:
    """Issue 10's aim for a configuration: an aux gain of at least `aim` whose interval over seeds lies above zero (3
    seeds or more), with the worst `attribute` group of the stacked head not below the control head's."""
    aux = a["aux_gain"]
    worst_ok = (f"stacked_worst_{attribute}" not in a
                or a[f"stacked_worst_{attribute}"]["mean"] >= a[f"control_worst_{attribute}"]["mean"])
    return aux["mean"] >= aim and aux["ci"] is not None and aux["ci"][0] > 0 and len(a["seeds"]) >= 3 and worst_ok


def findings(agg: dict[str, dict[str, Any]], aim: float = 0.01) -> list[str]:
    """Plain sentences, generated from the aggregates so they cannot drift from the tables."""
    out = []
    for key, a in agg.items():
        aux, recal = a["aux_gain"], a["recalibration_gain"]
        seeds = len(a["seeds"])
        verdict = ("meets" if meets_aim(a, aim) else "reaches in the mean but not as the aim asks (3 seeds, interval "
                   "above zero, worst race not below the control's)" if aux["mean"] >= aim else "falls short of")
        sure = ("" if aux["ci"] is None else
                " (its interval excludes zero)" if aux["ci"][0] > 0 or aux["ci"][1] < 0 else " (its interval includes zero)")
        text = (f"- **{key}** ({seeds} seed{'s' if seeds > 1 else ''}): the head fit on val alone moves accuracy by "
                f"{100 * recal['mean']:+.1f} points over the base argmax; the aux model adds {100 * aux['mean']:+.1f} "
                f"points on top{sure}, which {verdict} the 1-point aim.")
        worst_keys = [k for k in a if k.startswith("stacked_worst_") and not k.endswith("_group")]
        for k in worst_keys:
            attribute = k.removeprefix("stacked_worst_")
            base_worst, stacked_worst = a[f"base_worst_{attribute}"]["mean"], a[k]["mean"]
            out_text = f" Worst {attribute} group: {100 * base_worst:.1f}% (base) → {100 * stacked_worst:.1f}% (stacked)."
            text += out_text
        out.append(text)
    return out


def _cell(stat: dict[str, Any] | None, signed: bool = False, scale: float = 100.0, digits: int = 1) -> str:
    if stat is None or stat.get("n") == 0:
        return "–"
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    text = fmt.format(stat["mean"] * scale)
    if stat.get("ci"):
        text += " [" + ", ".join(fmt.format(v * scale) for v in stat["ci"]) + "]"
    return text


def render(records: list[dict[str, Any]], title: str, preface: str = "") -> str:
    """The markdown report: headline table, per-group tables, the aux model, costs."""
    agg = aggregate(records)
    lines = [f"# {title}", ""]
    if preface:
        lines += [preface, ""]
    lines += ["## What the numbers say", ""] + findings(agg) + [""]
    lines += ["## Accuracy on the test split (%, mean over seeds [95% t-interval])", "",
              "| configuration / head | seeds | base | control head | stacked head | recalibration gain | aux gain | "
              "macro-F1 base / stacked |", "|---|---|---|---|---|---|---|---|"]
    for key, a in agg.items():
        lines.append(f"| {key} | {len(a['seeds'])} | {_cell(a['base_accuracy'])} | {_cell(a['control_accuracy'])} | "
                     f"{_cell(a['stacked_accuracy'])} | {_cell(a['recalibration_gain'], True)} | "
                     f"{_cell(a['aux_gain'], True)} | {_cell(a['base_macro_f1'])} / {_cell(a['stacked_macro_f1'])} |")
    single = [r for r in records if r["seed"] == min(x["seed"] for x in records)]
    lines += ["", "Paired bootstrap intervals of the two gains within each run (test rows resampled):", ""]
    for r in single:
        lines.append(f"- {r['config']} / {r['head']}, seed {r['seed']}: recalibration "
                     f"{100 * r['recalibration_gain']:+.1f} [{100 * r['recalibration_gain_ci'][0]:+.1f}, "
                     f"{100 * r['recalibration_gain_ci'][1]:+.1f}], aux {100 * r['aux_gain']:+.1f} "
                     f"[{100 * r['aux_gain_ci'][0]:+.1f}, {100 * r['aux_gain_ci'][1]:+.1f}]")
    attributes = sorted({k.split("=")[0].split("_", 1)[1] for r in records for k in r if "=" in k})
    for attribute in attributes:
        groups = sorted({k.split("=", 1)[1] for r in records for k in r if k.startswith(f"base_{attribute}=")})
        lines += ["", f"## Accuracy by {attribute} (%, base / control / stacked)", "",
                  "| configuration / head | " + " | ".join(groups) + " | worst (stacked) | gap base → stacked |",
                  "|---|" + "---|" * (len(groups) + 2)]
        for key, a in agg.items():
            cells = [" / ".join(_cell(a.get(f"{p}_{attribute}={g}")).split(" [")[0] for p in PREDICTORS) for g in groups]
            worst = _cell(a.get(f"stacked_worst_{attribute}"))
            gap = f"{_cell(a.get(f'base_gap_{attribute}')).split(' [')[0]} → {_cell(a.get(f'stacked_gap_{attribute}')).split(' [')[0]}"
            lines.append(f"| {key} | " + " | ".join(cells) + f" | {worst} | {gap} |")
    lines += ["", "## The aux model and the cut", "",
              "Side accuracies are on the root cut's test images; the base's side is the one its probabilities imply. "
              "Correlations are between the aux's and the base's side probabilities (all test images) and between "
              "their errors (within each true side, what the decorrelated objective penalises).", "",
              "| configuration / head | auxes | aux side accuracy | base side accuracy | majority rate | "
              "probability corr. | error corr. | base / aux parameters | GW cut / SDP bound |",
              "|---|---|---|---|---|---|---|---|---|"]
    for key, a in agg.items():
        lines.append(f"| {key} | {a['auxes']['mean']:.0f} | {_cell(a['aux_test_accuracy'])} | "
                     f"{_cell(a.get('aux_base_side_accuracy'))} | {_cell(a['aux_majority_rate'])} | "
                     f"{_cell(a.get('aux_probability_correlation'), scale=1, digits=2)} | "
                     f"{_cell(a.get('aux_error_correlation'), scale=1, digits=2)} | "
                     f"{a['base_over_aux_parameters']['mean']:.1f}x | {a['gw_cut_over_sdp_bound']['mean']:.3f} |")
    lines += ["", "## Wall time per stage (seconds, first seed of each configuration)", "",
              "| configuration / head | device | " + " | ".join(STAGES) + " |", "|---|---|" + "---|" * len(STAGES)]
    for r in single:
        lines.append(f"| {r['config']} / {r['head']} | {r['device']} | " +
                     " | ".join(f"{r['seconds'][s]:.0f}" for s in STAGES) + " |")
    return "\n".join(lines) + "\n"


def load_runs(runs_dir: Path, read: Callable[[Path], dict[str, Any] | None] = collect) -> list[dict[str, Any]]:
    """The records `read` makes of the filed runs in reports/runs/, leaving out those it returns None for."""
    records = [read(d) for d in sorted(runs_dir.iterdir()) if (d / "run.json").is_file()]
    return [r for r in records if r is not None]


def write_page(root: Path, stem: str, page: str, records: list[dict[str, Any]], agg: dict[str, Any]) -> Path:
    """reports/<stem>.md (the page) and reports/<stem>.json (its runs and aggregates, for tools)."""
    out = root / "reports" / f"{stem}.md"
    out.write_text(page)
    (root / "reports" / f"{stem}.json").write_text(json.dumps({"runs": records, "aggregates": agg}, indent=2) + "\n")
    return out
