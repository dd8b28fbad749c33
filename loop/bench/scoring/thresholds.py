"""Speedup across thresholds: does a selector's advantage grow or shrink as the target rises?

Definitions (also in ``docs/bench.md``, "Speedup across thresholds"):

* **Levels.**  Per workload, ``count`` (default 5) evenly spaced thresholds of
  the target metric from an *easy level* up to the workload's target
  (:func:`loop.bench.scoring.targets.dataset_target`, so the direction,
  ``"min"`` for ``val_mae`` or ``val_loss``, comes from
  :func:`loop.history.parse_target`).  The last level is the target itself.
  ``levels=`` overrides them.
* **Easy level.**  The median, over the baseline's successful trials, of the
  target metric at each trial's first evaluation: validation data only, and a
  level about half of the baseline's trials meet at once.  When it already
  meets the target the workload has one level, the target.
* **Time to a level** of a trial: :func:`loop.bench.scoring.targets.time_to`
  with the level as the target, in seconds and in backpropagated samples.  The
  trials are the stored ones: a trial that stopped at its target cannot meet a
  level beyond it.
* **Each level's own winner.**  A study's time to a level is the shortest over
  its trials (every trial of a tuned study, pruned ones included: a trial
  pruned after meeting an easy level did meet it); its backpropagated samples
  are that fastest trial's.  A one-trial study (untuned results) has its
  trial's.  The target and the easy level are those of the main table: read
  from each study's winner at the target
  (:func:`loop.bench.scoring.studies.study_winners`).
* **Speedup, interval, verdict** at each level exactly as in the main table
  (:func:`loop.bench.scoring.speedups.paired_speedup`: the order-statistic
  interval of the median and the sign test, ``false_win_rate``): paired by
  study against the baseline.
* **Trend** (:func:`trends`): per workload x selector, the ratio of the speedup
  at the last level to that at the first and the Spearman rank correlation of
  the speedup with the level's rank; "grows" when both say up, "shrinks" when
  both say down, "flat" when every level's speedup is equal, else "mixed".
  The levels share their trials, so this describes the curve; it is not a test.

The numbers only: :mod:`loop.bench.reporting` formats and draws them.
"""

import math

import numpy as np
import pandas as pd

from loop.bench.records import OK
from loop.bench.scoring.grouping import by_workload, selector_order
from loop.bench.scoring.speedups import aggregate, paired_speedup, ratios_text
from loop.bench.scoring.studies import study_winners
from loop.bench.scoring.targets import BASELINE, dataset_target, time_to

#: Thresholds per workload unless ``count=`` says otherwise.
DEFAULT_COUNT = 5


def first_evaluation(frame, metric):
    """The value of ``metric`` at a trial's first evaluation that has it (NaN when none does)."""
    if frame is None or metric not in frame or frame[metric].dropna().empty:
        return math.nan
    return float(frame[metric].dropna().iloc[0])


def easy_level(records, metric, baseline=BASELINE):
    """The easy level of one workload: the median over the baseline's successful trials of ``metric`` at their
    first evaluation.

    Args:
        records: the trial records of one workload.
        metric: a validation column, e.g. ``"val_accuracy"`` or ``"val_mae"``.
        baseline: the label of the baseline selector.

    Returns:
        The level, a float.

    Raises:
        ValueError: no successful baseline trial has ``metric``.
    """
    firsts = [first_evaluation(r["frame"], metric) for r in records if r["selector"] == baseline
              and r["status"] == OK]
    firsts = [v for v in firsts if math.isfinite(v)]
    if not firsts:
        workload = records[0]["workload"] if records else "?"
        raise ValueError(f"{workload}: no successful {baseline} run has {metric!r} to set the easy level from; "
                         "run the baseline or pass levels= explicitly")
    return aggregate(firsts)


def _single(target, records):
    if len(target) != 1:
        workload = records[0]["workload"] if records else "?"
        raise ValueError(f"{workload}: the thresholds need a target on one metric, got {sorted(target)}; "
                         "pass targets= with one metric for this dataset, e.g. {'val_accuracy': 0.9}")
    (metric, (threshold, mode)), = target.items()
    return metric, float(threshold), mode


