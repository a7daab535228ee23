"""The fine-label report (reports/variants-discovery.md and .json): what `discover` found inside the coarse classes,
how well it matches the hidden attributes (adjusted Rand index, NMI), and the coarse accuracy of the nets taught by
the discovered labels (`train_fine`, scored by `score_fine`) against the coarse-only base, from the study's runs
(reports/runs/). Every number is a mean over seeds with a 95% t-interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from auxcut.reports.pages import _cell, by_config, seed_means, split_lever, write_variant_page

# The published anchor: coarse accuracy on PathMNIST without and with the discovered fine labels.
PUBLISHED_BASE, PUBLISHED_FINE = 0.9084, 0.9166
TRUTH_ARI_AIM = 0.7  # issue 24: where the fine labels are known (merged MNIST digits), ARI against them at least this
ABLATIONS = {"preset": "filter + UMAP + HDBSCAN (the method)", "no-filter": "no uncertainty filter (discovery.keep 1)",
             "no-umap": "no UMAP: HDBSCAN on the features (discovery.reduce none)"}


def _scored(run_dir: Path) -> dict[str, Any] | None:
    """score_fine's numbers: runs filed before it was a stage of its own hold them in train_fine.json."""
    for path in (run_dir / "score_fine.json", run_dir / "train_fine.json"):
        if path.is_file():
            scored = json.loads(path.read_text())
            if all("minus_base" in mode for mode in scored["modes"].values()):
                return scored
    return None


def collect(run_dir: Path) -> dict[str, Any] | None:
    """One run's numbers; None for a run without the discovery stages."""
    found_path, fine = run_dir / "discover.json", _scored(run_dir)
    if not found_path.is_file() or fine is None:
        return None
    meta = json.loads((run_dir / "run.json").read_text())
    found = json.loads(found_path.read_text())
    outcomes = [c["outcome"] for c in found["by_coarse_class"].values()]
    # Agreement with an attribute the class fixes (age, when the age bucket is the class) is nesting, not discovery.
    # Runs filed before discover named those attributes: UTKFace's class scheme (e.g. age_race) names them.
    params = meta.get("params", {})
    fixed = set(found.get("class_attributes", str(params.get("data.classes", "")).split("_")
                          if params.get("data.source") == "utkface" else []))
    hidden = {name: s for name, s in found["agreement"].items() if not fixed & set(name.split(" x "))}
    hidden = hidden or found["agreement"]  # digits: the digit is the class; its agreement is all there is
    record: dict[str, Any] = {
        "config": meta["config"], "seed": meta["seed"], "head": meta["head"], "modes": list(fine["modes"]),
        "hidden": list(hidden), "fixed": sorted(fixed & set(found["agreement"])), "fine_labels": float(found["fine_labels"]),
        "coarse_classes": found["coarse_classes"], "assigned_share": found["assigned_share"],
        "fallbacks": float(sum(o != "clusters" for o in outcomes)), "base_accuracy": fine["base_accuracy"]}
    for name, scores in hidden.items():
        record[f"ari/{name}"], record[f"nmi/{name}"] = scores["ari"], scores["nmi"]
    truth = found.get("fine_truth")  # data.coarse merged known classes: the fine labels to find
    record["truth"] = truth["attribute"] if truth else None
    if truth:
        for where in ("clustered_train", "test"):
            record[f"truth/{where}/ari"], record[f"truth/{where}/nmi"] = truth[where]["ari"], truth[where]["nmi"]
        if params.get("data.coarse"):
            record["truth/coarse_only/ari"], record["truth/coarse_only/nmi"] = merge_alone(
                params["data.coarse"], params.get("data.max_per_class") or 1000)
    for mode, scored in fine["modes"].items():
        record[f"{mode}/accuracy"] = scored["test_accuracy"]
        record[f"{mode}/gain"] = scored["minus_base"]["accuracy"]["value"]
        record[f"{mode}/gain_within"] = scored["minus_base"]["accuracy"]["ci"]  # this seed's paired bootstrap
    return record


def merge_alone(groups: list[list[int]], per_class: int) -> tuple[float, float]:
    """ARI and NMI against the original classes of one label per coarse class, i.e. of nothing discovered, on
    `per_class` images of every original class (the MNIST configs' test split is exactly that): the floor a discovery
    must clear, which is not 0, as the merge itself already tells the classes of different groups apart."""
    truth = np.repeat([c for group in groups for c in group], per_class)
    merged = np.repeat([g for g, group in enumerate(groups) for _ in group], per_class)
    return float(adjusted_rand_score(truth, merged)), float(normalized_mutual_info_score(truth, merged))


