"""maxcut: split the classes in two with Goemans-Williamson on the confusion graph (certified bound)."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from auxcut import confusion, paths  # noqa: E402
from auxcut.io import write_json  # noqa: E402
from auxcut.maxcut import solve  # noqa: E402
from auxcut.maxcut.plot import plot_cut  # noqa: E402
from auxcut.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p = stage.params
    stage.log_params(seed=p.seed, maxcut=p.maxcut)
    table = pd.read_csv(paths.CONFUSION, index_col="true")
    names = [str(c) for c in table.columns]
    weights = confusion.confusion_weights(table.to_numpy())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = solve(weights, p.maxcut.method, seed=p.seed, hyperplanes=p.maxcut.hyperplanes,
                       exact_max_n=p.maxcut.exact_max_n)
    for warning in caught:
        print(f"auxcut maxcut: warning: {warning.message}", file=sys.stderr)
    sides = np.asarray(result.sides)
    write_json(paths.CUT, {"classes": names, "sides": sides.tolist()})
    stage.save_plot(paths.PLOTS / "maxcut" / "cut.png", plot_cut(
        weights, sides, names, f"max-cut of the val confusion graph: cut {result.cut:g}"
        + ("" if result.sdp_bound is None else f", certified SDP bound {result.sdp_bound:.6g}")))
    summary = result.summary()
    stage.write_metrics({
        "n": len(names),
        "hyperplanes": p.maxcut.hyperplanes,
        **{k: v for k, v in summary.items() if k != "seconds"},
        # the GW cut against the certified SDP bound: the method's own quality, also when exact ran
        "gw_cut_over_sdp_bound": None if not result.sdp_bound else result.rounded_cut / result.sdp_bound,
        "solve_seconds": summary["seconds"],
        "total_weight": float(np.triu(weights, 1).sum()),
        "warnings": [str(w.message) for w in caught],
        "side_0": [n for n, s in zip(names, sides) if s == 0],
        "side_1": [n for n, s in zip(names, sides) if s == 1],
    })


if __name__ == "__main__":
    run_stage("maxcut", main)