def threshold_levels(records, target, *, count=DEFAULT_COUNT, baseline=BASELINE):
    """``count`` evenly spaced thresholds from the easy level (:func:`easy_level`) to the target.

    Args:
        records: the trial records of one workload.
        target: ``{metric: (threshold, mode)}`` with one metric (from
            :func:`loop.bench.scoring.targets.dataset_target`).
        count: the number of levels, at least 2.
        baseline: the label of the baseline selector.

    Returns:
        The thresholds, easiest first, ending at the target's; just ``[target]`` when the easy level already
        meets it.

    Raises:
        ValueError: ``count`` is not an integer >= 2, ``target`` does not have exactly one metric, or the easy
            level cannot be computed.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 2:
        raise ValueError(f"count={count!r}: give an integer >= 2 (the number of thresholds per dataset)")
    metric, threshold, mode = _single(target, records)
    easy = easy_level(records, metric, baseline)
    if (easy >= threshold) if mode == "max" else (easy <= threshold):
        return [float(threshold)]
    return [float(v) for v in np.linspace(easy, threshold, count)]


def _levels_for(workload, levels):
    """The explicit levels for ``workload`` (a list applies to every workload; a dict per workload), or None."""
    if levels is None:
        return None
    chosen = levels.get(workload) if isinstance(levels, dict) else levels
    if chosen is None:
        return None
    values = []
    for v in chosen:
        try:
            number = float(v)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"{workload}: threshold level {v!r} is not a finite number; pass numbers, "
                             "e.g. levels=[0.8, 0.85, 0.9] or levels={'mnist': [0.98, 0.99]}")
        values.append(number)
    if not values:
        raise ValueError(f"{workload}: levels= gives no threshold; pass at least one number or leave it out")
    return values


def speedup_by_threshold(records, *, targets=None, levels=None, count=DEFAULT_COUNT, baseline=BASELINE,
                         n_boot=10_000):
    """The speedup table across thresholds: one row per workload x threshold x selector.

    Args:
        records: trial records: every trial of every study (each level takes each study's fastest trial to it;
            the studies' winners alone give the times of the winners at the target); not-applicable records are
            left out.
        targets: from :func:`loop.bench.scoring.targets.parse_targets`; None uses each workload's own target.
        levels: explicit thresholds, a list for every workload or ``{workload: [thresholds]}`` (workloads not in
            the dict get the default levels); None for the default (:func:`threshold_levels`).
        count: thresholds per workload for the default levels.
        baseline: the label of the selector speedups are measured against.
        n_boot: unused (the intervals were bootstraps; they are order statistics now); kept for callers.

    Returns:
        A ``pandas.DataFrame`` with columns ``dataset`` (the workload), ``metric, mode, level`` (1 = easiest),
        ``threshold``, ``levels_from`` ("easy level to target" or "given"), ``selector, seeds`` (studies),
        ``reached`` (studies that met the threshold), ``time_to_threshold_s`` (median over studies, ``inf`` when
        half or more missed), ``speedup, speedup_ci_low, speedup_ci_high, verdict, paired_studies, false_win_rate,
        ratios``,
        and the same for backpropagated samples (``backprop_to_threshold, backprop_speedup,
        backprop_speedup_ci_low, backprop_speedup_ci_high, backprop_verdict``).  Workloads without a target are left out, and so are those
        without a successful baseline trial unless ``levels`` gives theirs (no easy level; every speedup would be
        n/a).

    Raises:
        ValueError: a workload's target has more than one metric, a level is not a finite number, or ``count``
            is invalid.
    """
    rows = []
    for workload, trials in by_workload(records).items():
        recs = study_winners(trials)  # the target and the easy level: as the main table reads them
        target, _ = dataset_target(recs, targets, baseline)
        if not target:
            continue
        metric, _, mode = _single(target, recs)
        given = _levels_for(workload, levels)
        if given is None and not any(r["selector"] == baseline and r["status"] == OK for r in recs):
            continue  # no baseline trial: no easy level, and no speedup to measure
        thresholds = given if given is not None else threshold_levels(recs, target, count=count, baseline=baseline)
        order = selector_order(recs, baseline)
        for level, threshold in enumerate(thresholds, start=1):
            goal = {metric: (threshold, mode)}
            times, backprop = {}, {}
            for r in trials:  # each study's fastest trial to this level (ties: the first)
                seconds, samples = time_to(r, goal, ("seconds", "samples_backpropagated"))
                best = times.setdefault(r["selector"], {}).get(r["study"])
                if best is None or seconds < best:
                    times[r["selector"]][r["study"]] = seconds
                    backprop.setdefault(r["selector"], {})[r["study"]] = samples
            base_times = times.get(baseline, {})
            base_counts = {s: v for s, v in backprop.get(baseline, {}).items() if not math.isnan(v)}
            for label in order:
                secs = times[label]
                counts = {s: v for s, v in backprop[label].items() if not math.isnan(v)}
                wall = paired_speedup(base_times, secs, n_boot)
                saving = paired_speedup(base_counts, counts, n_boot)
                rows.append({
                    "dataset": workload, "metric": metric, "mode": mode, "level": level, "threshold": threshold,
                    "levels_from": "given" if given is not None else "easy level to target",
                    "selector": label, "seeds": len(secs),
                    "reached": sum(math.isfinite(t) for t in secs.values()),
                    "time_to_threshold_s": aggregate(secs.values()),
                    "speedup": wall.speedup, "speedup_ci_low": wall.low, "speedup_ci_high": wall.high,
                    "verdict": wall.verdict, "paired_studies": len(wall.ratios),
                    "false_win_rate": wall.false_win_rate, "ratios": ratios_text(wall.ratios),
                    "backprop_to_threshold": aggregate(counts.values()),
                    "backprop_speedup": saving.speedup, "backprop_speedup_ci_low": saving.low,
                    "backprop_speedup_ci_high": saving.high, "backprop_verdict": saving.verdict,
                })
    return pd.DataFrame(rows)


def _trend_word(speedups, rho, ratio):
    if not speedups:
        return "n/a"
    if len(speedups) < 2:
        return "one level"
    if all(s == speedups[0] for s in speedups):
        return "flat"
    if rho > 0 and ratio > 1:
        return "grows"
    if rho < 0 and ratio < 1:
        return "shrinks"
    return "mixed"


def trends(table, *, baseline=BASELINE, column="speedup"):
    """One row per workload x selector (baseline excluded): how the speedup moves from the easiest level to the
    target.

    Args:
        table: from :func:`speedup_by_threshold`.
        baseline: the baseline's label (its rows are 1 by construction and left out).
        column: ``"speedup"`` (wall-clock) or ``"backprop_speedup"``.

    Returns:
        A ``pandas.DataFrame`` with ``dataset, selector, levels, first, last`` (the speedups at the easiest level
        and at the hardest), ``ratio`` (last / first; ``inf`` from 0 to more, NaN when undefined), ``spearman``
        (rank correlation of the speedup with the level's rank; NaN when constant), ``trend`` ("grows",
        "shrinks", "flat", "mixed", "one level", "n/a" without any speedup) and ``verdicts`` (per level, easiest
        first).  The readable line per row is :func:`loop.bench.reporting.formatting.trend_summaries`.

    Raises:
        ValueError: ``column`` is not in ``table``.
    """
    if table.empty:
        return pd.DataFrame()
    if column not in table:
        raise ValueError(f"column={column!r} is not in the table; use 'speedup' or 'backprop_speedup'")
    verdict_column = "verdict" if column == "speedup" else column.replace("speedup", "verdict")
    rows = []
    for (workload, selector), group in table.groupby(["dataset", "selector"], sort=False):
        if selector == baseline:
            continue
        group = group.sort_values("level")
        defined = group[group[column].notna()]
        speedups = list(defined[column])
        first, last = (speedups[0], speedups[-1]) if speedups else (math.nan, math.nan)
        if not speedups:
            ratio = math.nan
        elif first == last:
            ratio = 1.0
        elif first == 0:
            ratio = math.inf
        elif math.isinf(first):
            ratio = 0.0 if math.isfinite(last) else math.nan
        else:
            ratio = last / first
        if len(speedups) >= 2 and len(set(speedups)) > 1:
            rho = float(pd.Series(speedups).corr(pd.Series(list(defined["level"])), method="spearman"))
        else:
            rho = math.nan
        rows.append({"dataset": workload, "selector": selector, "levels": len(group), "first": first, "last": last,
                     "ratio": ratio, "spearman": rho, "trend": _trend_word(speedups, rho, ratio),
                     "verdicts": " -> ".join(defined[verdict_column])})
    return pd.DataFrame(rows)
