"""Per-dataset markdown tables of the ``full`` suite for docs/results.md, from the stored table.

    python -m loop.bench report --out results/full --no-plots --bootstrap 2000   # writes results/full/table.csv
    python benchmarks/full_tables.py results/full > /tmp/full_tables.md

Prints, for each dataset in the suite's order, the issue's columns: reached/seeds; time, epochs, optimizer steps
and forward and backpropagated samples to the target; the paired wall-clock and backpropagated-samples speedups
with their 95% bootstrap intervals and verdicts; and the best test metric.  The complete table (every column) is
``results/full/table.md``.
"""

import argparse
import os
import sys

import pandas as pd

COLUMNS = ["selector", "reached", "time to target (s)", "epochs to target", "steps to target", "speedup [95% CI]",
           "verdict", "fwd samples to target", "bwd samples to target", "bwd saving [95% CI]", "bwd verdict"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="a results directory with table.csv (python -m loop.bench report --out ...)")
    args = parser.parse_args(argv)
    from loop.bench.reporting import formatting
    from loop.bench.suites import FULL

    path = os.path.join(args.out, "table.csv")
    if not os.path.exists(path):
        parser.error(f"{path} does not exist; run python -m loop.bench report --out {args.out} first")
    table = pd.read_csv(path)
    shown = formatting.display(table)
    order = [entry.name for entry in FULL.entries]
    for dataset in sorted(set(shown["dataset"]), key=lambda d: order.index(d) if d in order else len(order)):
        rows = shown[shown["dataset"] == dataset]
        raw = table[table["dataset"] == dataset]
        best = [c for c in rows.columns if c.startswith("best test") and "loss" not in c]
        metric = raw["metric"].iloc[0]
        frame = rows[COLUMNS + best].rename(columns={best[0]: f"best test {metric}"} if best else {})
        low, high = int(raw["seeds"].min()), int(raw["seeds"].max())
        seeds = f"{high} seeds" if low == high else f"{low}–{high} seeds per selector"
        print(f"### {dataset}: {raw['target'].iloc[0]}, {seeds}\n")
        print(formatting.to_markdown(frame.reset_index(drop=True)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
