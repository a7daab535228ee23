"""The heads variants' report (reports/variants-heads.md and .json): the aux as a head against the separate aux, one
backbone with attribute heads against a net per attribute, and early exits from coarse to fine, from the study's runs
(reports/runs/, each a pipeline run's metrics). Every number is a mean over seeds with a 95% t-interval."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from auxcut.variants.exits import AIM_ACCURACY_DROP, AIM_COARSE_RIGHT, AIM_FLOPS
from auxcut.reports.pages import _cell, seed_means, write_variant_page

ANCHOR = ("Gran-HBN (CIFAR-100, AlexNet backbone): coarse-class accuracy 64.6-66.8% at 33-79% of AlexNet's FLOPs. "
          "A different data set, net and accuracy definition: shown beside ours, not compared point for point.")


def _read(run_dir: Path, stage: str) -> dict[str, Any] | None:
    path = run_dir / f"{stage}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def collect(run_dir: Path) -> dict[str, Any] | None:
    """One run's numbers for this report; None for a run made before the heads variants (no train_exits metrics)."""
    meta = json.loads((run_dir / "run.json").read_text())
    aux, fair = _read(run_dir, "train_aux"), _read(run_dir, "fairness")
    exits, attrs = _read(run_dir, "train_exits"), _read(run_dir, "train_attributes")
    if exits is None:
        return None
    record: dict[str, Any] = {
        "config": meta["config"], "seed": meta["seed"], "head": meta["head"],
        "exits_groups": exits["groups"], "exits_after": exits["after"], "exits_backbone": exits["backbone"],
        "exits_full_accuracy": exits["full_accuracy"]["test"], "exits_aim_met": exits["aim"]["met"],
    }
    if aux is not None and fair is not None and "mode" in aux:  # an exits-only run (--stages train_exits) has none
        p = fair["predictors"]
        record.update({
            "aux_mode": aux["mode"], "stacked_accuracy": p["stacked"]["accuracy"],
            "control_accuracy": p["control"]["accuracy"],
            "aux_gain": fair["differences"]["stacked_minus_control"]["accuracy"]["value"],
            "class_accuracy": aux["class_accuracy"]["stacked_on"], "base_accuracy": aux["class_accuracy"]["base"],
            "aux_side_accuracy": aux["accuracy"]["test"], "aux_parameters": aux["parameters"],
            "base_parameters": aux["base_parameters"], "forward_passes": aux["inference"]["forward_passes"],
            "predictor_images_per_second": aux["inference"]["predictor_images_per_second"],
            "speed_over_base": aux["inference"]["predictor_images_per_second"]
            / aux["inference"]["base_images_per_second"]})
    elif "lever" not in meta["config"]:
        return None  # a preset run made before the heads variants
    if attrs is not None:
        record.update({"attributes": attrs["attributes"], "attributes_view": attrs["view"],
                       "attributes_width": attrs["width"]})
        for row in attrs["by_fraction"]:
            h = f"{round(100 * row['hidden'])}"
            for name in attrs["attributes"]:
                record[f"attr{h}_{name}_shared"] = row["shared"]["accuracy"][name]
                record[f"attr{h}_{name}_separate"] = row["separate"]["accuracy"][name]
                record[f"attr{h}_{name}_difference"] = row["difference"][name]["mean"]
                record[f"attr{h}_{name}_difference_within"] = [row["difference"][name]["low"], row["difference"][name]["high"]]
                record[f"attr{h}_{name}_majority"] = row["majority"][name]
            for kind in ("shared", "separate"):
                record[f"attr{h}_{kind}_parameters"] = row[kind]["parameters"]
                record[f"attr{h}_{kind}_images_per_second"] = row[kind]["images_per_second"]
        record["attributes_hidden"] = [round(100 * row["hidden"]) for row in attrs["by_fraction"]]
    for k, e in enumerate(exits["exits"]):
        record[f"exit{k + 1}_accuracy"] = e["test_accuracy"]
        record[f"exit{k + 1}_flops"] = e["flops_ratio"]
        record[f"exit{k + 1}_groups"] = len(e["groups"])
    point = exits["operating_point"]["test"]
    for key in ("accuracy", "coarse_share", "coarse_right", "fine_right", "flops"):
        record[f"point_{key}"] = point[key]
    record["point_drop"] = point["accuracy"] - exits["full_accuracy"]["test"]
    return record


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    numeric = sorted({k for r in runs for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                     - {"seed"})
    return {**seed_means(runs, numeric), "aim_met": sum(bool(r["exits_aim_met"]) for r in runs)}


def _dataset(config: str) -> str:
    return config.split(" (")[0]


def aggregate(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The three comparisons, per data set configuration: aux mode, attribute heads (the preset's runs), exit grouping."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        data = _dataset(r["config"])
        preset = "lever" not in r["config"]
        if preset or r["config"].endswith("lever aux-head)"):  # one run per seed and mode (other levers repeat the aux)
            by[f"aux/{data}/{r['aux_mode']}"].append(r)
        if preset:  # the attribute nets do not depend on the levers: one comparison per seed
            by[f"attributes/{data}"].append(r)
        if preset or r["config"].endswith(("lever exits-age)", "lever exits-joint)", "lever exits-clusters)")):
            by[f"exits/{data}/{r['exits_groups']}, {r['exits_backbone']} backbone"].append(r)
    return {key: _aggregate(runs) for key, runs in sorted(by.items())}


def _n(a: dict[str, Any]) -> str:
    return str(len(a["seeds"]))


def render(records: list[dict[str, Any]], agg: dict[str, dict[str, Any]], reports: Path) -> str:
    """The markdown page; `reports` is the folder it is written to (its figures/ are linked)."""
    lines = ["# One backbone, many heads (issue 11)", "",
             "Generated by `auxcut study report` from the runs in `reports/runs/` (the study's CPU preset; "
             "levers `aux-head`, `exits-age`, `exits-joint` and `exits-clusters` of `auxcut.reports.study.LEVERS`). Test split of each seed; mean over seeds "
             "[95% t-interval]; accuracies in %. Each seed's variants share its base CNN and its cut. Timings are "
             "images per second on the 2-core CPU that ran the stage, measured in the same stage run as their "
             "baseline (the predictor and the base alone take turns), so only their ratio carries over to other "
             "machines.", ""]
    datasets = sorted({_dataset(r["config"]) for r in records})
    for data in datasets:
        lines += [f"## {data}", "", "### The aux as a head (`aux.mode`)", "",
                  "| aux.mode | seeds | class accuracy the head stacks on | control head | stacked head | aux gain | "
                  "aux side accuracy | aux parameters | forward passes | predictor images/s | speed vs base alone |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for mode in ("separate", "head"):
            a = agg.get(f"aux/{data}/{mode}")
            if a is None:
                lines.append(f"| {mode} | 0 | not run | | | | | | | | |")
                continue
            lines.append(f"| {mode} | {_n(a)} | {_cell(a['class_accuracy'])} | {_cell(a['control_accuracy'])} | "
                         f"{_cell(a['stacked_accuracy'])} | {_cell(a['aux_gain'], True)} | "
                         f"{_cell(a['aux_side_accuracy'])} | {a['aux_parameters']['mean']:,.0f} | "
                         f"{a['forward_passes']['mean']:.0f} | {_cell(a['predictor_images_per_second'], scale=1, digits=0)} | "
                         f"{_cell(a['speed_over_base'], scale=1, digits=2)} |")
        lines += ["", "`separate`: the base plus one small CNN per cut, a forward pass each; `head`: a copy of the base "
                  "with a binary head per cut, fine-tuned jointly (class loss + masked cut losses), whose own class "
                  "probabilities the stacked set is built on. Aux parameters: the separate aux's, or the heads' "
                  "added to the base. The head's class accuracy also gains from the fine-tuning itself (more epochs "
                  "at a lower learning rate): a fine-tune without cut heads, which would separate the two, was not "
                  "run.", ""]
        a = agg.get(f"attributes/{data}")
        if a is not None:
            r0 = next(r for r in records if _dataset(r["config"]) == data and "lever" not in r["config"])
            lines += ["### Attribute heads with hidden labels (`attributes.hidden`)", "",
                      f"One backbone with a head per attribute (masked loss) against one CNN per attribute, each on the "
                      f"same labels; {r0['attributes_view']} view, width {r0['attributes_width']} "
                      f"({_n(a)} seed{'s' if _n(a) != '1' else ''}).", "",
                      "| labels hidden | attribute | majority | shared heads | separate nets | shared - separate |",
                      "|---|---|---|---|---|---|"]
            for h in r0["attributes_hidden"]:
                for name in r0["attributes"]:
                    key = f"attr{h}_{name}"
                    difference = a[f"{key}_difference"]
                    if difference["ci"] is None:  # one seed: the paired interval over its test images instead, marked
                        difference = {**difference, "ci": r0[f"{key}_difference_within"]}
                    lines.append(f"| {h}% | {name} | {_cell(a[f'{key}_majority'])} | {_cell(a[f'{key}_shared'])} | "
                                 f"{_cell(a[f'{key}_separate'])} | {_cell(difference, True)}"
                                 f"{' *' if a[f'{key}_difference']['ci'] is None else ''} |")
            h = r0["attributes_hidden"][0]
            lines += ["", "\\* one seed: the 95% interval is the paired one over that seed's test images (normal "
                      "approximation), not over seeds.", "", "| | parameters | images/s |", "|---|---|---|",
                      f"| shared heads (one net) | {a[f'attr{h}_shared_parameters']['mean']:,.0f} | "
                      f"{_cell(a[f'attr{h}_shared_images_per_second'], scale=1, digits=0)} |",
                      f"| separate nets ({len(r0['attributes'])}) | {a[f'attr{h}_separate_parameters']['mean']:,.0f} | "
                      f"{_cell(a[f'attr{h}_separate_images_per_second'], scale=1, digits=0)} |", ""]
        exit_keys = [k for k in agg if k.startswith(f"exits/{data}/")]
        if exit_keys:
            lines += ["### Early exits, coarse -> fine (`exits`)", "",
                      f"The operating point is picked on val (the cheapest threshold combination within "
                      f"{100 * AIM_ACCURACY_DROP:.0f} point of the full-depth fine accuracy whose coarse answers are "
                      f"right at least {AIM_COARSE_RIGHT:.0%} of the time) and scored on test. Accuracy counts a "
                      f"coarse answer as right when the image's class is in the group it names; `fine right` is the "
                      f"share of images given their exact class (what specificity costs). FLOPs by "
                      f"`torch.utils.flop_counter`, relative to the plain base. Aim: within 1 point at <= "
                      f"{AIM_FLOPS:.0%} of the FLOPs, coarse answers right >= {AIM_COARSE_RIGHT:.0%}.", "",
                      "| groups | seeds | exits (after layer: groups, test accuracy, FLOPs) | full-depth fine accuracy | "
                      "point accuracy | drop | mean FLOPs | coarse answers | coarse right | fine right | aim met |",
                      "|---|---|---|---|---|---|---|---|---|---|---|"]
            for key in exit_keys:
                a = agg[key]
                r0 = next(r for r in records if _dataset(r["config"]) == data
                          and f"{r['exits_groups']}, {r['exits_backbone']} backbone" == key.split("/")[-1])
                described = "; ".join(
                    f"{after}: {a[f'exit{k + 1}_groups']['mean']:.0f}, {_cell(a[f'exit{k + 1}_accuracy'])}, "
                    f"{100 * a[f'exit{k + 1}_flops']['mean']:.0f}%" for k, after in enumerate(r0["exits_after"]))
                lines.append(f"| {key.split('/')[-1]} | {_n(a)} | {described} | {_cell(a['exits_full_accuracy'])} | "
                             f"{_cell(a['point_accuracy'])} | {_cell(a['point_drop'], True)} | {_cell(a['point_flops'])} | "
                             f"{_cell(a['point_coarse_share'])} | {_cell(a['point_coarse_right'])} | "
                             f"{_cell(a['point_fine_right'])} | {a['aim_met']} of {_n(a)} |")
            lines += ["", f"Published anchor: {ANCHOR}", ""]
            figures = [f for f in sorted((reports / "figures").glob(f"*-{data}*/exits/curve.png"))
                       if "lever" not in f.parts[-3] and ("exits" in f.parts[-3] or f.parts[-3].endswith(data))]
            lines += [f"![accuracy-compute curve, {p.parts[-3]}]({p.relative_to(reports).as_posix()})" for p in figures]
            lines.append("")
    return "\n".join(lines) + "\n"


def write(root: Path) -> Path | None:
    """reports/variants-heads.md and .json from reports/runs/; None when no run has the heads variants yet."""
    return write_variant_page(root, "variants-heads", collect, aggregate, lambda records, agg: render(records, agg, root / "reports"))
