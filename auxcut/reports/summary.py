"""`auxcut summary`: the pipeline's headline numbers as a short table (after `dvc repro`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auxcut import AuxcutError


class MetricsDict(dict):
    """A JSON object of a metrics file: a key the file lacks is an AuxcutError naming the file and the stage to
    re-run (metrics/<stage>.json is written by the stage <stage>), not a KeyError."""

    def __init__(self, items: dict[str, Any], path: Path) -> None:
        super().__init__(items)
        self.path = path

    def __missing__(self, key: str) -> Any:
        raise AuxcutError(f"{self.path}: no {key!r} in it (an older or incomplete file: re-run its stage, "
                          f"`dvc repro {self.path.stem}`)")


def read_metrics_file(path: Path) -> MetricsDict:
    """metrics/<stage>.json as nested MetricsDicts; a missing, truncated or non-object file is one AuxcutError line."""
    try:
        metrics = json.loads(path.read_text(), object_pairs_hook=lambda pairs: MetricsDict(dict(pairs), path))
    except FileNotFoundError:
        raise AuxcutError(f"{path}: not found (run `dvc repro` first)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AuxcutError(f"{path}: not valid JSON ({exc}): re-run its stage, `dvc repro {path.stem}`") from None
    if not isinstance(metrics, MetricsDict):
        raise AuxcutError(f"{path}: expected a JSON object, got {type(metrics).__name__}: "
                          f"re-run its stage, `dvc repro {path.stem}`")
    return metrics


def _fmt(value: float, ci: list[float] | None = None, signed: bool = False) -> str:
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    return f"{text} [{ci[0]:+.3f}, {ci[1]:+.3f}]" if signed and ci else f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else text


def aux_control_lines(aux: dict[str, Any]) -> list[str]:
    """What metrics/train_aux.json says the aux was, where it is not the seed method's: a control of aux.target instead
    of the max-cut, and the 10x parameter rule lowered by aux.min_ratio."""
    lines = []
    if aux.get("target", "cut") == "random_cut":
        drawn = aux["random_cut"]
        lines.append(f"{'aux target: random_cut (a control)':<38} a random balanced cut (draw {drawn['draw']}), not the "
                     f"max-cut{' (it fell on the max-cut)' if drawn['same_as_max_cut'] else ''}: "
                     f"{', '.join(drawn['side_0'])} | {', '.join(drawn['side_1'])}")
    elif aux.get("target", "cut") == "classes":
        agree = aux["class_agreement"]
        lines.append(f"{'aux target: classes (a control)':<38} a multiclass aux over the classes, its probabilities "
                     f"stacked: test accuracy aux {agree['aux_accuracy']:.3f}, base {agree['base_accuracy']:.3f}; "
                     f"error correlation {agree['error_correlation']:+.2f}")
    if aux.get("min_ratio", 10) < 10:
        lines.append(f"{'parameter rule lowered':<38} aux.min_ratio {aux['min_ratio']:g}: the auxes need only be "
                     f"{aux['min_ratio']:g}x smaller than the base, not the seed method's 10x")
    return lines


def summary_table(metrics_dir: Path = Path("metrics")) -> str:
    """The table `auxcut summary` prints, from metrics_dir/<stage>.json; a missing, truncated or incomplete file is
    an AuxcutError naming it."""
    fair = read_metrics_file(metrics_dir / "fairness.json")
    cut = read_metrics_file(metrics_dir / "maxcut.json")
    aux = read_metrics_file(metrics_dir / "train_aux.json")
    pct = int(fair["ci"] * 100)
    lines = [f"auxcut results on the test split ({fair['test_rows']} images, {pct}% bootstrap intervals, head: {fair['head']})", ""]
    attributes = list(fair["predictors"]["base"]["groups"])
    header = f"{'predictor':<10} {'accuracy':<24}" + "".join(f" {'worst ' + a:<34}" for a in attributes)
    lines += [header, "-" * len(header)]
    for name, label in (("base", "base"), ("control", "control"), ("stacked", "stacked")):
        r = fair["predictors"][name]
        row = f"{label:<10} {_fmt(r['accuracy'], r['accuracy_ci']):<24}"
        for a in attributes:
            g = r["groups"][a]
            row += f" {_fmt(g['worst_group_accuracy'], g['worst_group_accuracy_ci']) + ' (' + g['worst_group'] + ')':<34}"
        lines.append(row)
    lines.append("")
    for key, label in (("control_minus_base", "recalibration gain (control - base)"),
                       ("stacked_minus_control", "aux gain (stacked - control)")):
        d = fair["differences"][key]["accuracy"]
        lines.append(f"{label:<38} {_fmt(d['value'], d['ci'], signed=True)}")
    exact = "" if cut["exact"] is None else f"; exact optimum {cut['exact']:g} ({'reached' if cut['exact_reached'] else 'missed'} by GW)"
    lines.append(f"{'max-cut (' + cut['method'] + ')':<38} GW cut {cut['rounded_cut']:g} / certified SDP bound "
                 f"{cut['sdp_bound']:.4g} = {cut['gw_cut_over_sdp_bound']:.3f}{exact}")
    if cut.get("depth", 1) > 1:
        lines.append(f"{'tree of cuts':<38} depth {cut['depth']}: {len(cut['nodes'])} cuts, {len(cut['leaves'])} leaves "
                     "(data/cut.json, plots/maxcut/tree.png)")
    auxes = aux.get("auxes", 1)
    if aux.get("mode") == "head":
        lines.append(f"{'aux as ' + str(auxes) + ' cut head' + ('s' if auxes > 1 else ''):<38} {aux['parameters']:,} parameters "
                     f"on the base's backbone, one forward pass; cut test accuracy {aux['accuracy']['test']:.3f} vs "
                     f"majority rate {aux['majority_rate']['test']:.3f}")
    else:
        lines.append(f"{'aux model' + ('s' if auxes > 1 else ''):<38} {aux['base_over_aux_parameters']:.1f}x fewer "
                     f"parameters than the base{' (all ' + str(auxes) + ')' if auxes > 1 else ''}; test accuracy "
                     f"{aux['accuracy']['test']:.3f} vs majority rate {aux['majority_rate']['test']:.3f}")
    lines += aux_control_lines(aux)
    if "base_agreement" in aux and aux.get("mode") != "head":
        agree = aux["base_agreement"]
        lines.append(f"{'aux objective / view':<38} {aux['objective']} / {aux['view']}: side accuracy aux "
                     f"{agree['aux_side_accuracy']:.3f}, base {agree['base_side_accuracy']:.3f}; error correlation "
                     f"{agree['error_correlation']:+.2f}")
    exits_path, attributes_path = metrics_dir / "train_exits.json", metrics_dir / "train_attributes.json"
    if exits_path.is_file():
        ex = read_metrics_file(exits_path)
        point = ex["operating_point"]["test"]
        lines.append(f"{'early exits (' + ex['groups'] + ' groups)':<38} at the point picked on val: accuracy "
                     f"{point['accuracy']:.3f} (full depth {ex['full_accuracy']['test']:.3f}) at {point['flops']:.0%} of "
                     f"the FLOPs, {point['coarse_share']:.0%} answers coarse (plots/exits/curve.png)")
    if attributes_path.is_file():
        at = read_metrics_file(attributes_path)
        row = at["by_fraction"][-1]
        lines.append(f"{'attribute heads (' + format(row['hidden'], '.0%') + ' labels hidden)':<38} shared / separate: " +
                     ", ".join(f"{n} {row['shared']['accuracy'][n]:.3f} / {row['separate']['accuracy'][n]:.3f}"
                               for n in at["attributes"]))
    robustness_path = metrics_dir / "robustness.json"
    if robustness_path.is_file():
        sets = read_metrics_file(robustness_path)["sets"]
        names = [n for n in next(iter(sets.values()))["predictors"] if n in ("base", "stacked") or n.startswith("fc_")]
        lines.append(f"{'under occlusion (accuracy)':<38} " + ", ".join(names) + " (plots/robustness/accuracy.png)")
        for set_name, scored in sets.items():
            lines.append(f"{'  ' + set_name:<38} " + " ".join(f"{scored['predictors'][n]['accuracy']:.3f}" for n in names))
    discover_path, fine_path = metrics_dir / "discover.json", metrics_dir / "score_fine.json"
    if discover_path.is_file() and fine_path.is_file():
        found, fine = read_metrics_file(discover_path), read_metrics_file(fine_path)
        lines.append(f"{'fine labels discovered':<38} {found['fine_labels']} in {found['coarse_classes']} classes, "
                     f"{found['assigned_share']:.0%} of train labelled (plots/discovery/umap.png); minus base: " +
                     ", ".join(f"{mode} {m['minus_base']['accuracy']['value']:+.3f}" for mode, m in fine["modes"].items()))
    return "\n".join(lines)

