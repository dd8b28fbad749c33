"""Equal tuning for every method (``--tune K``): K quasirandom trials per workload, selector and study.

The protocol (AlgoPerf's rule, Dahl et al., "Benchmarking Neural Network
Training Algorithms", 2023: every method gets the same tuning budget, and it
is scored by the time to a fixed target):

* **Workload**: a :class:`loop.bench.suites.Budget` (dataset, subsets, model,
  batch size, epoch cap and a fixed ``target``).  Its epoch cap is each
  trial's cap; its target decides.
* **Study** ``s``: K trials of one selector.  Every trial of study ``s``
  builds the model after ``keras.utils.set_random_seed(s)`` and trains with
  ``Loop(seed=s)`` (:func:`loop.bench.runner.train_one`), so the studies of
  every selector start from the same weights.  A study's score is its
  **fastest trial to the target** (training-plus-selection seconds at the
  first evaluation that meets it); a study in which no trial meets it is a
  miss (``inf``).
* **Search space** (:func:`search_space`): the shared dimensions, the same for
  every selector, are the peak learning rate, log-uniform in
  ``[suggestion / 10, 3 * suggestion]`` around the learning-rate range
  test's suggestion (:func:`loop.lr_range.lr_range_test`, one pass of at
  least 100 steps as in the full suite's pilot; the suggestion is its
  ``conservative_lr``, a tenth of the rate at the smoothed loss's minimum,
  the rule the full suite's learning rates come from, since the steepest
  descent's rate was too aggressive with Adam on spirals; docs/bench.md).
  The test reads the training loss only, runs once per workload from the
  study-0 weights, and is cached in ``<out>/lr_range/<workload>.json``.
  Then the schedule shape (``constant``,
  ``cosine`` or ``linear``, :mod:`loop.schedules`); the decay horizon, a
  fraction of the method's own step budget uniform in ``[0.3, 1]``; and the
  warm-up, a fraction of the horizon uniform in ``[0, 0.1]``.  Then the
  selector's own knobs: the class attribute ``tune_space`` (``{"ratio":
  ("uniform", 0.1, 0.5)}``; kinds ``"uniform"``, ``"log-uniform"``,
  ``"int"`` (both ends included) and ``"choice"``), read as
  ``getattr(type(selector), "tune_space", {})``.
* **Points**: scrambled Halton sequences (``scipy.stats.qmc.Halton``, fixed
  seeds).  The shared dimensions come from one engine seeded by the study
  alone and the selector's own from a second engine, so trial ``k`` of study
  ``s`` has the same learning rate, shape, horizon and warm-up for every
  selector (paired across selectors), whatever knobs the selector adds.
* **Exact pruning**: trials run study by study, and within a study in order.
  A trial whose training clock passes the study's best time to target so far
  cannot win, so it is stopped at its first evaluation past that time
  (:func:`loop.bench.runner.TrainTimeLimit`) and stored with status
  ``pruned`` and the time it ran.  :func:`loop.bench.tuned_report.costs` reports what this saved:
  each pruned trial's remaining epochs up to its epoch cap, at the unpruned
  trials' median seconds per epoch (an upper bound: a trial that would have
  met the target stops there).
* **Storage**: ``<out>/runs/<workload>/<selector>/study_<s>/trial_<k>.json``,
  written atomically (:func:`loop.bench.runner.write_json_atomic`).  A rerun
  skips every trial stored with the same configuration and recomputes each
  study's best so far from the stored trials, so a killed tuning resumes
  where it stopped with the same pruning limits.
* **Results** live in :mod:`loop.bench.tuned_report`, which reads the stored
  trials (:func:`load_trials`): each study's winning trial shaped like a run
  record, the winning hyper-parameters, the tuning cost, and the report.
"""

import dataclasses
import glob
import json
import math
import os
import sys
import time

import numpy as np

from loop import history as history_lib
from loop.bench import runner
from loop.bench.tables import NOT_APPLICABLE

#: Bumped when a trial file's layout changes.
TRIAL_FORMAT = 1

#: The learning-rate range of the search, as multiples of the range test's suggestion.
LR_RANGE = (0.1, 3.0)

