"""The search of a tuned campaign (``--tune K``): K quasirandom trials per workload, selector and study.

The protocol (AlgoPerf's rule, Dahl et al., "Benchmarking Neural Network Training Algorithms", 2023: every method
gets the same tuning budget, and it is scored by the time to a fixed target):

* **Study** ``s``: K trials of one selector, each trained with seed ``s`` (:mod:`loop.bench.training`), so the
  studies of every selector start from the same weights.  A study's score is its **fastest trial to the target**;
  a study in which no trial meets it is a miss.
* **Search space** (:func:`search_space`): the shared dimensions, the same for every selector, are the peak
  learning rate, log-uniform in ``[suggestion / 10, 3 * suggestion]`` around the learning-rate range test's
  suggestion (:func:`range_test`: :func:`loop.lr_range.lr_range_test`, one pass of at least 100 steps; the
  suggestion is its ``conservative_lr``, a tenth of the rate at the smoothed loss's minimum; docs/bench.md), run
  once per workload from the study-0 weights on the training loss only, and cached in
  ``<out>/lr_range/<workload>.json``; then the schedule shape (``constant``, ``cosine`` or ``linear``), the decay
  horizon (a fraction of the method's own step budget, uniform in ``[0.3, 1]``) and the warm-up (a fraction of the
  horizon, uniform in ``[0, 0.1]``).  Then the selector's own knobs: its class attribute ``tune_space``
  (``{"ratio": ("uniform", 0.1, 0.5)}``; kinds ``"uniform"``, ``"log-uniform"``, ``"int"`` (both ends included)
  and ``"choice"``).
* **Points**: scrambled Halton sequences (``scipy.stats.qmc.Halton``, fixed seeds).  On the seconds clock
  (:func:`pooled_points`, AlgoPerf's rule) one pool of :data:`POOL` points per workload is dealt to the studies in
  a seeded random order, so no trial index is tied to one corner of the space; the learning rate spans
  :data:`SECONDS_LR_RANGE` of the suggestion and the horizon a tenth to all of the time budget
  (:data:`SECONDS_DIMENSIONS`).  On the epochs clock (:func:`trial_points`, the older suites) the shared dimensions
  come from one engine seeded by the study alone.  Either way the selector's own knobs come from a second engine,
  so trial ``k`` of study ``s`` has the same learning rate, shape, horizon and warm-up for every selector.
* **Exact pruning** (:mod:`loop.bench.campaign`): a trial whose training clock passes its study's best time so far
  cannot win, so it stops at its first evaluation past that time, stored as ``pruned``.
"""

import dataclasses
import math
import os
import time
import zlib

import numpy as np

from loop.bench import store as store_lib
from loop.bench.precision import DEFAULT_PRECISION, global_policy

#: The learning-rate range of the search, as multiples of the range test's suggestion.
LR_RANGE = (0.1, 3.0)

#: The shared dimensions after the learning rate: (name, kind, *arguments).
SHARED_DIMENSIONS = (("schedule", "choice", ("constant", "cosine", "linear")),
                     ("horizon", "uniform", 0.3, 1.0),
                     ("warmup", "uniform", 0.0, 0.1))

#: The seconds clock's search (the one-clock protocol): the learning rate log-uniform in [0.3, 5] x the range
#: test's suggestion (the epochs clock's [0.1, 3] never had a winner below 0.35x in results/tuned-v2, and spirals'
#: winners reached 2.9x, its top); the horizon log-uniform over a tenth to all of the time budget; the warm-up.
SECONDS_LR_RANGE = (0.3, 5.0)
SECONDS_DIMENSIONS = (("schedule", "choice", ("constant", "cosine", "linear")),
                      ("horizon", "log-uniform", 0.1, 1.0),
                      ("warmup", "uniform", 0.0, 0.1))

#: Points in a workload's search pool (:func:`pooled_points`): enough for 32 studies of 8 trials.
POOL = 256

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


