"""Targets and the one definition of time to target.

* :func:`parse_targets` reads the ``--target`` specs; :func:`dataset_target`
  chooses a workload's target: a given one, else the records' fixed
  ``target``, else :func:`infer_target` (99% of the median best of the
  baseline; 101% for a lower-is-better metric).
* :func:`time_to` is the time to a target of one trial, in any unit: the value
  of a history column at the first evaluation that meets the target
  (:func:`loop.history.first_reached`); ``inf`` when no evaluation meets it,
  the trial failed, its history is empty or lacks a target metric.  Every
  table, threshold and profile reads it, and nothing else.
* :func:`best`, :func:`test_metric` and :func:`test_at` read the best value
  of a metric and the test metric at the target and at the end.

Records are the trial records of :mod:`loop.bench.records` (layout 2), with
``frame`` a ``pandas.DataFrame``.
"""

import math

import numpy as np
import pandas as pd

from loop import history as history_lib
from loop.bench.records import FAILED, NOT_APPLICABLE, OK

#: The baseline every speedup is measured against, as its table label.
BASELINE = "Shuffle()"

#: The A/A control: Shuffle drawing from another random stream.  Scored like any selector; when nothing differs
#: its verdict should read "no difference", so any other verdict says the comparison is not calibrated.
AA_CONTROL = "ShuffleAA()"


def is_aa_control(label):
    """Whether a table label is the A/A control (:data:`AA_CONTROL`, with or without arguments)."""
    return isinstance(label, str) and label.split("(", 1)[0] == AA_CONTROL.split("(", 1)[0]

#: The units of :func:`time_to`: the history column each one reads at the first evaluation that meets a target.
UNITS = {"seconds": "train_time_s", "epochs": "epoch", "steps": "step", "samples_forwarded": "samples_forwarded",
         "samples_backpropagated": "samples_backpropagated"}


def parse_targets(specs):
    """Parses ``["val_mae=3.0", "iris:val_accuracy=0.9"]`` into ``{workload or None: {metric: value}}``.

    Raises:
        ValueError: a spec is not ``[workload:]metric=value`` with a finite number.
    """
    targets = {}
    for spec in specs or []:
        where, _, rest = spec.rpartition(":") if ":" in spec else ("", "", spec)
        metric, eq, value = rest.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not eq or not metric.strip() or not math.isfinite(number):
            raise ValueError(f"bad target {spec!r}: write metric=value or dataset:metric=value, "
                             "e.g. --target val_accuracy=0.9 or --target boston:val_mae=3.0")
        targets.setdefault(where.strip() or None, {})[metric.strip()] = number
    return targets


def best(frame, metric):
    """The best value of ``metric`` over a trial's evaluations (NaN when absent)."""
    if metric not in frame or frame[metric].dropna().empty:
        return math.nan
    values = frame[metric].dropna()
    return float(values.min() if history_lib.infer_mode(metric) == "min" else values.max())


def infer_target(records, metric, baseline=BASELINE):
    """The default target of one workload from its baseline trials.

    Returns:
        ``(threshold, mode)``, or None when no successful baseline trial has ``metric``.
    """
    bests = [best(r["frame"], metric) for r in records if r["selector"] == baseline and r["status"] == OK]
    bests = [b for b in bests if math.isfinite(b)]
    if not bests:
        return None
    mode = history_lib.infer_mode(metric)
    median = float(np.median(bests))
    return (median * 0.99 if mode == "max" else median * 1.01), mode


def dataset_target(records, targets=None, baseline=BASELINE):
    """The target of one workload's records: ``({metric: (threshold, mode)}, how)``.

    ``targets`` (from :func:`parse_targets`) wins, the workload's own entry
    first, then the workload-free entries whose metric its histories have;
    else the records' fixed ``target`` (the workload's); else
    :func:`infer_target` on the baseline.
    """
    workload = records[0]["workload"]
    columns = set()
    for r in records:
        columns.update(r["frame"].columns)
    targets = targets or {}
    chosen = dict(targets.get(workload, {}))
    if not chosen:
        chosen = {m: v for m, v in targets.get(None, {}).items() if m in columns}
    if chosen:
        return history_lib.parse_target(chosen), "given"
    fixed = records[0].get("target")
    if fixed:
        return history_lib.parse_target(fixed), "fixed in the suite"
    metric = records[0]["target_metric"]
    inferred = infer_target(records, metric, baseline)
    if inferred is None:
        return {}, f"none: no successful {baseline} run to infer it from"
    return {metric: inferred}, f"{'99%' if inferred[1] == 'max' else '101%'} of median best {baseline}"


def _first_row(record, target):
    """The first evaluation of ``record`` that meets ``target``, or None: the one guard of every time to target
    (no target, a failed or not-applicable trial, an empty history, a target metric the history lacks)."""
    target = history_lib.parse_target(target)
    frame = record["frame"]
    if not isinstance(frame, pd.DataFrame):  # a record as stored (rows), before loading
        frame = pd.DataFrame(frame or [])
    if (not target or record["status"] in (FAILED, NOT_APPLICABLE) or frame.empty
            or any(m not in frame.columns for m in target)):
        return None
    return history_lib.first_reached(frame, target)


def time_to(record, target, unit="seconds"):
    """A trial's time to ``target``: a history column at the first evaluation that meets it.

    Args:
        record: one trial record (its ``frame`` a ``pandas.DataFrame``, or the stored list of rows).
        target: ``{metric: threshold}`` or ``{metric: (threshold, mode)}``.
        unit: one of :data:`UNITS` (``"seconds"``: training plus selection seconds, ``"epochs"``, ``"steps"``,
            ``"samples_forwarded"``, ``"samples_backpropagated"``), or a tuple of them: one lookup of the
            first evaluation then serves every unit.

    Returns:
        A float (a tuple of floats for a tuple of units): ``inf`` when no evaluation meets the target, the trial
        failed (or was not applicable), its history is empty or lacks a target metric; NaN for a unit whose
        column the history lacks (``samples_forwarded`` in runs stored before it existed) at a met target.

    Raises:
        ValueError: an unknown unit.
    """
    units = (unit,) if isinstance(unit, str) else tuple(unit)
    unknown = [u for u in units if u not in UNITS]
    if unknown:
        raise ValueError(f"time_to: unknown unit(s) {unknown}; use one of {list(UNITS)}")
    row = _first_row(record, target)
    if row is None:
        values = tuple(math.inf for _ in units)
    else:
        values = tuple(float(row[UNITS[u]]) if UNITS[u] in row.index else math.nan for u in units)
    return values[0] if isinstance(unit, str) else values


def test_metric(record, metric):
    """The column of a trial's history that holds the test set's ``metric``: ``test_<metric>`` when the trial
    validated on a split of the training set (then ``val_`` is that split), else ``val_<metric>`` (the test set)."""
    return "test_" + metric if "test_" + metric in record["frame"].columns else "val_" + metric


def test_at(record, metric, target):
    """``(at_target, at_end)``: the trial's ``test_<metric>`` at the first evaluation that meets ``target`` (NaN
    when none does, see :func:`time_to`) and at its last evaluation; both NaN without a ``test_`` column."""
    column = "test_" + metric
    frame = record["frame"]
    if frame.empty or column not in frame.columns:
        return math.nan, math.nan
    at_end = float(frame[column].iloc[-1])
    row = _first_row(record, target)
    return (math.nan if row is None else float(row[column])), at_end
