"""Each study's training time per step, per workload and selector: the trace contention leaves in stored trials.

    python benchmarks/step_rates.py results/tuned [--workload mnist_noisy20] [--slower 1.15]

On the seconds clock a trial trained beside another busy process trains fewer steps in its budget and reaches the
target later.  Trials stored since ``loop.bench.contention`` record the other processes' CPU share; for older ones
the trace is the speed itself.  Per (workload, selector, study): the median over its trials of ``train_time_s /
step`` at the last evaluation (ms), then its ratio to the selector's fastest study on that workload, and, where
recorded, the worst ``other_cpu_share`` of the study's trials.  A study more than ``--slower`` times its selector's
fastest is marked ``slow``.  Meaningful as a contention check only for selectors whose cost per step does not
depend on their searched knobs (Shuffle, ShuffleAA, RS2, InfoBatch, KAKURENBO); for others (RandomDrop's and
SelectiveBackprop's rates, DivBS's candidate ratio) a study's knobs move its speed too.  Slow is not proof of
contention: on the 2-core test machine a noisy-MNIST study re-run with no other process measured still came back
1.28x its selector's fastest (docs/bench.md, "Whether a trial trained alone is recorded").
"""

import argparse

import numpy as np
import pandas as pd

from loop.bench import store
from loop.bench.records import FAILED, NOT_APPLICABLE


def rates(records):
    """``DataFrame`` with workload, selector, study, trials, ms_per_step, vs_fastest, other_cpu_share."""
    rows = {}
    for r in records:
        if r["status"] in (FAILED, NOT_APPLICABLE) or r["frame"].empty:
            continue
        last = r["frame"].iloc[-1]
        if not last["step"]:
            continue
        found = rows.setdefault((r["workload"], r["selector"], r["study"]), {"rates": [], "shares": []})
        found["rates"].append(1000.0 * float(last["train_time_s"]) / float(last["step"]))
        share = (r.get("costs") or {}).get("other_cpu_share")
        if share is not None:
            found["shares"].append(float(share))
    frame = pd.DataFrame([{"workload": w, "selector": s, "study": k, "trials": len(v["rates"]),
                           "ms_per_step": float(np.median(v["rates"])),
                           "other_cpu_share": max(v["shares"]) if v["shares"] else np.nan}
                          for (w, s, k), v in sorted(rows.items())])
    if frame.empty:
        return frame
    fastest = frame.groupby(["workload", "selector"])["ms_per_step"].transform("min")
    frame.insert(5, "vs_fastest", frame["ms_per_step"] / fastest)
    return frame


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="a results directory (e.g. results/tuned)")
    parser.add_argument("--workload", action="append", help="only this workload (repeatable)")
    parser.add_argument("--slower", type=float, default=1.15,
                        help="mark a study this many times slower than its selector's fastest (default 1.15)")
    args = parser.parse_args(argv)
    if not args.slower > 1:
        parser.error(f"--slower {args.slower!r}: give a ratio above 1, e.g. 1.15")
    records = store.load(args.out)
    if args.workload:
        records = [r for r in records if r["workload"] in args.workload]
    table = rates(records)
    if table.empty:
        print(f"no trials with a history in {args.out}")
        return table
    table["slow"] = np.where(table["vs_fastest"] > args.slower, "slow", "")
    with pd.option_context("display.max_rows", None, "display.width", 160):
        print(table.round({"ms_per_step": 2, "vs_fastest": 3, "other_cpu_share": 3}).to_string(index=False))
    return table


if __name__ == "__main__":
    main()
