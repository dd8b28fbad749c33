"""Performance profiles across workloads (Dolan & Moré 2002), as AlgoPerf scores submissions.

Definitions (also in ``docs/bench.md``, "Performance profiles"):

* **Workload** = a workload with its target
  (:func:`loop.bench.scoring.targets.dataset_target`).
* **Cost** ``t[m, w]`` of selector ``m`` on workload ``w``: the aggregate
  (median, :func:`loop.bench.scoring.speedups.aggregate`) over its studies of
  the time to target (:func:`loop.bench.scoring.targets.time_to`: training
  plus selection seconds, ``measure="time"``, or samples backpropagated,
  ``measure="backprop"``), a trial that misses the target or failed counting
  as ``inf``.  The median of a partly missing set follows NumPy on the sorted
  values, as the main table does: it is ``inf`` when half or more of the
  studies missed, finite otherwise.  A selector with no trial on a workload
  (not run, or not applicable to its task) misses it (``unrun="miss"``,
  AlgoPerf's rule that a submission is scored on every workload), or the
  workload is left out of every selector's profile (``unrun="drop"``).  A
  workload whose trials lack the measured column (``samples_backpropagated``
  in old runs) is left out.
* **Ratio** ``r[m, w] = t[m, w] / min over m of t[m, w]`` (1 for the fastest,
  ties all 1).  When nobody reached the target every ratio is ``inf``.
* **Profile** ``rho_m(tau)`` = the fraction of workloads with ``r[m, w] <= tau``
  (a relative slack of :data:`SLACK` absorbs float round-off at the steps).  A
  miss is never within any tau.
* **Score** = the area under ``rho_m`` from ``tau = 1`` to ``tau_max`` (default
  4) divided by ``tau_max - 1``, so 1 means fastest on every workload and 0
  never within ``tau_max`` of the fastest.  The step function is integrated
  exactly: ``mean over w of max(0, tau_max - r[m, w]) / (tau_max - 1)``
  (AlgoPerf integrates the same curve with the trapezoid rule on a grid).

The numbers only: :func:`loop.bench.reporting.plots.plot_profiles` draws them.
"""

import math

import numpy as np
import pandas as pd

from loop.bench.scoring.grouping import by_workload
from loop.bench.scoring.speedups import aggregate
from loop.bench.scoring.targets import BASELINE, dataset_target, time_to

#: The taus of the profile table.
TAUS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
#: The upper end of the score's integral and of the plot.
TAU_MAX = 4.0
#: What a cost can measure: the unit of :func:`loop.bench.scoring.targets.time_to` it reads.
MEASURES = {"time": "seconds", "backprop": "samples_backpropagated"}
#: What to do with a selector that has no trial on a workload.
UNRUN = ("miss", "drop")
#: The relative slack of ``r <= tau``.
SLACK = 1e-9


