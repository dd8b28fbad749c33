"""How often each method was evaluated: the median gap between evaluations, in training seconds, per workload.

    python benchmarks/eval_gaps.py results/tuned

The one-clock protocol evaluates every method on one grid of training seconds per workload, so these medians should
agree across selectors (issue "One clock for every method": within 1.5x).  Per (workload, selector), over every
stored trial that is not failed or not applicable: the gaps between consecutive evaluations' ``train_time_s``
(the final, off-grid evaluation left out where the history marks it, ``eval_grid_k`` NaN), then their median.
Prints one table (pandas) and, per workload, the ratio of the largest median to the smallest.
"""

import argparse

import numpy as np
import pandas as pd

from loop.bench import store
from loop.bench.records import FAILED, NOT_APPLICABLE


def gaps(records):
    """``DataFrame`` with workload, selector, trials, evaluations, median_gap_s, period_s."""
    rows = {}
    for r in records:
        if r["status"] in (FAILED, NOT_APPLICABLE) or r["frame"].empty:
            continue
        frame = r["frame"]
        if "eval_grid_k" in frame:
            frame = frame[frame["eval_grid_k"].notna()]
        times = frame["train_time_s"].to_numpy(dtype=float)
        found = rows.setdefault((r["workload"], r["selector"]), {"gaps": [], "trials": 0, "evaluations": 0,
                                                                  "period": None})
        found["gaps"].extend(np.diff(times).tolist())
        found["trials"] += 1
        found["evaluations"] += len(times)
        if isinstance(r.get("clock"), dict):
            found["period"] = r["clock"].get("eval_period_s")
    return pd.DataFrame([{"workload": w, "selector": s, "trials": v["trials"], "evaluations": v["evaluations"],
                          "median_gap_s": float(np.median(v["gaps"])) if v["gaps"] else np.nan,
                          "period_s": v["period"]} for (w, s), v in sorted(rows.items())])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="a results directory")
    args = parser.parse_args(argv)
    table = gaps(store.load(args.out))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for workload, part in table.groupby("workload", sort=False):
        medians = part["median_gap_s"].dropna()
        if len(medians):
            print(f"{workload}: largest / smallest median gap = {medians.max() / medians.min():.3f}")


if __name__ == "__main__":
    main()
