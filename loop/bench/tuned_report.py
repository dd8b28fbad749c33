"""The results of a tuned run: each study's winner, the winning hyper-parameters, the tuning cost, the report.

:mod:`loop.bench.tuning` runs and stores the trials; this module only reads
them (:func:`loop.bench.tuning.load_trials`):

* :func:`study_bests`: per (workload, selector, study), the winning trial's
  record shaped like a run record (``dataset`` = the workload, ``selector`` =
  the untuned selector's label, ``seed`` = the study, ``status``, ``frame``,
  ...), so :func:`loop.bench.tables.summarize` computes the tuned speedups over
  tuned Shuffle, their bootstrap intervals and verdicts unchanged;
* :func:`winners`: the winning hyper-parameters;
* :func:`costs`: the tuning cost per selector and what exact pruning saved;
* :func:`report`: the tables and the analysis across workloads, as files and
  on the terminal (``python -m loop.bench report --out DIR``).
"""

import math
import os
import sys

import numpy as np

from loop import history as history_lib
from loop.bench import runner
from loop.bench.tables import NOT_APPLICABLE
from loop.bench.tuning import load_trials, time_to_target


def _studies(records):
    grouped = {}
    for r in records:
        grouped.setdefault((r["workload"], r["selector"], r["study"]), []).append(r)
    return grouped


def study_bests(out_or_trials):
    """Per (workload, selector, study), the winning trial's record, shaped like a run record.

    The winner is the trial with the shortest time to its workload's target;
    when no trial met it, the trial with the best value of the target's
    metric (the study then scores as a miss in the tables, since no row of its
    history meets the target).  The record keeps every field of the trial's
    and sets ``dataset`` to the workload, ``selector`` to the untuned
    selector's label and ``seed`` to the study, and adds ``trials`` (the
    study's trial count), ``tuning_s`` (their seconds) and ``winner`` (the
    trial number), so :func:`loop.bench.tables.summarize` reads them as runs.

    Args:
        out_or_trials: a results directory, or records from :func:`load_trials`.

    Returns:
        A list of records, sorted by workload, selector and study.
    """
    trials = load_trials(out_or_trials) if isinstance(out_or_trials, (str, os.PathLike)) else out_or_trials
    bests = []
    for (workload, selector, study), group in sorted(_studies(trials).items()):
        applicable = [r for r in group if r["status"] != NOT_APPLICABLE]
        if not applicable:
            winner = dict(group[0])
        else:
            target = applicable[0]["budget"].get("target") or {}
            times = [time_to_target(r, target) for r in applicable]
            if any(math.isfinite(t) for t in times):
                winner = dict(applicable[int(np.argmin(times))])
            else:
                winner = dict(_closest(applicable, target))
        winner.update({"dataset": workload, "selector": selector, "seed": study, "winner": winner["trial"],
                       "trials": len(group), "tuning_s": float(sum(r.get("wall_s") or 0.0 for r in group))})
        bests.append(winner)
    return bests


def _closest(records, target):
    """The trial whose best value of the target's (first) metric is best; the first trial without one."""
    from loop.bench import tables

    metric = next(iter(history_lib.parse_target(target)), None)
    if metric is None:
        return records[0]
    values = [tables.best(r["frame"], metric) for r in records]
    sign = -1.0 if history_lib.infer_mode(metric) == "max" else 1.0
    keyed = [sign * v if math.isfinite(v) else math.inf for v in values]
    return records[int(np.argmin(keyed))]


def winners(out_or_trials):
    """The winning hyper-parameters of every study: a ``pandas.DataFrame``, one row per (workload, selector, study).

    Columns: ``workload``, ``selector``, ``study``, ``trial`` (the winner),
    ``time_to_target_s`` (``inf`` for a miss), then the hyper-parameters.
    """
    import pandas as pd

    rows = []
    for r in study_bests(out_or_trials):
        seconds = time_to_target(r, r["budget"].get("target") or {}) if r["status"] != NOT_APPLICABLE else math.nan
        rows.append({"workload": r["dataset"], "selector": r["selector"], "study": r["seed"], "trial": r["winner"],
                     "time_to_target_s": seconds, **r.get("hyperparameters", {})})
    return pd.DataFrame(rows)


