"""Studies: each study's winning trial, the winning hyper-parameters, and what the tuning cost.

A study is a (workload, selector, study) group of trials; untuned results
have one trial per study (the study is the seed).  The tables score each
study by its winner (:func:`study_winners`), so tuned and untuned results go
through the same :func:`loop.bench.scoring.summary.summarize`.
"""

import math

import numpy as np
import pandas as pd

from loop import history as history_lib
from loop.bench.records import FAILED, NOT_APPLICABLE, OK, PRUNED
from loop.bench.scoring.targets import best, time_to


def studies(records):
    """``{(workload, selector, study): [trials]}`` in first-seen order."""
    grouped = {}
    for r in records:
        grouped.setdefault((r["workload"], r["selector"], r["study"]), []).append(r)
    return grouped


def trials_per_study(records):
    """The most trials any study of ``records`` has (0 without records): above 1 the results are tuned."""
    return max((len(group) for group in studies(records).values()), default=0)


def _wall(record):
    return float((record.get("costs") or {}).get("wall_s") or 0.0)


def _closest(records, target):
    """The trial whose best value of the target's (first) metric is best; the first trial without one."""
    metric = next(iter(history_lib.parse_target(target)), None)
    if metric is None:
        return records[0]
    values = [best(r["frame"], metric) for r in records]
    sign = -1.0 if history_lib.infer_mode(metric) == "max" else 1.0
    keyed = [sign * v if math.isfinite(v) else math.inf for v in values]
    return records[int(np.argmin(keyed))]


def study_winners(records):
    """Each study's winning trial: one record per (workload, selector, study), in first-seen order.

    The winner is the trial with the shortest time to the record's ``target``
    (:func:`loop.bench.scoring.targets.time_to`); when no trial met it, the
    trial with the best value of the target's metric (the study then scores
    as a miss, since no row of its history meets the target); a one-trial
    study's winner is its trial, and a study of not-applicable trials keeps
    its first.  The record is a copy of the winning trial's with ``trials``
    (the study's trial count), ``tuning_s`` (their wall seconds) and
    ``winner`` (the trial number) added.

    Returns:
        A list of records.
    """
    winners = []
    for group in studies(records).values():
        applicable = [r for r in group if r["status"] != NOT_APPLICABLE]
        if len(applicable) <= 1:
            winner = dict(applicable[0] if applicable else group[0])
        else:
            target = applicable[0].get("target") or {}
            times = [time_to(r, target) for r in applicable]
            if any(math.isfinite(t) for t in times):
                winner = dict(applicable[int(np.argmin(times))])
            else:
                winner = dict(_closest(applicable, target))
        winner.update({"winner": winner.get("trial", 0), "trials": len(group),
                       "tuning_s": sum(_wall(r) for r in group)})
        winners.append(winner)
    return winners


def winners(records):
    """The winning hyper-parameters of every study: a ``pandas.DataFrame``, one row per (workload, selector,
    study), sorted by them.

    Columns: ``workload``, ``selector``, ``study``, ``trial`` (the winner), ``time_to_target_s`` (to the
    record's fixed target; ``inf`` for a miss, NaN when not applicable), then the shared hyper-parameters set and
    the selector's own knobs.
    """
    rows = []
    for r in study_winners(records):
        seconds = time_to(r, r.get("target") or {}) if r["status"] != NOT_APPLICABLE else math.nan
        chosen = {**(r.get("hyperparameters") or {}), **(r.get("knobs") or {})}
        rows.append({"workload": r["workload"], "selector": r["selector"], "study": r["study"], "trial": r["winner"],
                     "time_to_target_s": seconds, **{k: v for k, v in chosen.items() if v is not None}})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(["workload", "selector", "study"], kind="stable").reset_index(drop=True)


def costs(records):
    """The tuning cost per (workload, selector), and what exact pruning saved; sorted by workload and selector.

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
    grouped = {}
    for r in records:
        if r["status"] != NOT_APPLICABLE:
            grouped.setdefault((r["workload"], r["selector"]), []).append(r)
    rows = []
    for (workload, selector), group in sorted(grouped.items()):
        per_epoch = [r["frame"]["train_time_s"].iloc[-1] / r["frame"]["epoch"].iloc[-1] for r in group
                     if r["status"] == OK and not r["frame"].empty and r["frame"]["epoch"].iloc[-1] > 0]
        rate = float(np.median(per_epoch)) if per_epoch else math.nan
        pruned = [r for r in group if r["status"] == PRUNED and not r["frame"].empty]
        ran = sum(float(r["frame"]["train_time_s"].iloc[-1]) for r in pruned)
        full = ran + sum(rate * max(0.0, _epoch_cap(r) - r["frame"]["epoch"].iloc[-1]) for r in pruned)
        rows.append({"workload": workload, "selector": selector, "trials": len(group),
                     "ok": sum(r["status"] == OK for r in group),
                     "pruned": sum(r["status"] == PRUNED for r in group),
                     "failed": sum(r["status"] == FAILED for r in group),
                     "tuning_s": sum(_wall(r) for r in group),
                     "pruned_s": ran, "pruned_full_s": full if pruned else 0.0,
                     "saved_s": (full - ran) if pruned else 0.0})
    return pd.DataFrame(rows)


def _epoch_cap(record):
    """The epochs a trial would have run: the loop's own epoch cap, else the workload's."""
    cap = record.get("loop_epochs")
    return cap if cap is not None else (record.get("workload_config") or {}).get("epochs", 0)