#: The shared dimensions after the learning rate: (name, kind, *arguments).
SHARED_DIMENSIONS = (("schedule", "choice", ("constant", "cosine", "linear")),
                     ("horizon", "uniform", 0.3, 1.0),
                     ("warmup", "uniform", 0.0, 0.1))

#: The kinds of a search dimension.
KINDS = ("uniform", "log-uniform", "int", "choice")

#: Seeds of the two quasirandom streams (shared dimensions; the selector's own), mixed with the study.
_SHARED_STREAM, _OWN_STREAM = 2023, 1729

#: Significant digits kept of a drawn real value (labels and files stay readable; the points stay distinct).
_DIGITS = 4


# ------------------------------------------------------------------------------------------------ space
def check_dimension(name, spec):
    """Returns a search dimension ``(kind, args)`` after checking ``spec``.

    ``spec`` is ``("uniform", low, high)``, ``("log-uniform", low, high)``
    (``0 < low``), ``("int", low, high)`` (both included) or ``("choice",
    [values])`` / ``("choice", value, value, ...)``.

    Raises:
        ValueError: an unknown kind or bad bounds, naming the dimension.
    """
    if not isinstance(spec, (tuple, list)) or not spec or spec[0] not in KINDS:
        raise ValueError(f"search dimension {name!r}: {spec!r} is not a dimension; write (kind, ...) with kind one "
                         f"of {', '.join(KINDS)}, e.g. ('uniform', 0.1, 0.5)")
    kind, args = spec[0], tuple(spec[1:])
    if kind == "choice":
        values = tuple(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
        if not values:
            raise ValueError(f"search dimension {name!r}: a choice needs at least one value")
        return kind, values
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a)
                                 for a in args) or not args[0] <= args[1]:
        raise ValueError(f"search dimension {name!r}: {kind} needs finite bounds low <= high, got {args!r}")
    if kind == "log-uniform" and args[0] <= 0:
        raise ValueError(f"search dimension {name!r}: log-uniform needs low > 0, got {args[0]!r}")
    if kind == "int" and not all(float(a).is_integer() for a in args):
        raise ValueError(f"search dimension {name!r}: int needs integer bounds, got {args!r}")
    return kind, args


def _round(value):
    return float(f"{value:.{_DIGITS}g}")