def search_space(suggested_lr, selector, clock="epochs"):
    """The search space of one selector on one workload: the shared dimensions, then the selector's own.

    Args:
        suggested_lr: the range test's suggestion; the learning rate is log-uniform in ``[suggested_lr * 0.1,
            suggested_lr * 3]`` (:data:`LR_RANGE`) on the epochs clock, in ``[suggested_lr * 0.3, suggested_lr *
            5]`` (:data:`SECONDS_LR_RANGE`) on the seconds clock.
        selector: a selector object; its class attribute ``tune_space`` gives its own dimensions.
        clock: the workload's clock (:data:`loop.bench.workloads.CLOCKS`): which shared dimensions.

    Returns:
        ``(shared, own)``: lists of ``(name, kind, args)``.

    Raises:
        ValueError: a bad ``suggested_lr`` or ``tune_space`` entry, or a knob that is not a constructor argument.
    """
    if not (isinstance(suggested_lr, (int, float)) and math.isfinite(suggested_lr) and suggested_lr > 0):
        raise ValueError(f"the learning-rate suggestion must be a positive number, got {suggested_lr!r}")
    low, high = SECONDS_LR_RANGE if clock == "seconds" else LR_RANGE
    shared = [("learning_rate", "log-uniform", (suggested_lr * low, suggested_lr * high))]
    dimensions = SECONDS_DIMENSIONS if clock == "seconds" else SHARED_DIMENSIONS
    shared += [(name, *check_dimension(name, (kind, *args))) for name, kind, *args in dimensions]
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


def _values(dimensions, units):
    return {name: map_unit(kind, args, units[i]) for i, (name, kind, args) in enumerate(dimensions)}


def pooled_points(shared, own, count, study, workload):
    """The ``count`` trial points of a study drawn from its workload's pool: ``[(shared_values, own_values,
    units), ...]``, ``units`` the points' coordinates in ``[0, 1)`` by dimension name.

    AlgoPerf's rule: one pool of :data:`POOL` scrambled Halton points per workload (seeded by the workload's name),
    dealt to studies in a seeded random order, ``count`` each: study ``s`` gets the pool's points at positions
    ``order[s * count:(s + 1) * count]``.  So no trial index is tied to a fixed corner of the space, and trial
    ``k`` of study ``s`` has the same shared values for every selector; the selector's own knobs come from a second
    pool of the workload dealt the same way.

    Raises:
        ValueError: ``(study + 1) * count`` exceeds the pool.
    """
    if (study + 1) * count > POOL:
        raise ValueError(f"{workload}: study {study} with {count} trials needs {(study + 1) * count} points of the "
                         f"search pool, which has {POOL}; run fewer studies or trials")
    seed = zlib.crc32(workload.encode())
    order = np.random.default_rng([_SHARED_STREAM, seed]).permutation(POOL)[study * count:(study + 1) * count]
    shared_units = unit_points(len(shared), POOL, _stream_seed(_SHARED_STREAM, seed))[order]
    own_units = unit_points(len(own), POOL, _stream_seed(_OWN_STREAM, seed))[order]
    found = []
    for k in range(count):
        units = {name: float(u) for (name, *_), u in zip(shared + own, [*shared_units[k], *own_units[k]])}
        found.append((_values(shared, shared_units[k]), _values(own, own_units[k]), units))
    return found


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


def points(search_base, shared, own, count, study, workload=None):
    """The trials of a study as ``[(Hyperparameters, knobs, units), ...]``, the entry's hyper-parameters
    ``search_base`` with the shared dimensions replaced (its batch size stays).

    With ``workload`` (a name: the seconds clock) the points come from the workload's pool
    (:func:`pooled_points`); without it, from the study's own engines (:func:`trial_points`, the epochs clock's
    search), and ``units`` is None.
    """
    if workload is not None:
        return [(dataclasses.replace(search_base, **shared_point), own_point, units)
                for shared_point, own_point, units in pooled_points(shared, own, count, study, workload)]
    return [(dataclasses.replace(search_base, **shared_point), own_point, None)
            for shared_point, own_point in trial_points(shared, own, count, study)]


def check_trials(trials):
    """Returns K after checking it is a positive integer.

    Raises:
        ValueError: another value.
    """
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 1:
        raise ValueError(f"trials (--tune) must be a positive integer, got {trials!r}")
    return int(trials)


