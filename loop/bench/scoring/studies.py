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
    trials that were not pruned, NaN without one; on the seconds clock, their
    time budget) and ``saved_s =
    pruned_full_s - pruned_s``.  It is an upper bound of the saving: a trial
    that would have met the target later stops there.  ``setup_s``: the
    set-up spent once per study off the clock (RhoLoss's irreducible losses,
    ``costs.irreducible_s``), summed over the studies; 0 for other methods.

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
        full = sum(_full_seconds(r, rate) for r in pruned)
        rows.append({"workload": workload, "selector": selector, "trials": len(group),
                     "ok": sum(r["status"] == OK for r in group),
                     "pruned": sum(r["status"] == PRUNED for r in group),
                     "failed": sum(r["status"] == FAILED for r in group),
                     "tuning_s": sum(_wall(r) for r in group),
                     "pruned_s": ran, "pruned_full_s": full if pruned else 0.0,
                     "saved_s": (full - ran) if pruned else 0.0,
                     "setup_s": sum({r["study"]: float((r.get("costs") or {}).get("irreducible_s") or 0.0)
                                     for r in group}.values())})
    return pd.DataFrame(rows)


def _full_seconds(record, rate):
    """The training seconds a pruned trial would have run: its time budget on the seconds clock, else the seconds
    it ran plus its remaining epochs at ``rate`` seconds per epoch."""
    ran = float(record["frame"]["train_time_s"].iloc[-1])
    clock = record.get("clock")
    if isinstance(clock, dict) and clock.get("budget_s"):
        return max(ran, float(clock["budget_s"]))
    return ran + rate * max(0.0, _epoch_cap(record) - record["frame"]["epoch"].iloc[-1])


def _epoch_cap(record):
    """The epochs a trial would have run: the loop's own epoch cap, else the workload's."""
    cap = record.get("loop_epochs")
    return cap if cap is not None else (record.get("workload_config") or {}).get("epochs", 0)


#: The margin of :func:`edge_hits`: a winning coordinate within it of 0 or 1 is at a range edge.
EDGE_MARGIN = 0.1


def edge_hits(records, margin=EDGE_MARGIN):
    """How often each study's winning trial sits at an edge of the searched range, per dimension.

    A searched trial's record holds ``search_units`` (``{dimension: u}``, the unit coordinate in ``[0, 1)`` of
    its point, :func:`loop.bench.search.trial_points`) and ``search_space`` (``{dimension: [kind, args]}``).  Per
    (workload, selector, dimension) this counts the studies whose winner (:func:`study_winners`) has
    ``u <= margin`` (``at_low``) or ``u >= 1 - margin`` (``at_high``).  Many winners at an edge say the range
    cut the search short there.  ``choice`` dimensions have no edge and are left out; a dimension whose kind the
    record does not give is counted.  Records without ``search_units`` (untuned or older results) add nothing.

    Args:
        records: trial records (every trial; the winners are chosen here).
        margin: the distance to 0 or 1 that counts as an edge, ``0 <= margin < 0.5``.

    Returns:
        A ``pandas.DataFrame`` sorted by workload and selector, dimensions in the records' order, with columns
        ``workload, selector, dimension, kind, at_low, at_high, edge`` (``at_low + at_high``) and ``studies`` (the
        winners with a coordinate on that dimension); empty when no winner has ``search_units``.

    Raises:
        ValueError: a ``margin`` outside ``[0, 0.5)``.
    """
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 0.5:
        raise ValueError(f"margin={margin!r}: give a distance to the range's ends in [0, 0.5), e.g. 0.1")
    counts = {}
    for w in study_winners(records):
        units = w.get("search_units")
        if w["status"] == NOT_APPLICABLE or not isinstance(units, dict):
            continue
        space = w.get("search_space") or {}
        for name, u in units.items():
            spec = space.get(name)
            kind = spec[0] if isinstance(spec, (list, tuple)) and spec else None
            if kind == "choice" or u is None or not math.isfinite(float(u)):
                continue
            row = counts.setdefault((w["workload"], w["selector"], name),
                                    {"kind": kind, "at_low": 0, "at_high": 0, "studies": 0})
            row["at_low"] += float(u) <= margin
            row["at_high"] += float(u) >= 1.0 - margin
            row["studies"] += 1
    rows = [{"workload": workload, "selector": selector, "dimension": name, "kind": found["kind"],
             "at_low": found["at_low"], "at_high": found["at_high"], "edge": found["at_low"] + found["at_high"],
             "studies": found["studies"]} for (workload, selector, name), found in counts.items()]
    frame = pd.DataFrame(rows, columns=["workload", "selector", "dimension", "kind", "at_low", "at_high", "edge",
                                        "studies"])
    return frame.sort_values(["workload", "selector"], kind="stable").reset_index(drop=True)


#: The label suffix of a selector's studies scored with its amortized set-up on the clock (:func:`with_setup`).
WITH_SETUP = " + IL"


def with_setup(records):
    """``records`` plus, for each trial whose set-up ran once per study off the clock (``costs.irreducible_s``:
    RhoLoss's irreducible losses, :func:`loop.bench.training.irreducible_losses`), a copy that pays it: selector
    ``"<selector> + IL"``, every ``train_time_s`` of its history later by those seconds.

    The shift is the same for every trial of a study (they share one file), so each study's winner and every pruned
    trial stay what they were; the tables show the method both ways, amortized and paying its set-up once per
    study, as the RHO-LOSS paper and Kaddour et al. (2023) report it apart.
    """
    extra = []
    for r in records:
        seconds = float((r.get("costs") or {}).get("irreducible_s") or 0.0)
        if not seconds or r["selector"].endswith(WITH_SETUP):
            continue
        frame = r["frame"].copy()
        if "train_time_s" in frame:
            frame["train_time_s"] = frame["train_time_s"] + seconds
        extra.append({**r, "selector": r["selector"] + WITH_SETUP, "frame": frame})
    return list(records) + extra