def map_unit(kind, args, u):
    """The value of a dimension at the unit coordinate ``u`` in [0, 1)."""
    u = min(max(float(u), 0.0), math.nextafter(1.0, 0.0))
    if kind == "choice":
        return args[int(u * len(args))]
    low, high = args
    if kind == "uniform":
        return _round(low + u * (high - low))
    if kind == "log-uniform":
        return _round(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
    return int(low + math.floor(u * (int(high) - int(low) + 1)))


def unit_points(dimensions, count, seed):
    """``count`` scrambled Halton points in ``[0, 1) ** dimensions`` from an engine seeded with ``seed``."""
    from scipy.stats import qmc

    if dimensions == 0:
        return np.zeros((count, 0))
    return qmc.Halton(d=dimensions, scramble=True, seed=seed).random(count)


def _stream_seed(stream, study):
    return int(np.random.SeedSequence([stream, int(study)]).generate_state(1)[0])


def search_space(suggested_lr, selector):
    """The search space of one selector on one workload: the shared dimensions, then the selector's own.

    Args:
        suggested_lr: the range test's suggestion; the learning rate is
            log-uniform in ``[suggested_lr * 0.1, suggested_lr * 3]`` (:data:`LR_RANGE`).
        selector: a selector object; its class attribute ``tune_space`` gives its own dimensions.

    Returns:
        ``(shared, own)``: lists of ``(name, kind, args)``.

    Raises:
        ValueError: a bad ``suggested_lr`` or ``tune_space`` entry, or a knob that is not a constructor argument.
    """
    if not (isinstance(suggested_lr, (int, float)) and math.isfinite(suggested_lr) and suggested_lr > 0):
        raise ValueError(f"the learning-rate suggestion must be a positive number, got {suggested_lr!r}")
    shared = [("learning_rate", "log-uniform", (suggested_lr * LR_RANGE[0], suggested_lr * LR_RANGE[1]))]
    shared += [(name, *check_dimension(name, (kind, *args))) for name, kind, *args in SHARED_DIMENSIONS]
    tune_space = getattr(type(selector), "tune_space", {}) or {}
    if not isinstance(tune_space, dict):
        raise ValueError(f"{type(selector).__name__}.tune_space must be a dict {{knob: (kind, ...)}}, got "
                         f"{tune_space!r}")
    params = selector.get_params() if hasattr(selector, "get_params") else {}
    own = []
    for name, spec in tune_space.items():
        if name not in params:
            raise ValueError(f"{type(selector).__name__}.tune_space names {name!r}, which is not one of its "
                             f"constructor arguments ({', '.join(params) or 'none'})")
        own.append((name, *check_dimension(f"{type(selector).__name__}.{name}", spec)))
    return shared, own


def trial_points(shared, own, count, study):
    """The ``count`` trial points of a study: ``[(shared_values, own_values), ...]``.

    The shared values come from a Halton engine seeded by the study alone, the
    selector's own from a second engine, so the shared values of trial ``k``
    of study ``s`` are the same for every selector.
    """
    shared_units = unit_points(len(shared), count, _stream_seed(_SHARED_STREAM, study))
    own_units = unit_points(len(own), count, _stream_seed(_OWN_STREAM, study))
    points = []
    for k in range(count):
        points.append(({name: map_unit(kind, args, shared_units[k, i]) for i, (name, kind, args) in enumerate(shared)},
                       {name: map_unit(kind, args, own_units[k, i]) for i, (name, kind, args) in enumerate(own)}))
    return points


# ---------------------------------------------------------------------------------------------- workloads
def workload_name(budget):
    """The name a workload's files and tables go by: ``budget.workload`` when the budget has one, else its dataset."""
    return getattr(budget, "workload", None) or budget.dataset


def _workload_key(budget, precision):
    """What the cached range test depends on: the budget without its learning rate and schedule, and the precision."""
    config = budget.config()
    for name in ("learning_rate", "schedule", "warmup", "horizon", "target", "stop_at_target", "epochs"):
        config.pop(name, None)
    return {**config, "precision": precision}


def range_test(budget, ds, train, out, *, precision=runner.DEFAULT_PRECISION):
    """The learning-rate range test of a workload, run once and cached in ``<out>/lr_range/<workload>.json``.

    The model is built after ``keras.utils.set_random_seed(0)`` (study 0's
    weights) and swept over one pass of the training rows, at least 100
    steps, with the dataset's optimizer and the budget's batch size
    (:func:`loop.lr_range.lr_range_test`; the training loss only).

    Returns:
        The cached dict: ``center_lr`` (the search's centre, the test's
        ``conservative_lr``), ``suggested_lr`` (steepest descent),
        ``conservative_lr``, ``min_loss_lr``, ``diverged_step``, ``num_steps``, ``wall_s``.
    """
    import keras

    from loop.lr_range import lr_range_test

    path = os.path.join(out, "lr_range", f"{workload_name(budget)}.json")
    key = _workload_key(budget, precision)
    try:
        with open(path) as f:
            stored = json.load(f)
        if stored.get("key") == key:
            return stored
    except (OSError, ValueError):
        pass
    keras.backend.clear_session()
    start = time.perf_counter()
    with runner.global_policy(precision):
        keras.utils.set_random_seed(0)
        model = ds.model(budget.model)
        batch_size = budget.batch_size or ds.batch_size
        result = lr_range_test(model, *train, loss=ds.loss, optimizer=ds.optimizer, batch_size=batch_size,
                               num_steps=max(100, math.ceil(len(train[1]) / batch_size)), seed=0)
    record = {"key": key, "workload": workload_name(budget), "center_lr": float(result.conservative_lr),
              "suggested_lr": float(result.suggested_lr),
              "conservative_lr": float(result.conservative_lr), "min_loss_lr": float(result.min_loss_lr),
              "diverged_step": result.diverged_step, "num_steps": result.num_steps,
              "wall_s": time.perf_counter() - start}
    runner.write_json_atomic(path, record)
    return record


# ------------------------------------------------------------------------------------------------ trials
def trial_path(out, workload, label, study, trial):
    """Where trial ``trial`` of study ``study`` of selector ``label`` on ``workload`` is stored."""
    return os.path.join(out, "runs", workload, runner.slug(label), f"study_{study}", f"trial_{trial}.json")


def read_trial(path):
    """The stored trial at ``path``, or None when it is missing or unreadable."""
    return runner.read_record(path, "trial_format", TRIAL_FORMAT)


def _frame(record):
    import pandas as pd

    frame = record.get("frame")
    return frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame or [])


