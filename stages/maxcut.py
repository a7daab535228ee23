"""maxcut: split the classes in two with Goemans-Williamson on the confusion graph."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut import confusion, paths  # noqa: E402
from auxcut.io import write_json  # noqa: E402
from auxcut.maxcut import goemans_williamson, plot_cut  # noqa: E402
from auxcut.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p = stage.params
    stage.log_params(seed=p.seed, maxcut=p.maxcut)
    table = pd.read_csv(paths.CONFUSION, index_col="true")
    names = [str(c) for c in table.columns]
    weights = confusion.confusion_weights(table.to_numpy())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = goemans_williamson(weights, hyperplanes=p.maxcut.hyperplanes, seed=p.seed, exact_max_n=p.maxcut.exact_max_n)
    for warning in caught:
        print(f"auxcut maxcut: warning: {warning.message}", file=sys.stderr)
    sides = np.asarray(result.sides)
    write_json(paths.CUT, {"classes": names, "sides": result.sides})
    stage.save_plot(paths.PLOTS / "maxcut" / "cut.png", plot_cut(
        weights, sides, names, f"max-cut of the val confusion graph: {result.cut:g} of bound {result.sdp_bound:.4g}"))
    stage.write_metrics({
        "n": len(names),
        "method": result.method,
        "hyperplanes": p.maxcut.hyperplanes,
        "cut": result.cut,
        "sdp_bound": result.sdp_bound,
        "cut_over_bound": result.ratio,
        "exact": result.exact,
        "exact_reached": result.exact_reached,
        "solve_seconds": result.seconds,
        "total_weight": float(np.triu(weights, 1).sum()),
        "warnings": [str(w.message) for w in caught],
        "side_0": [n for n, s in zip(names, sides) if s == 0],
        "side_1": [n for n, s in zip(names, sides) if s == 1],
    })


if __name__ == "__main__":
    run_stage("maxcut", main)
