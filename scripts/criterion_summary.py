#!/usr/bin/env python3
"""Prints, for every criterion benchmark under target/criterion (or the folder given), the
median time per iteration over its samples with the sample's min and max, and criterion's
95% confidence interval of the median: the figures BENCHMARKS.md quotes.

Usage: scripts/criterion_summary.py [CRITERION_DIR]
"""
import json
import pathlib
import sys


def human(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def main() -> None:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    rows = []
    for bench in sorted(root.rglob("new/benchmark.json")):
        folder = bench.parent
        meta = json.loads(bench.read_text())
        median = json.loads((folder / "estimates.json").read_text())["median"]
        sample = json.loads((folder / "sample.json").read_text())
        per_iter = [t / n for t, n in zip(sample["times"], sample["iters"])]
        ci = median["confidence_interval"]
        rows.append((
            meta["full_id"],
            human(median["point_estimate"]),
            human(min(per_iter)),
            human(max(per_iter)),
            human(ci["lower_bound"]),
            human(ci["upper_bound"]),
            len(per_iter),
        ))
    width = max((len(r[0]) for r in rows), default=10)
    print(f"{'benchmark':<{width}}  median  [min, max] over samples  (95% CI of the median; samples)")
    for name, med, lo, hi, cil, cih, n in rows:
        print(f"{name:<{width}}  {med}  [{lo}, {hi}]  ({cil} – {cih}; {n})")


if __name__ == "__main__":
    main()
