"""The time-to-accuracy table (``table.csv``) and the seed 000 table, as numbers.

Definitions (also in ``docs/bench.md``):

* **Target.**  Per workload, :func:`loop.bench.scoring.targets.dataset_target`:
  a given one, else the workload's fixed target, else 99% of the median (over
  studies) of the best validation accuracy the baseline (``Shuffle()``)
  reaches; for a lower-is-better metric (``val_mae``, ``val_loss``) the median
  best times 1.01.
* **Time-, epochs-, steps- and samples-to-target** of a trial:
  :func:`loop.bench.scoring.targets.time_to` (``inf`` when never met or
  failed).  Aggregates over studies are medians
  (:func:`loop.bench.scoring.speedups.aggregate`), so an aggregate is ``inf``
  ("not reached") when half or more of the studies missed.
* **Speedup** (:func:`loop.bench.scoring.speedups.paired_speedup`): the median
  over studies of the paired ratio ``baseline time / selector time`` for the
  same study (``ratios``: each study's, in study order), with the
  order-statistic interval of the median and the sign-test verdict, whose
  false-win rate when nothing differs is ``false_win_rate`` (exact, from the
  ``paired_studies``; :mod:`loop.bench.scoring.speedups`); likewise for
  forwarded and backpropagated samples.  A selector miss scores 0, a hit where
  the baseline missed ``inf``.
* **Best** train and test metric and loss: per trial the best value over
  evaluations, then the median over studies; the test columns read
  ``test_*`` when the trial validated on a split of the training set, else
  ``val_*`` (there the test set).
* **Test at target / at end**: the ``test_*`` metric at the first evaluation
  that meets the (validation) target and at the last evaluation, medians over
  the studies that have one; NaN without ``test_*`` columns.
* **Selection share**: selection seconds / training-plus-selection seconds of
  the whole trial, median over studies.

The pairing key is ``study`` (in untuned results the seed); the table keeps
its column names (``dataset`` is the workload, ``seeds`` the studies).
"""

import math

import pandas as pd

from loop.bench.records import NOT_APPLICABLE, OK
from loop.bench.scoring.grouping import by_workload, selector_order
from loop.bench.scoring.speedups import aggregate, paired_speedup, ratios_text
from loop.bench.scoring.targets import BASELINE, best, dataset_target, test_at, test_metric, time_to

#: The rows of the seed 000 experiment.
SEED000_SELECTORS = ("Freeze()", "Shuffle()", "Homogeneous()", "Heterogeneous()")

#: What :func:`summarize` reads at the target, in one lookup per trial.
_UNITS = ("seconds", "epochs", "steps", "samples_forwarded", "samples_backpropagated")


def target_text(target):
    """``{metric: (threshold, mode)}`` as the table's ``target`` column writes it: ``val_accuracy >= 0.9``."""
    return ", ".join(f"{m} {'>=' if mode == 'max' else '<='} {t:.4g}" for m, (t, mode) in target.items())


def _flops(record):
    return (record.get("costs") or {}).get("flops_per_sample")


