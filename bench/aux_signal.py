"""How much can the aux model add? A diagnostic on a finished pipeline run (a repository or a study copy).

    python bench/aux_signal.py .study/utkface-15-cpu-s2 [--out reports/aux-signal-15.md]

The stacked head gains only from what the aux knows about the cut side that the base does not.
This measures, on the run's own splits and head:
- how well the base already predicts the side (its probability mass on side 1) next to the aux (each aux of a tree of
  cuts, on its own cut), and how the two correlate: their probabilities, and their errors within each true side;
- what the head would gain from an aux that is right with probability q *independently* of the base
  (a simulated upper reference: the real aux's errors are correlated with the base's);
- the same head with an aux fit on the frozen base features (the "shared backbone" lever), a logistic
  and a small MLP on the base's pooled features, trained on train and scored like the real aux.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auxcut.data import prepared  # noqa: E402
from auxcut.method import objectives, stacking  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.nets import training  # noqa: E402
from auxcut.method.hierarchy import ClassTree  # noqa: E402


def head_accuracy(base: np.ndarray, extra: np.ndarray | None, y: np.ndarray, val: np.ndarray, test: np.ndarray,
                  kind: str, C: float, max_iter: int, seed: int) -> np.ndarray:
    """Per-test-row correctness of the run's head fit on val, with or without an extra feature."""
    x = base if extra is None else np.column_stack([base, extra])
    head = stacking.make_head(kind, C, max_iter, seed).fit(x[val], y[val])
    return stacking.predict_all_classes(head, x[test], base.shape[1]).argmax(1) == y[test]


def paired_interval(a: np.ndarray, b: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    draws = np.random.default_rng(seed).integers(0, len(a), (n, len(a)))
    diffs = (a[draws].mean(1) - b[draws].mean(1)) * 100
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def pooled_features(run: Path, images: np.ndarray) -> np.ndarray:
    """The base CNN's global-average-pooled features (its input to the final linear layer)."""
    [model], state = training.load_checkpoint(run / paths.BASE_MODEL)
    model.eval()
    batches = training.ImageBatches(images, np.zeros(len(images), dtype=np.int64), np.arange(len(images)),
                                    np.asarray(state["mean"]), np.asarray(state["std"]))
    out = []
    with torch.no_grad():
        for start in range(0, len(images), 512):
            x, _, _ = batches[np.arange(start, min(start + 512, len(images)))]
            out.append(model.features(x).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a repository or study copy where the pipeline has run")
    parser.add_argument("--head", choices=["logistic", "naive_bayes"], help="the head to fit (default: the run's)")
    parser.add_argument("--out", type=Path, help="also write the table as markdown here")
    args = parser.parse_args()
    run = args.run
    # Read as plain YAML: study copies made before a params schema change still qualify.
    p = yaml.safe_load((run / "params.yaml").read_text())
    if p["aux"].get("target", "cut") != "cut":  # its aux did not learn data/cut.json's sides, which this bench scores
        parser.error(f"{run}: aux.target {p['aux']['target']}: only an aux of the max-cut (aux.target cut) is scored here")
    ds = prepared.load(run / paths.PREPARED)
    y = ds.samples["label"].to_numpy()
    tree = ClassTree.from_json(json.loads((run / paths.CUT).read_text()), str(run / paths.CUT))
    sides = tree.class_sides(0)
    side = sides[y]
    base = np.load(run / paths.BASE_PROBS)
    auxes = np.load(run / paths.AUX_PROBS).reshape(len(y), -1)  # one column per cut of the tree
    aux = auxes[:, 0]
    train, val, test = (ds.indices(s) for s in prepared.SPLITS)
    race = ds.samples["group_race"].to_numpy()[test] if "group_race" in ds.samples else None
    head = dict(kind=args.head or p["head"]["type"], C=p["head"]["C"], max_iter=p["head"]["max_iter"], seed=p["seed"])
    control = head_accuracy(base, None, y, val, test, **head)

    def worst(ok: np.ndarray) -> str:
        if race is None:
            return ""
        acc = {r: ok[race == r].mean() for r in np.unique(race)}
        r = min(acc, key=acc.get)
        return f"{acc[r] * 100:.1f} ({r})"

    base_side = base[:, sides == 1].sum(1) > 0.5
    aux_name = (f"aux CNN (width {p['aux']['width']}, objective {p['aux'].get('objective', 'plain')}, "
                f"view {p['aux'].get('view', 'full')}, pipeline; all its auxes as node features)")
    rows = [("base argmax's side", (base_side[test] == side[test]).mean(), None),
            (aux_name, ((aux[test] > 0.5) == side[test]).mean(), auxes if auxes.shape[1] > 1 else aux)]
    rng = np.random.default_rng(p["seed"])
    for q in (0.65, 0.7, 0.8, 0.9):
        simulated = np.where(rng.random(len(side)) < q, side, 1 - side).astype(float)
        rows.append((f"simulated aux, right {q:.0%} of the time independently of the base", q, simulated))
    features = pooled_features(run, np.asarray(ds.images))
    for name, model in (("logistic", LogisticRegression(max_iter=3000)),
                        ("MLP (64 hidden)", MLPClassifier((64,), alpha=1e-3, early_stopping=True, random_state=p["seed"],
                                                          max_iter=200))):
        prob = model.fit(features[train], side[train]).predict_proba(features)[:, 1]
        rows.append((f"aux = {name} on frozen base features", ((prob[test] > 0.5) == side[test]).mean(), prob))

    agreement = ["", "How each aux relates to the base on its own cut (test images under the cut):", "",
                 "| cut | classes | aux side accuracy | base side accuracy | probability corr. | error corr. (within side) |",
                 "| --- | --- | --- | --- | --- | --- |"]
    for k, node in enumerate(tree.nodes):
        under = tree.class_sides(k)[y[test]] >= 0
        rows_k = test[under]
        a = objectives.side_agreement(auxes[rows_k, k], objectives.base_side_probability(base, tree.class_sides(k))[rows_k],
                                      tree.class_sides(k)[y[rows_k]])
        agreement.append(f"| {k} | {len(node.classes)} | {a['aux_side_accuracy']:.3f} | {a['base_side_accuracy']:.3f} | "
                         f"{a['probability_correlation']:+.2f} | {a['error_correlation']:+.2f} |")
    lines = [f"Run: `{run}` ({len(ds.classes)} classes, head {head['kind']}, seed {p['seed']}); test rows {len(test)}; "
             f"side-1 rate on test {side[test].mean():.3f}; control head {control.mean() * 100:.2f}%, worst race {worst(control)}.",
             "", "| aux signal | side accuracy (test) | stacked head | aux gain, points [95% paired bootstrap] | worst race |",
             "| --- | --- | --- | --- | --- |"]
    for name, side_acc, extra in rows:
        if extra is None:
            lines.append(f"| {name} | {side_acc:.3f} | | | |")
            continue
        stacked = head_accuracy(base, extra, y, val, test, **head)
        low, high = paired_interval(stacked, control)
        lines.append(f"| {name} | {side_acc:.3f} | {stacked.mean() * 100:.2f}% | {(stacked.mean() - control.mean()) * 100:+.2f} "
                     f"[{low:+.2f}, {high:+.2f}] | {worst(stacked)} |")
    text = "\n".join(lines + agreement) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