def costs(out_or_trials):
    """The tuning cost per (workload, selector), and what exact pruning saved.

    Columns: ``workload``, ``selector``, ``trials``, ``ok``, ``pruned``,
    ``failed``, ``tuning_s`` (wall seconds of every trial: training,
    evaluation and set-up), ``pruned_s`` (training seconds the pruned trials
    ran), ``pruned_full_s`` (the training seconds they would have run up to
    their epoch cap: the seconds they ran plus their remaining epochs times
    the median training seconds per epoch of the workload's and selector's
    trials that were not pruned; NaN without one) and ``saved_s =
    pruned_full_s - pruned_s``.  It is an upper bound of the saving: a trial
    that would have met the target later stops there.

    Returns:
        A ``pandas.DataFrame``.
    """
    import pandas as pd

    trials = load_trials(out_or_trials) if isinstance(out_or_trials, (str, os.PathLike)) else out_or_trials
    grouped = {}
    for r in trials:
        if r["status"] != NOT_APPLICABLE:
            grouped.setdefault((r["workload"], r["selector"]), []).append(r)
    rows = []
    for (workload, selector), group in sorted(grouped.items()):
        per_epoch = [r["frame"]["train_time_s"].iloc[-1] / r["frame"]["epoch"].iloc[-1] for r in group
                     if r["status"] == "ok" and not r["frame"].empty and r["frame"]["epoch"].iloc[-1] > 0]
        rate = float(np.median(per_epoch)) if per_epoch else math.nan
        pruned = [r for r in group if r["status"] == runner.PRUNED]
        ran = sum(float(r["frame"]["train_time_s"].iloc[-1]) for r in pruned if not r["frame"].empty)
        full = ran + sum(rate * max(0.0, r.get("loop_epochs", r["budget"]["epochs"]) - r["frame"]["epoch"].iloc[-1])
                         for r in pruned if not r["frame"].empty)
        rows.append({"workload": workload, "selector": selector, "trials": len(group),
                     "ok": sum(r["status"] == "ok" for r in group), "pruned": len(pruned),
                     "failed": sum(r["status"] == "failed" for r in group),
                     "tuning_s": float(sum(r.get("wall_s") or 0.0 for r in group)),
                     "pruned_s": ran, "pruned_full_s": full if pruned else 0.0,
                     "saved_s": (full - ran) if pruned else 0.0})
    return pd.DataFrame(rows)


def report(out, *, n_boot=10_000, stream=None, plots=True, width=120):
    """Prints and writes the tuned results of ``out``, per workload, and their analysis across workloads.

    Files: ``tuned_table.csv`` and ``tuned.md`` (for each workload the
    studies' best times with speedups over tuned Shuffle,
    :func:`loop.bench.tables.summarize` on :func:`study_bests`, every
    column; the tuning cost and pruning savings, :func:`costs`; the winning
    hyper-parameters, :func:`winners`), and ``analysis/``: the speedup
    across thresholds and the performance profiles over the workloads,
    computed on the studies' winning trials
    (:func:`loop.bench.analysis.write_analysis`).  The terminal gets the
    compact table (:func:`loop.bench.tables.compact`) and the costs.

    Args:
        out: a results directory of tuning trials.
        n_boot: bootstrap resamples per interval.
        stream: where to print (default: stdout).
        plots: also draw the analysis figures.
        width: the widest line of the compact table.

    Returns:
        The summary ``pandas.DataFrame`` (empty when ``out`` holds no trial).
    """
    import pandas as pd

    from loop.bench import analysis, tables

    stream = stream or sys.stdout
    trials = load_trials(out)
    bests = [r for r in study_bests(trials) if r["status"] != NOT_APPLICABLE]
    table = tables.summarize(bests, n_boot=n_boot) if bests else pd.DataFrame()
    cost, won = costs(trials), winners(trials)
    text, printed = [], []
    for workload in sorted({r["dataset"] for r in bests}):
        rows = table[table["dataset"] == workload]
        heading = f"## {workload}: studies' best times (tuned, {int(rows['seeds'].max())} studies)"
        cost_md = tables.to_markdown(cost[cost["workload"] == workload].round(1))
        text += [heading, "", tables.to_markdown(tables.display(rows)), "", "Tuning cost and pruning:", "",
                 cost_md, "", "Winning hyper-parameters:", "", tables.to_markdown(won[won["workload"] == workload]),
                 ""]
        printed += [heading, "", tables.compact(rows, width=width), "", "Tuning cost and pruning:", "",
                    tables.to_text(cost[cost["workload"] == workload].round(1)), ""]
    if not text:
        text = printed = [f"no tuning trials in {out!r}", ""]
    os.makedirs(out, exist_ok=True)
    table.to_csv(os.path.join(out, "tuned_table.csv"), index=False)
    with open(os.path.join(out, "tuned.md"), "w") as f:
        f.write("\n".join(text))
    print("\n".join(printed), file=stream)
    print(f"tables (every column, and the winning hyper-parameters): {os.path.join(out, 'tuned_table.csv')}, "
          f"{os.path.join(out, 'tuned.md')}", file=stream)
    if bests:
        where = os.path.join(out, "analysis")
        analysis.write_analysis(bests, where, n_boot=n_boot, plots=plots, unit="studies")
        print(f"speedup across thresholds and performance profiles: {os.path.join(where, 'analysis.md')}",
              file=stream)
    return table


__all__ = ["costs", "report", "study_bests", "winners"]