def summarize(records, *, targets=None, baseline=BASELINE, n_boot=10_000):
    """The time-to-accuracy table: one row per workload x selector.

    Args:
        records: trial records, one per (workload, selector, study): for tuned results the studies' winners
            (:func:`loop.bench.scoring.studies.study_winners`); not-applicable records are left out.
        targets: from :func:`loop.bench.scoring.targets.parse_targets`; None uses each workload's own.
        baseline: the label of the selector speedups are measured against.
        n_boot: unused (the intervals were bootstraps; they are order statistics now); kept for callers.

    Returns:
        A ``pandas.DataFrame`` (columns in ``docs/bench.md``): after ``verdict``, ``paired_studies`` (studies
        paired with the baseline), ``false_win_rate`` (the verdict's, NaN without one) and ``ratios`` (the
        per-study ratios as text, study order); after ``backprop_verdict``, ``backprop_false_win_rate``.
    """
    from loop import costs  # imports TensorFlow, which the command line's --help does without

    rows = []
    for workload, recs in by_workload(records).items():
        target, how = dataset_target(recs, targets, baseline)
        metric = recs[0]["metrics"][0] if recs[0]["metrics"] else "loss"
        at = {}  # {selector: {study: (seconds, epochs, steps, forwarded, backpropagated)}}
        for r in recs:
            at.setdefault(r["selector"], {})[r["study"]] = time_to(r, target, _UNITS)

        def column(label, k, known=False):
            values = {study: v[k] for study, v in at.get(label, {}).items()}
            return {s: v for s, v in values.items() if not math.isnan(v)} if known else values

        for label in selector_order(recs, baseline):
            runs = sorted((r for r in recs if r["selector"] == label), key=lambda r: r["study"])
            mine = [at[label][r["study"]] for r in runs]
            secs = [v[0] for v in mine]
            wall = paired_speedup(column(baseline, 0), column(label, 0), n_boot)
            cost = {}
            for k, name in ((3, "forward"), (4, "backprop")):
                saving = paired_speedup(column(baseline, k, known=True), column(label, k, known=True), n_boot)
                cost[f"{name}_to_target"] = aggregate(v[k] for v in mine)
                cost[f"{name}_speedup"] = saving.speedup
                cost[f"{name}_speedup_ci_low"], cost[f"{name}_speedup_ci_high"] = saving.low, saving.high
                if name == "backprop":
                    cost["backprop_verdict"] = saving.verdict
                    cost["backprop_false_win_rate"] = saving.false_win_rate
            flops = [_flops(r) for r in runs if _flops(r)]
            gflops = [costs.training_flops(flops[0], v[3], v[4]) / 1e9 for v in mine] if flops else []
            share = [r["frame"]["selection_time_s"].iloc[-1] / r["frame"]["train_time_s"].iloc[-1]
                     for r in runs if not r["frame"].empty and r["frame"]["train_time_s"].iloc[-1] > 0]
            last = [r["frame"].iloc[-1] for r in runs if not r["frame"].empty]
            test_at_target, test_at_end = zip(*[test_at(r, metric, target) for r in runs]) if runs else ((), ())
            rows.append({
                "dataset": workload, "selector": label, "seeds": len(runs),
                "failed": sum(r["status"] != OK for r in runs),
                "reached": sum(math.isfinite(s) for s in secs) / len(runs) if runs else math.nan,
                "target": target_text(target) or how, "target_source": how,
                "time_to_target_s": aggregate(secs),
                "epochs_to_target": aggregate(v[1] for v in mine),
                "steps_to_target": aggregate(v[2] for v in mine),
                "speedup": wall.speedup, "speedup_ci_low": wall.low, "speedup_ci_high": wall.high,
                "verdict": wall.verdict, "paired_studies": len(wall.ratios),
                "false_win_rate": wall.false_win_rate, "ratios": ratios_text(wall.ratios),
                **cost,
                "flops_per_sample": float(flops[0]) if flops else math.nan,
                "train_gflops_to_target": aggregate(gflops),
                "metric": metric,
                "best_train": aggregate(best(r["frame"], metric) for r in runs),
                "best_test": aggregate(best(r["frame"], test_metric(r, metric)) for r in runs),
                "best_train_loss": aggregate(best(r["frame"], "loss") for r in runs),
                "best_test_loss": aggregate(best(r["frame"], test_metric(r, "loss")) for r in runs),
                "test_at_target": aggregate(test_at_target),
                "test_at_end": aggregate(test_at_end),
                "selection_share": aggregate(share),
                "train_time_s": aggregate(row["train_time_s"] for row in last),
                "setup_time_s": aggregate(float(row.get("setup_time_s", 0.0)) for row in last),
                "eval_time_s": aggregate(row["eval_time_s"] for row in last),
                "errors": "; ".join(sorted({r["error"] for r in runs if r["error"]})),
            })
    return pd.DataFrame(rows)


def seed000(records, selectors=SEED000_SELECTORS, study=0):
    """The seed 000 table: best train/test metric and loss of one study (seed), for the order-only selectors."""
    rows = []
    for r in records:
        if r["study"] != study or r["selector"] not in selectors or r["status"] == NOT_APPLICABLE:
            continue
        metric = r["metrics"][0] if r["metrics"] else "loss"
        rows.append({"dataset": r["workload"], "selector": r["selector"], "status": r["status"], "metric": metric,
                     "best_train": best(r["frame"], metric), "best_test": best(r["frame"], test_metric(r, metric)),
                     "best_train_loss": best(r["frame"], "loss"),
                     "best_test_loss": best(r["frame"], test_metric(r, "loss"))})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    rank = {s: i for i, s in enumerate(selectors)}
    workloads = {w: i for i, w in enumerate(dict.fromkeys(r["workload"] for r in records))}
    order = sorted(range(len(frame)), key=lambda i: (workloads[frame["dataset"][i]], rank[frame["selector"][i]]))
    return frame.iloc[order].reset_index(drop=True)