def workload_costs(records, *, targets=None, baseline=BASELINE, measure="time", unrun="miss"):
    """The cost matrix ``t[m, w]``: the median over studies of each selector's time (or samples) to target.

    Args:
        records: trial records, one per study (the studies' winners for tuned results).
        targets: from :func:`loop.bench.scoring.targets.parse_targets`; None uses each workload's own target.
        baseline: the selector the default targets are inferred from.
        measure: ``"time"`` (training plus selection seconds) or ``"backprop"`` (samples backpropagated).
        unrun: ``"miss"`` (a selector without trials on a workload misses it) or ``"drop"`` (leave such
            workloads out).

    Returns:
        A ``pandas.DataFrame``, one row per selector (first-seen order, not-applicable records included) and one
        column per workload; ``inf`` is a miss.  Workloads without a target, and (for ``"backprop"``) those whose
        trials lack the column, are left out.

    Raises:
        ValueError: an unknown ``measure`` or ``unrun``.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure={measure!r}: use one of {sorted(MEASURES)}")
    if unrun not in UNRUN:
        raise ValueError(f"unrun={unrun!r}: use 'miss' (no run counts as a miss) or 'drop' (leave the workload out)")
    labels = list(dict.fromkeys(r["selector"] for r in records))
    columns = {}
    for workload, recs in by_workload(records).items():
        target, _ = dataset_target(recs, targets, baseline)
        if not target:
            continue
        per_selector = {}
        for r in recs:
            per_selector.setdefault(r["selector"], []).append(time_to(r, target, MEASURES[measure]))
        if unrun == "drop" and set(per_selector) != set(labels):
            continue
        costs = {}
        for label in labels:
            values = per_selector.get(label)
            if values is None:
                costs[label] = math.inf  # not run or not applicable: a miss
            elif any(math.isnan(v) for v in values):
                break  # the trials lack the measured column: the workload is left out
            else:
                costs[label] = aggregate(values)
        else:
            columns[workload] = costs
    return pd.DataFrame(columns, index=labels, dtype=float)


def performance_ratios(costs):
    """``r[m, w] = t[m, w] / min over m of t[m, w]``, per workload column of :func:`workload_costs`.

    A workload nobody reached has ``inf`` everywhere; with a zero best cost, the selectors at zero get 1 and
    the others ``inf``.

    Returns:
        A ``pandas.DataFrame`` of the shape of ``costs``.
    """
    ratios = {}
    for workload in costs.columns:
        column = costs[workload].to_numpy(dtype=float)
        best = column.min() if column.size else math.inf
        if math.isinf(best):
            ratios[workload] = np.full(column.shape, math.inf)
        elif best == 0:
            ratios[workload] = np.where(column == 0, 1.0, math.inf)
        else:
            ratios[workload] = column / best
    return pd.DataFrame(ratios, index=costs.index, columns=costs.columns, dtype=float)


def rho(ratios, taus=TAUS):
    """The profile at ``taus``: per selector, the fraction of workloads with ``r <= tau``.

    Args:
        ratios: from :func:`performance_ratios`.
        taus: the ratios to read the profile at (each >= 1).

    Returns:
        A ``pandas.DataFrame``, one row per selector, one column per tau.

    Raises:
        ValueError: no workload, or a tau below 1 or not finite.
    """
    if ratios.shape[1] == 0:
        raise ValueError("the profile needs at least one workload; no dataset had a target and runs "
                         "of every selector (see workload_costs's unrun=)")
    for tau in taus:
        if not (isinstance(tau, (int, float, np.floating)) and math.isfinite(tau) and tau >= 1):
            raise ValueError(f"tau={tau!r}: taus are finite ratios >= 1, e.g. (1, 1.25, 1.5, 2, 3, 4)")
    values = ratios.to_numpy(dtype=float)
    return pd.DataFrame({float(tau): (values <= tau * (1 + SLACK)).mean(axis=1) for tau in taus},
                        index=ratios.index)


def score(ratios, tau_max=TAU_MAX):
    """The area under each selector's profile from 1 to ``tau_max``, divided by ``tau_max - 1`` (in [0, 1]).

    Exact for the step function: ``mean over w of max(0, tau_max - r[m, w]) / (tau_max - 1)``.

    Returns:
        A ``pandas.Series`` indexed by selector.

    Raises:
        ValueError: ``tau_max`` is not a finite number above 1, or there is no workload.
    """
    if not (isinstance(tau_max, (int, float, np.floating)) and math.isfinite(tau_max) and tau_max > 1):
        raise ValueError(f"tau_max={tau_max!r}: give a finite number above 1, e.g. 4")
    if ratios.shape[1] == 0:
        raise ValueError("the score needs at least one workload")
    values = ratios.to_numpy(dtype=float)
    area = np.where(np.isfinite(values), np.clip(tau_max - values, 0.0, tau_max - 1.0), 0.0)
    return pd.Series(area.mean(axis=1) / (tau_max - 1.0), index=ratios.index, name="score")


def steps(ratios_row, tau_max=TAU_MAX):
    """The x and y of one selector's profile as a step function on [1, ``tau_max``] (a row of ratios)."""
    ratios_row = np.asarray(ratios_row, dtype=float)
    finite = np.sort(ratios_row[np.isfinite(ratios_row) & (ratios_row <= tau_max)])
    xs = np.concatenate([[1.0], finite, [tau_max]])
    n = len(ratios_row)
    ys = np.array([(ratios_row <= x * (1 + SLACK)).sum() / n for x in xs])
    return xs, ys


def profile_table(records, *, targets=None, baseline=BASELINE, measure="time", unrun="miss", taus=TAUS,
                  tau_max=TAU_MAX):
    """The profile of every selector over the workloads: ``rho(tau)`` at ``taus``, the score, the counts.

    Args:
        records, targets, baseline, measure, unrun: as for :func:`workload_costs`.
        taus: the columns ``rho(tau)``.
        tau_max: the upper end of the score (:func:`score`).

    Returns:
        ``(table, costs, ratios)``: ``table`` has one row per selector, best score first, with ``measure``,
        ``workloads``, ``fastest`` (workloads where its ratio is 1), ``missed`` (workloads with infinite
        cost), ``rho(<tau>)`` columns and ``score``; ``costs`` and ``ratios`` are the selector x workload
        matrices it came from.

    Raises:
        ValueError: as :func:`workload_costs`, :func:`rho` and :func:`score`.
    """
    costs = workload_costs(records, targets=targets, baseline=baseline, measure=measure, unrun=unrun)
    return profile_from_costs(costs, measure=measure, taus=taus, tau_max=tau_max)


def profile_from_costs(costs, *, measure="time", taus=TAUS, tau_max=TAU_MAX):
    """:func:`profile_table` from a cost matrix already computed (:func:`workload_costs`), e.g. a hand-made one.

    Returns:
        ``(table, costs, ratios)`` as :func:`profile_table`.

    Raises:
        ValueError: as :func:`rho` and :func:`score`.
    """
    ratios = performance_ratios(costs)
    at = rho(ratios, taus)
    values = ratios.to_numpy(dtype=float)
    table = pd.DataFrame({"selector": ratios.index, "measure": measure, "workloads": ratios.shape[1],
                          "fastest": (values <= 1 + SLACK).sum(axis=1),
                          "missed": np.isinf(costs.to_numpy(dtype=float)).sum(axis=1)})
    for tau in at.columns:
        table[f"rho({tau:g})"] = at[tau].to_numpy()
    table[f"score(tau<={tau_max:g})"] = score(ratios, tau_max).to_numpy()
    table = table.sort_values(f"score(tau<={tau_max:g})", ascending=False, kind="stable").reset_index(drop=True)
    return table, costs, ratios