def time_to_target(record, target):
    """A trial's seconds to ``target`` (``inf`` when it never met it, failed or was pruned before it)."""
    target = history_lib.parse_target(target)
    frame = _frame(record)
    if not target or frame.empty or any(m not in frame.columns for m in target):
        return math.inf
    row = history_lib.first_reached(frame, target)
    return math.inf if row is None else float(row["train_time_s"])


def _selector_factory(spec, own):
    """``(label, untuned label, factory)`` of a selector spec (string or object) with the knobs ``own`` set."""
    from loop.selectors import describe, from_string

    base = from_string(spec) if isinstance(spec, str) else spec
    if not own:
        label, factory = runner.selector_key(spec)
        return label, label, factory
    params = {**base.get_params(), **own}
    tuned = type(base)(**params)
    return describe(tuned), describe(base), lambda: type(base)(**params)


def available(specs, stream=None):
    """The string specs whose selector exists in this build; the others are named on ``stream`` and left out.

    A suite may list a selector that another branch adds (``rs2``); it is
    reported as unknown, never trained under another name.
    """
    from loop.selectors import registered

    names = registered()
    kept = []
    for spec in specs:
        name = spec.partition(":")[0].strip().lower() if isinstance(spec, str) else None
        if name is not None and name not in names:
            print(f"loop.bench: the suite's selector {spec!r} is not a registered selector in this build "
                  f"(choose from {', '.join(names)}); left out", file=stream or sys.stderr, flush=True)
            continue
        kept.append(spec)
    return kept


def run_tuned(budgets, selectors, studies, out, trials, *, data_dir=None, retry_failed=False, progress=True,
              stream=None, precision=runner.DEFAULT_PRECISION):
    """Runs every trial not already stored under ``out``: workload by workload, study by study, trial by trial.

    Args:
        budgets: :class:`loop.bench.suites.Budget` objects with a fixed
            ``target`` (the studies' scores and the pruning read it).
        selectors: string specs or selector objects (objects need ``get_params``
            when their class declares a ``tune_space``).
        studies: an int (studies ``0..studies-1``) or a list of study numbers.
        out: the results directory.
        trials: K, trials per study (>= 1).
        data_dir: passed to ``loop.datasets.load``.
        retry_failed: run again the trials stored as failed.
        progress: print a line per trial.
        stream: where progress goes (default stderr).
        precision: the ``keras.mixed_precision`` policy (:data:`loop.bench.runner.PRECISIONS`).

    Returns:
        ``{"ran": n, "skipped": n, "failed": n, "pruned": n, "not_applicable": n, "unloadable": [...]}``.

    Raises:
        ValueError: ``trials`` < 1, a budget without a target, a repeated or
            unknown selector, a bad ``tune_space``, or an ``out`` of another precision.
    """
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 1:
        raise ValueError(f"trials (--tune) must be a positive integer, got {trials!r}")
    runner.check_precision(precision)
    runner.check_out_precision(out, precision)
    other = sorted({r.get("precision") or runner.DEFAULT_PRECISION for r in _read_all(out)} - {precision})
    if other:
        raise ValueError(f"results directory (--out) {out!r} holds tuning trials trained in {', '.join(other)}, not "
                         f"{precision}; one results directory holds one precision: give another --out, or resume "
                         f"this one with --precision {other[0]}")
    for budget in budgets:
        if not budget.target:
            raise ValueError(f"{budget.dataset}: tuning scores each study by its fastest trial to a fixed target; "
                             "give the budget a target (e.g. the full suite's) or --target")
    studies = list(range(studies)) if isinstance(studies, int) else [int(s) for s in studies]
    labels = [runner.selector_key(s)[0] for s in selectors]
    if len(set(labels)) != len(labels):
        raise ValueError(f"selectors {labels} repeat a selector; give each one once")
    stream = stream or sys.stderr
    summary = {"ran": 0, "skipped": 0, "failed": 0, "pruned": 0, "not_applicable": 0, "unloadable": []}
    total = sum(len(_chosen(b, selectors)) for b in budgets) * len(studies) * trials
    clock = {"done": 0, "start": time.perf_counter(), "trained": 0, "trained_s": 0.0}
    for budget in budgets:
        chosen = _chosen(budget, selectors)
        try:
            ds, train, test = runner.prepare_dataset(budget, data_dir)
        except Exception as err:
            message = f"{type(err).__name__}: {err}"
            summary["unloadable"].append((budget.dataset, message))
            print(f"cannot load {budget.dataset}, skipping its trials: {message}", file=stream, flush=True)
            clock["done"] += len(chosen) * len(studies) * trials
            continue
        suggestion = range_test(budget, ds, train, out, precision=precision)
        if progress:
            print(f"{workload_name(budget)}: range test suggests lr {suggestion['center_lr']:.3g} (min-loss lr / 10); "
                  f"learning rates searched in [{suggestion['center_lr'] * LR_RANGE[0]:.3g}, "
                  f"{suggestion['center_lr'] * LR_RANGE[1]:.3g}]", file=stream, flush=True)
        for study in studies:
            for spec in chosen:
                _run_study(budget, ds, train, test, spec, study, trials, suggestion["center_lr"], out,
                           summary, clock, total, precision=precision, retry_failed=retry_failed,
                           stream=stream if progress else None)
        del ds, train, test
    return summary


