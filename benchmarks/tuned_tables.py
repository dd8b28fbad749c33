"""The tuned suite's table and per-workload verdicts for docs/results.md, from the stored report.

    python -m loop.bench report --out results/tuned --bootstrap 2000   # writes results/tuned/table.csv
    python benchmarks/tuned_tables.py results/tuned > /tmp/tuned_tables.md

Prints one Markdown table over the workloads, in the ``tuned`` suite's order: per selector the studies whose best
trial reached the validation target, the median time to it, the paired wall-clock speedup over tuned Shuffle and
the backpropagated-samples saving with their 95% bootstrap intervals and verdicts, and the test accuracy at the
evaluation that met the validation target.  Shuffle comes first, then the selectors by speedup.  After the table,
one sentence per workload says whether any method beats tuned Shuffle, in wall-clock time and in backpropagated
samples.  The complete table (every column, with the tuning costs and the winning hyper-parameters) is
``results/tuned/table.md``.
"""

import argparse
import math
import os
import sys

import pandas as pd

COLUMNS = ["selector", "reached", "time to target (s)", "speedup [95% CI]", "verdict", "bwd saving [95% CI]",
           "bwd verdict", "test at target"]


def _label(selector):
    return selector[:-2] if selector.endswith("()") else selector


def _interval(row, prefix):
    low, high = row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"]
    return "" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]"


def sentence(workload, raw, baseline):
    """One plain sentence: does any selector beat tuned Shuffle on ``workload``, by how much, in time and samples."""
    others = raw[raw["selector"] != baseline]
    studies = int(raw["seeds"].max())
    if studies < 2:
        return (f"- **{workload}**: {studies} study per selector so far, no verdict yet (an interval needs at "
                "least two paired studies).")
    wins = others[others["verdict"] == "win"]
    if wins.empty:
        best = others.sort_values("speedup", ascending=False).iloc[0] if not others.empty else None
        text = f"- **{workload}**: no method beats tuned Shuffle in wall-clock time"
        if best is not None:
            text += (f" (the fastest, {_label(best['selector'])}, is {best['speedup']:.2f}×"
                     f"{_interval(best, 'speedup')}, {best['verdict']})")
    else:
        listed = ", ".join(f"{_label(r['selector'])} {r['speedup']:.2f}×{_interval(r, 'speedup')}"
                           for _, r in wins.sort_values("speedup", ascending=False).iterrows())
        text = f"- **{workload}**: beats tuned Shuffle in wall-clock time: {listed}"
    saving = others[others["backprop_verdict"] == "win"]
    if saving.empty:
        text += "; none backpropagates significantly fewer samples"
    else:
        text += "; fewer backpropagated samples: " + ", ".join(
            f"{_label(r['selector'])} {r['backprop_speedup']:.2f}×{_interval(r, 'backprop_speedup')}"
            for _, r in saving.sort_values("backprop_speedup", ascending=False).iterrows())
    fewest = int(raw["seeds"].min())
    if fewest < 3:
        return text + (f" (provisional: {fewest} to {studies} studies per selector; an interval from two "
                       "studies spans their two ratios, and one study gives none).")
    return text + f" ({studies} studies)."


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="a tuned results directory with table.csv "
                                    "(python -m loop.bench report --out ...)")
    args = parser.parse_args(argv)
    from loop.bench.reporting import formatting
    from loop.bench.scoring import BASELINE
    from loop.bench.suites import TUNED

    path = os.path.join(args.out, "table.csv")
    if not os.path.exists(path):
        parser.error(f"{path} does not exist; run python -m loop.bench report --out {args.out} first")
    table = pd.read_csv(path)
    if table.empty:
        parser.error(f"{path} has no rows: {args.out} holds no tuned trial yet")
    order = [entry.name for entry in TUNED.entries]
    workloads = sorted(set(table["dataset"]), key=lambda w: order.index(w) if w in order else len(order))
    frames, sentences = [], []
    for workload in workloads:
        raw = table[table["dataset"] == workload]
        raw = pd.concat([raw[raw["selector"] == BASELINE],
                         raw[raw["selector"] != BASELINE].sort_values("speedup", ascending=False)])
        shown = formatting.display(raw)[COLUMNS].copy()
        shown["selector"] = [_label(s) for s in shown["selector"]]
        shown.insert(0, "workload (target)", "")
        shown.iloc[0, 0] = f"{workload} ({raw['target'].iloc[0].replace('val_accuracy >= ', 'val ')})"
        frames.append(shown)
        sentences.append(sentence(workload, raw, BASELINE))
    print(formatting.to_markdown(pd.concat(frames).reset_index(drop=True)))
    print()
    print("\n".join(sentences))
    return 0


if __name__ == "__main__":
    sys.exit(main())
