"""A compute estimate of the ``tuned`` suite from stored runs (docs/bench.md, "The tuned suite").

    python benchmarks/tuned_estimate.py [--full results/full] [--pilot results/tuned-v2]

Model, per workload and selector, from the full suite's stored runs of that pair on the workload's dataset (at
the full suite's learning rate and test-set target, a stand-in for the tuned target): ``hit`` = median wall
seconds of a run, ``epoch`` = median wall seconds per epoch, ``cap`` = ``epoch`` times the run's loop epochs,
scaled to the tuned workload's epoch cap.  A study of K trials costs at least about
``K * hit + (K - 1) * epoch`` (the first trial to hit sets the best; exact pruning stops every later trial within
an evaluation of it) and at most ``K * cap`` (no trial hits, so nothing is pruned).  A pair without full-suite
runs is costed as its stand-in (:data:`STAND_IN`): RS2 as Shuffle, RandomDrop (Fashion-MNIST) as SelectiveBackprop,
the same forward-all, backpropagate-a-quarter machinery.  The range test adds one pass per workload.  With
``--pilot`` it prints the measured cost of a tuned results directory next to the model's range for the same
workloads.
"""

import argparse
import glob
import json
import os
import statistics

from loop.bench.suites import SUITES

#: Who stands in for a selector without runs of its own in the full suite.
STAND_IN = {"rs2": "shuffle", "random_drop": "selective_backprop"}


def _full_times(full):
    from loop.bench import store

    times = {}
    for run in store.load(full):
        if run["status"] != "ok" or run["frame"].empty:
            continue
        epochs = run["frame"]["epoch"].iloc[-1]
        wall = run["costs"]["wall_s"]
        times.setdefault((run["dataset"], run["selector"]), []).append(
            (wall, wall / epochs, wall / epochs * run["loop_epochs"]))
    return {key: tuple(statistics.median(v[i] for v in values) for i in range(3)) for key, values in times.items()}


def _costed(dataset, spec, times, names):
    """The label whose full-suite runs cost ``spec`` on ``dataset``: its own, else its stand-in's, else None."""
    from loop.bench.labels import selector_key

    for name in (spec, STAND_IN.get(spec)):
        if name in names and (dataset, selector_key(name)[0]) in times:
            return selector_key(name)[0]
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", default="results/full")
    parser.add_argument("--pilot", help="a tuned results directory whose measured cost to print")
    args = parser.parse_args(argv)
    from loop.bench.labels import selector_key
    from loop.selectors import registered

    suite = SUITES["tuned-v2"]  # the cost model of the v2 protocol (docs/bench.md)
    times = _full_times(args.full)
    full_caps = {e.workload.dataset: e.workload.epochs for e in SUITES["full"].entries}
    k, studies = suite.tune, suite.studies
    total_low = total_high = 0.0
    print("| workload | selector | hit s | epoch s | cap s | study low s | study high s |")
    print("|---|---|---|---|---|---|---|")
    for entry in suite.entries:
        workload = entry.workload
        for spec in entry.selectors or suite.selectors:
            label = _costed(workload.dataset, spec, times, registered())
            if label is None:
                print(f"| {entry.name} | {spec} | no full-suite runs to cost it from |||||")
                continue
            hit, epoch, cap = times[(workload.dataset, label)]
            cap *= workload.epochs / full_caps[workload.dataset]  # the tuned workload's own cap
            high = k * cap
            low = min(k * min(hit, cap) + (k - 1) * epoch, high)  # pruning never costs more than no pruning
            total_low += studies * low
            total_high += studies * high
            own = spec in registered() and selector_key(spec)[0] == label
            shown = label if own else f"{spec} (as {label})"
            print(f"| {entry.name} | {shown} | {hit:.1f} | {epoch:.2f} | {cap:.1f} | {low:.0f} | {high:.0f} |")
    print(f"\ntuned suite ({k} trials x {studies} studies): {total_low / 3600:.1f} h to {total_high / 3600:.1f} h "
          "of trials at the full suite's per-run speed, plus one range test per workload")
    if args.pilot:
        from loop.bench import store
        from loop.bench.scoring import costs

        trials = store.load(args.pilot)
        cost = costs(trials)
        ranges = glob.glob(os.path.join(args.pilot, "lr_range", "*.json"))
        range_s = sum(json.load(open(p))["wall_s"] for p in ranges)
        print(f"\nmeasured in {args.pilot}: {len(trials)} trials, {cost['tuning_s'].sum():.0f} s of trials "
              f"({cost['pruned'].sum()} pruned, {cost['pruned_s'].sum():.0f} s run by them, an estimated "
              f"{cost['saved_s'].sum():.0f} s saved), range tests {range_s:.0f} s")
        print(cost.round(1).to_string(index=False))
        for workload in sorted(set(cost["workload"])):
            low = high = 0.0
            entry = next(e for e in suite.entries if e.name == workload)
            for spec in entry.selectors or suite.selectors:
                if spec not in registered():
                    continue
                label = _costed(entry.workload.dataset, spec, times, registered())
                if label is not None:
                    hit, epoch, cap = times[(entry.workload.dataset, label)]
                    cap *= entry.workload.epochs / full_caps[entry.workload.dataset]
                    low += studies * (k * hit + (k - 1) * epoch)
                    high += studies * k * cap
            print(f"{workload}: model {low:.0f} s to {high:.0f} s for the registered selectors; measured "
                  f"{cost[cost['workload'] == workload]['tuning_s'].sum():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