def _chosen(budget, selectors):
    return [spec for spec in selectors
            if budget.selectors is None or not isinstance(spec, str) or spec in budget.selectors]


def _run_study(budget, ds, train, test, spec, study, trials, suggested_lr, out, summary, clock, total, *,
               precision, retry_failed, stream):
    from loop.selectors import from_string

    workload = workload_name(budget)
    base = from_string(spec) if isinstance(spec, str) else spec
    shared, own = search_space(suggested_lr, base)
    untuned = runner.selector_key(spec)[0]
    best = math.inf
    for k, (shared_point, own_point) in enumerate(trial_points(shared, own, trials, study)):
        label, untuned_label, factory = _selector_factory(spec, own_point)
        trial_budget = dataclasses.replace(budget, learning_rate=shared_point["learning_rate"],
                                           schedule=shared_point["schedule"], horizon=shared_point["horizon"],
                                           warmup=shared_point["warmup"])
        config = {"budget": trial_budget.config(), "selector": label, "study": study, "trial": k,
                  "precision": precision}
        path = trial_path(out, workload, untuned, study, k)
        stored = read_trial(path)
        what = f"{workload} {untuned} study {study} trial {k}"
        if stored is not None and stored.get("config") == config and (
                stored["status"] != "failed" or not retry_failed):
            summary["skipped"] += 1
            best = min(best, time_to_target(stored, budget.target))
            clock["done"] += 1
            _line(stream, clock, total, f"{what}: skipped (already in --out)")
            continue
        _line(stream, clock, total, f"running {what}: {_point_text(shared_point, own_point)}"
              + (f", pruned past {best:.2f}s" if math.isfinite(best) else ""))
        record = runner.train_one(ds, train, test, trial_budget, label, factory, study, precision=precision,
                                  time_limit_s=best if math.isfinite(best) else None)
        record.update({"trial_format": TRIAL_FORMAT, "config": config, "workload": workload, "study": study,
                       "trial": k, "untuned_selector": untuned_label, "trial_selector": label,
                       "hyperparameters": {**shared_point, **own_point}, "time_limit_s":
                       best if math.isfinite(best) else None})
        record["selector"] = untuned_label
        runner.write_json_atomic(path, record)
        summary["ran"] += 1
        summary["failed"] += record["status"] == "failed"
        summary["pruned"] += record["status"] == runner.PRUNED
        summary["not_applicable"] += record["status"] == NOT_APPLICABLE
        seconds = time_to_target(record, budget.target)
        best = min(best, seconds)
        clock["done"] += 1
        clock["trained"] += 1
        clock["trained_s"] += record["wall_s"]
        status = record["status"] if record["status"] != "ok" else (
            f"target at {seconds:.2f}s" if math.isfinite(seconds) else "missed the target")
        if record["status"] == "failed":
            status = f"FAILED {record['error']}"
        _line(stream, clock, total, f"{what}: {status} in {record['wall_s']:.1f}s")