def cache_key(workload, hyperparameters, precision):
    """What the cached range test depends on: the workload without its target and epoch cap, the batch size and
    the precision."""
    config = {k: v for k, v in workload.config().items() if k not in ("target", "stop_at_target", "epochs")}
    return {**config, "batch_size": hyperparameters.batch_size, "precision": precision}


def _layout1_key(workload, hyperparameters, precision):
    """The key layout 1 cached the range test under (fields added after the ``full`` suite left out at their
    defaults), so that a search resumed over an older results directory reuses its range tests."""
    config = {"dataset": workload.dataset, "n_train": workload.n_train, "n_test": workload.n_test,
              "model": workload.model, "batch_size": hyperparameters.batch_size,
              "load_options": workload.load_options}
    later = {"validation": (workload.validation, "test"), "n_val": (workload.n_val, None),
             "workload": (workload.name, None), "label_noise": (workload.label_noise, 0.0),
             "model_kwargs": (workload.model_kwargs, {})}
    config.update({name: value for name, (value, default) in later.items() if value != default})
    return {**config, "precision": precision}


def range_test(workload, hyperparameters, data, out, *, precision=DEFAULT_PRECISION):
    """The learning-rate range test of a workload, run once and cached in ``<out>/lr_range/<workload>.json``.

    The model is built after ``keras.utils.set_random_seed(0)`` (study 0's weights) and swept over one pass of the
    training rows, at least 100 steps, with the dataset's optimizer and the batch size
    (:func:`loop.lr_range.lr_range_test`; the training loss only).

    Args:
        workload, hyperparameters: the workload and the entry's hyper-parameters (their batch size).
        data: a zero-argument function returning :func:`loop.bench.training.prepare_dataset`'s ``(ds, train,
            test)``; called only when the cache misses.
        out: the results directory.
        precision: the ``keras.mixed_precision`` policy.

    Returns:
        The cached dict: ``center_lr`` (the search's centre, the test's ``conservative_lr``), ``suggested_lr``
        (steepest descent), ``conservative_lr``, ``min_loss_lr``, ``diverged_step``, ``num_steps``, ``wall_s``.
    """
    path = os.path.join(out, "lr_range", f"{workload.label}.json")
    key = cache_key(workload, hyperparameters, precision)
    stored = store_lib.read_cached(path, key, _layout1_key(workload, hyperparameters, precision))
    if stored is not None:
        return stored
    import keras

    from loop.lr_range import lr_range_test

    ds, train, _ = data()
    keras.backend.clear_session()
    start = time.perf_counter()
    with global_policy(precision):
        keras.utils.set_random_seed(0)
        model = ds.model(workload.model, **workload.model_kwargs)
        batch_size = hyperparameters.batch_size or ds.batch_size
        result = lr_range_test(model, *train, loss=ds.loss, optimizer=ds.optimizer, batch_size=batch_size,
                               num_steps=max(100, math.ceil(len(train[1]) / batch_size)), seed=0)
    record = {"key": key, "workload": workload.label, "center_lr": float(result.conservative_lr),
              "suggested_lr": float(result.suggested_lr), "conservative_lr": float(result.conservative_lr),
              "min_loss_lr": float(result.min_loss_lr), "diverged_step": result.diverged_step,
              "num_steps": result.num_steps, "wall_s": time.perf_counter() - start}
    store_lib.write_json_atomic(path, record)
    return record


def describe_point(hyperparameters, knobs):
    """A trial point as a short text: ``lr 0.0123, cosine, horizon 0.50, warm-up 0.020, ratio=0.3``."""
    hp = hyperparameters
    parts = [f"lr {hp.learning_rate:.3g}", hp.schedule, f"horizon {hp.horizon:.2f}", f"warm-up {hp.warmup:.3f}"]
    return ", ".join(parts + [f"{k}={v}" for k, v in knobs.items()])


__all__ = ["KINDS", "cache_key", "LR_RANGE", "POOL", "SECONDS_DIMENSIONS", "SECONDS_LR_RANGE", "SHARED_DIMENSIONS",
           "check_dimension", "check_trials", "describe_point", "map_unit", "points", "pooled_points", "range_test",
           "search_space", "trial_points", "unit_points"]
