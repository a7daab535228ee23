"""`python -m auxcut.method.maxcut GRAPH`: the max cut of any weighted graph file, as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from auxcut import AuxcutError
from auxcut.core.io import atomic_path
from auxcut.method.maxcut import METHODS, POLISHES, check_weights, edge_count, read_graph, solve
from auxcut.method.maxcut.exact import MAX_EXACT_N


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m auxcut.method.maxcut",
        description="Max-cut of a weighted graph with a certified upper bound. GRAPH: a dense .npy/.csv weight "
                    "matrix, or an edge list (first line 'n m', then 'i j [w]' per edge, 1-based, as in G-set).")
    parser.add_argument("graph", type=Path)
    parser.add_argument("--method", choices=METHODS, default="auto",
                        help="auto (default): lowrank, plus exact when n <= --exact-max-n")
    parser.add_argument("--hyperplanes", type=int, default=1000, help="random hyperplanes for rounding (default 1000)")
    parser.add_argument("--polish", choices=POLISHES, default="tabu",
                        help="tabu (default): tabu search over single flips after the rounding; none: the GW cut as is")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exact-max-n", type=int, default=20, help=f"auto: enumerate up to this n (at most {MAX_EXACT_N})")
    parser.add_argument("--out", type=Path, help="write the partition here, one 0/1 per line in node order")
    args = parser.parse_args(argv)
    try:
        if args.hyperplanes < 1:
            raise AuxcutError("--hyperplanes: expected at least 1")
        weights = check_weights(read_graph(args.graph), where=str(args.graph))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = solve(weights, args.method, seed=args.seed, hyperplanes=args.hyperplanes,
                           exact_max_n=args.exact_max_n, polish=args.polish)
    except AuxcutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    report = {"graph": str(args.graph), "n": weights.shape[0], "edges": edge_count(weights), **result.summary()}
    print(json.dumps(report, indent=2))
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text("".join(f"{s}\n" for s in result.sides))
    return 0