def _point_text(shared, own):
    parts = [f"lr {shared['learning_rate']:.3g}", shared["schedule"], f"horizon {shared['horizon']:.2f}",
             f"warm-up {shared['warmup']:.3f}"]
    return ", ".join(parts + [f"{k}={v}" for k, v in own.items()])


def _line(stream, clock, total, text):
    if stream is None:
        return
    eta = clock["trained_s"] / clock["trained"] * (total - clock["done"]) if clock["trained"] else None
    elapsed = time.perf_counter() - clock["start"]
    print(f"[{clock['done']}/{total}] {text} | elapsed {runner._fmt_seconds(elapsed)}, "
          f"ETA {runner._fmt_seconds(eta)}", file=stream, flush=True)


# ------------------------------------------------------------------------------------------------ results
def _read_all(out):
    paths = sorted(glob.glob(os.path.join(out, "runs", "*", "*", "study_*", "trial_*.json")))
    return [r for r in (read_trial(p) for p in paths) if r is not None]


def load_trials(out):
    """Every stored trial under ``out``, with ``frame`` as a ``pandas.DataFrame``."""
    records = _read_all(out)
    for record in records:
        record["frame"] = _frame(record)
    return records


# -------------------------------------------------------------------------------------------- command line
def add_arguments(parser):
    """Adds ``--tune``, ``--schedule``, ``--warmup`` and ``--horizon`` to the benchmark's command line."""
    from loop.bench.suites import SCHEDULE_SHAPES as SHAPES

    group = parser.add_argument_group("schedules and tuning")
    group.add_argument("--tune", type=int, metavar="K",
                       help="tune every selector with K quasirandom trials per study (a study per seed); scores "
                            "each study by its fastest trial to the target (default: the suite's, 0 for no tuning)")
    group.add_argument("--schedule", choices=SHAPES,
                       help="learning-rate schedule of every run (default constant; loop.schedules)")
    group.add_argument("--warmup", type=float, metavar="FRACTION",
                       help="linear warm-up, a fraction of the horizon in [0, 1) (default 0)")
    group.add_argument("--horizon", type=float, metavar="FRACTION",
                       help="decay horizon, a fraction of each run's own step budget in (0, 1] (default 1)")


def budget_overrides(args):
    """The :class:`loop.bench.suites.Budget` fields that ``--schedule``, ``--warmup`` and ``--horizon`` set."""
    return {name: getattr(args, name) for name in ("schedule", "warmup", "horizon")
            if getattr(args, name, None) is not None}


def with_targets(budgets, targets):
    """The budgets with ``--target`` values (:func:`loop.bench.tables.parse_targets`) as their fixed targets.

    A dataset's own entry wins; else the dataset-free entries.  Tuning reads
    the budget's target while it runs (studies' scores and pruning), so a
    target must be known before the first trial.
    """
    out = []
    for budget in budgets:
        chosen = dict((targets or {}).get(budget.dataset, {})) or dict((targets or {}).get(None, {}))
        out.append(dataclasses.replace(budget, target=chosen, stop_at_target=True) if chosen else budget)
    return out


def trials_of(args, suite):
    """K: ``--tune`` when given, else the suite's ``tune`` (0: no tuning).

    Raises:
        ValueError: a negative ``--tune``.
    """
    k = getattr(args, "tune", None)
    k = getattr(suite, "tune", 0) if k is None else k
    if k < 0:
        raise ValueError(f"--tune must be at least 0 (0: no tuning), got {k}")
    return k


__all__ = ["LR_RANGE", "SHARED_DIMENSIONS", "KINDS", "add_arguments", "available", "budget_overrides",
           "load_trials", "range_test", "read_trial", "run_tuned", "search_space", "time_to_target", "trial_path",
           "trial_points", "trials_of", "with_targets"]