def aggregate(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for config, runs in by_config(records):
        keys = sorted({k for r in runs for k, v in r.items() if isinstance(v, float)})
        agg = seed_means(runs, keys)
        # the aim: a coarse gain whose interval over seeds lies above zero
        agg["aim_met"] = {mode: bool(agg[f"{mode}/gain"]["ci"] and agg[f"{mode}/gain"]["ci"][0] > 0)
                          for mode in runs[0]["modes"]}
        if runs[0].get("truth"):  # and, where the fine labels are known, finding them: ARI >= 0.7 (mean over seeds)
            agg["truth_aim_met"] = {where: agg[f"truth/{where}/ari"]["mean"] >= TRUTH_ARI_AIM
                                    for where in ("clustered_train", "test")}
        out[config] = agg
    return out


def render(records: list[dict[str, Any]], agg: dict[str, dict[str, Any]]) -> str:
    lines = ["# Fine labels discovered inside coarse classes (issues 12 and 24)", "",
             "Generated by `auxcut study report` from the runs in `reports/runs/` (the study's CPU preset). "
             "Stage `discover` keeps the base's most certain train images of each coarse class (entropy of its mean "
             "prediction over random augmentations), lays their pooled base features out with UMAP and clusters them "
             "with HDBSCAN; every cluster is a fine label. On UTKFace the coarse class is the age bucket and race and "
             "gender are hidden from the method: the agreement of the clusters with them (adjusted Rand index, NMI; "
             "1 is a perfect match, 0 chance) says whether the clusters found them. On MNIST (configs mnist-2x5 and "
             "mnist-5x2: the digits merged into 2 coarse classes of 5 digits and 5 of 2, 300 images a digit in each "
             "official set, so 225 train, 75 val and 300 test images a digit) the fine labels to find are the digits "
             "themselves, and the aim is an ARI of at least 0.7 against them. One label per coarse class already "
             "agrees with the digits above chance (the merge tells digits of different groups apart): that floor is "
             "shown beside each. Stage `train_fine` teaches a net "
             "of the base's size with the fine labels (`pretrain`: on the fine labels, then fine-tuned on the coarse "
             "ones; `multihead`: a coarse and a fine head under one masked loss, the same epoch budget); stage "
             "`score_fine` scores its coarse accuracy on the test split against the coarse-only base (runs filed "
             "before that stage existed hold the same scores in train_fine.json). Mean over seeds [95% t-interval].",
             "",
             f"Published anchor: PathMNIST, {100 * PUBLISHED_BASE:.2f}% -> {100 * PUBLISHED_FINE:.2f}% coarse accuracy "
             f"({100 * (PUBLISHED_FINE - PUBLISHED_BASE):+.2f} points). A different data set, net and resolution: "
             "shown beside ours, not matched.", ""]
    for config, a in agg.items():
        r0 = next(r for r in records if r["config"] == config)
        seeds = len(a["seeds"])
        lines += [f"## {config} ({seeds} seed{'s' if seeds != 1 else ''}: {', '.join(map(str, a['seeds']))})", "",
                  f"{_cell(a['fine_labels'], scale=1)} fine labels in {r0['coarse_classes']} coarse classes; "
                  f"{_cell(a['assigned_share'])}% of the train images got one (the rest: uncertain or noise); "
                  f"classes that fell back to one label (no cluster, one cluster or too few images), mean per seed: "
                  f"{_cell(a['fallbacks'], scale=1)}.", ""]
        if r0.get("truth"):
            met = a["truth_aim_met"]
            lines += [f"| discovered fine labels against the hidden {r0['truth']} | adjusted Rand index | NMI | "
                      f"aim: ARI >= {TRUTH_ARI_AIM} |", "|---|---|---|---|",
                      f"| the clustered train images | {_cell(a['truth/clustered_train/ari'], scale=1, digits=3)} | "
                      f"{_cell(a['truth/clustered_train/nmi'], scale=1, digits=3)} | "
                      f"{'met' if met['clustered_train'] else 'not met'} |",
                      f"| every test image (its nearest fine label in its coarse class) | "
                      f"{_cell(a['truth/test/ari'], scale=1, digits=3)} | {_cell(a['truth/test/nmi'], scale=1, digits=3)} | "
                      f"{'met' if met['test'] else 'not met'} |"]
            if "truth/coarse_only/ari" in a:
                lines.append(f"| nothing discovered: one label per coarse class (the merge alone, equally many "
                             f"images per {r0['truth']}) | {_cell(a['truth/coarse_only/ari'], scale=1, digits=3)} | "
                             f"{_cell(a['truth/coarse_only/nmi'], scale=1, digits=3)} | floor |")
            lines.append("")
        elif r0["hidden"]:
            lines += ["| clusters against | adjusted Rand index | NMI |", "|---|---|---|"]
            lines += [f"| {name} | {_cell(a[f'ari/{name}'], scale=1, digits=3)} | {_cell(a[f'nmi/{name}'], scale=1, digits=3)} |"
                      for name in r0["hidden"]]
            if r0["fixed"] and set(r0["fixed"]).isdisjoint(r0["hidden"]):
                lines += ["", f"Left out: {', '.join(r0['fixed'])}, which the coarse class fixes (the clusters nest "
                             "inside it, so agreeing with it says nothing of discovery)."]
            lines.append("")
        lines += ["| net | coarse accuracy % | minus base, points | aim: interval above 0 | published |",
                  "|---|---|---|---|---|",
                  f"| base (coarse labels only) | {_cell(a['base_accuracy'])} | | | {100 * PUBLISHED_BASE:.2f} |"]
        for mode in r0["modes"]:
            lines.append(f"| {mode} | {_cell(a[f'{mode}/accuracy'])} | {_cell(a[f'{mode}/gain'], True)} | "
                         f"{'met' if a['aim_met'][mode] else 'not met'} | {100 * PUBLISHED_FINE:.2f} |")
        lines += ["", "Each seed's own paired bootstrap interval of the gain (points): " + "; ".join(
            f"seed {r['seed']}: " + ", ".join(f"{mode} {100 * r[f'{mode}/gain']:+.1f} [{100 * r[f'{mode}/gain_within'][0]:+.1f}, "
                                               f"{100 * r[f'{mode}/gain_within'][1]:+.1f}]" for mode in r["modes"])
            for r in sorted((r for r in records if r["config"] == config), key=lambda r: r["seed"])) + ".", ""]
    return "\n".join(lines + ablation(records, agg)) + "\n"


def ablation(records: list[dict[str, Any]], agg: dict[str, dict[str, Any]]) -> list[str]:
    """Per configuration with known fine labels and an ablation lever: each step of discovery left out in turn."""
    rows: dict[str, dict[str, str]] = {}
    for config, a in agg.items():
        name, lever = split_lever(config)
        if lever in ABLATIONS and next(r for r in records if r["config"] == config).get("truth"):
            rows.setdefault(name, {})[lever] = config
    lines = []
    for name, levers in sorted(rows.items()):
        if set(levers) == {"preset"}:
            continue
        r0 = next(r for r in records if r["config"] == levers["preset" if "preset" in levers else next(iter(levers))])
        lines += [f"## What each step contributes: {name}", "",
                  "Each row leaves one step out (a named lever of `auxcut.reports.study.LEVERS`); the base is the "
                  "same per seed, so the rows differ in the fine labels and the nets they teach. The test ARI scores "
                  "every test image, so it compares rows whatever share of the train images each clustered.", "",
                  "| discovery | fine labels | train images clustered % | ARI, clustered train | ARI, every test image | "
                  + " | ".join(f"{mode} minus base, points" for mode in r0["modes"]) + " |",
                  "|---|---|---|---|---|" + "---|" * len(r0["modes"])]
        for lever, what in ABLATIONS.items():
            if lever in levers:
                a = agg[levers[lever]]
                lines.append(f"| {what} | {_cell(a['fine_labels'], scale=1)} | {_cell(a['assigned_share'])} | "
                             f"{_cell(a['truth/clustered_train/ari'], scale=1, digits=3)} | "
                             f"{_cell(a['truth/test/ari'], scale=1, digits=3)} | "
                             + " | ".join(_cell(a[f"{mode}/gain"], True) for mode in r0["modes"]) + " |")
        a = agg[next(iter(levers.values()))]
        if "truth/coarse_only/ari" in a:
            lines.append(f"| nothing discovered: one label per coarse class | 1 per class | | | "
                         f"{_cell(a['truth/coarse_only/ari'], scale=1, digits=3)} |" + " |" * len(r0["modes"]))
        lines.append("")
    return lines


def write(root: Path) -> Path | None:
    """reports/variants-discovery.md and .json from reports/runs/ (each configuration, a lever too, is its own section); None
    when no run has the discovery stages yet."""
    return write_variant_page(root, "variants-discovery", collect, aggregate, render)
