"""The seconds clock's unit: how long one Shuffle epoch of a workload trains on this machine.

A workload on the seconds clock (``Workload(clock="seconds")``) states its budget and evaluation period in Shuffle
epochs, a hardware-neutral unit; a campaign turns them into training-clock seconds once per workload, before any
trial, by timing Shuffle (:func:`calibrate`): the study-0 model trained with seeded shuffling at the dataset's default
learning rate for at least two epochs and 200 steps, and the median seconds of its
epochs after the first (tracing is outside the clock already; the first epoch also warms caches).  Every method then
gets the same number of seconds: ``budget_s = epochs * seconds_per_epoch``, evaluations every ``eval_period *
seconds_per_epoch`` seconds, schedules over ``horizon * budget_s`` seconds.  AlgoPerf fixes its budgets per
workload and hardware the same way (a maximum runtime, an evaluation period in seconds).

The result is cached in ``<out>/calibration/<workload>.json`` with the machine that measured it, so that every trial
of a results directory uses one unit, also when a campaign resumes; the budget and evaluation period are applied to
the cached seconds on every read, so a suite that changes them keeps the measurement.  A campaign resumed on other
hardware (another CPU model, instruction set, core count or GPU) warns: its times would not compare with the stored
ones.
"""

import math
import os
import time
import warnings

import numpy as np

from loop.bench import records as records_lib
from loop.bench import store as store_lib
from loop.bench.precision import DEFAULT_PRECISION, global_policy

#: The fewest Shuffle epochs and steps a calibration times.
MIN_EPOCHS, MIN_STEPS = 2, 200

#: The machine fields whose change makes a cached unit another machine's (the host name may change freely).
_HARDWARE = ("cpu", "instruction_set", "cores", "gpus")


def cache_key(workload, hyperparameters, precision):
    """What the seconds per epoch depend on: the workload without its target, budget and evaluation period (which
    :func:`calibrate` applies to the cached seconds on every read), the batch size and the precision."""
    skipped = ("target", "stop_at_target", "eval_period", "epochs")
    config = {k: v for k, v in workload.config().items() if k not in skipped}
    return {**config, "batch_size": hyperparameters.batch_size, "precision": precision}


def _in_seconds(stored, workload):
    """The cached measurement with the workload's budget and evaluation period in seconds."""
    per_epoch = stored["seconds_per_epoch"]
    return {**stored, "budget_s": per_epoch * workload.epochs,
            "eval_period_s": per_epoch * workload.eval_period if workload.eval_period else None}


def calibrate(workload, hyperparameters, data, out, *, precision=DEFAULT_PRECISION, check_machine=True):
    """Shuffle's seconds per epoch of ``workload`` on this machine, measured once and cached.

    Args:
        workload, hyperparameters: the workload and the entry's hyper-parameters (their batch size).
        data: a zero-argument function returning :func:`loop.bench.training.prepare_dataset`'s ``(ds, train,
            test)``; called only when the cache misses.
        out: the results directory.
        precision: the ``keras.mixed_precision`` policy.
        check_machine: warn when a cached unit was measured on other hardware than this process's (off for a Ray
            driver, whose workers measured it).

    Returns:
        The cached dict: ``seconds_per_epoch``, ``budget_s`` (``workload.epochs`` of them), ``eval_period_s``,
        ``epoch_seconds`` (every epoch timed), ``steps_per_epoch``, ``machine``, ``wall_s``.
    """
    path = os.path.join(out, "calibration", f"{workload.label}.json")
    key = cache_key(workload, hyperparameters, precision)
    stored = store_lib.read_cached(path, key)
    if stored is not None:
        here = records_lib.machine() if check_machine else stored["machine"]
        if {k: stored["machine"].get(k) for k in _HARDWARE} != {k: here.get(k) for k in _HARDWARE}:
            warnings.warn(f"{workload.label}: the seconds clock's unit in {path} was measured on "
                          f"{records_lib.hardware({'machine': stored['machine']})}, and this machine is "
                          f"{records_lib.hardware({'machine': here})}: its trials' budgets and evaluation "
                          "periods stay in the measured unit, but their times do not compare with the stored "
                          "ones; use another --out for another machine", RuntimeWarning, stacklevel=2)
        return _in_seconds(stored, workload)
    import keras

    from loop import Loop
    from loop.selectors import Shuffle

    ds, train, _ = data()
    start = time.perf_counter()
    keras.backend.clear_session()
    batch_size = hyperparameters.batch_size or ds.batch_size
    steps_per_epoch = math.ceil(len(train[1]) / batch_size)
    epochs = max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))
    with global_policy(precision):
        keras.utils.set_random_seed(0)
        model = ds.model(workload.model, **workload.model_kwargs)
        optimizer = keras.optimizers.get({"class_name": ds.optimizer, "config": {"learning_rate": ds.learning_rate}})
        loop = Loop(model, optimizer=optimizer, loss=ds.loss, metrics=list(ds.metrics), selector=Shuffle(),
                    batch_size=batch_size, seed=0)
        frame = loop.fit(train, epochs=epochs, verbose=0).frame
    seconds = np.diff(np.concatenate([[0.0], frame["train_time_s"].to_numpy(dtype=float)]))
    per_epoch = float(np.median(seconds[1:]))
    record = {"key": key, "workload": workload.label, "seconds_per_epoch": per_epoch,
              "epoch_seconds": [float(s) for s in seconds], "steps_per_epoch": steps_per_epoch,
              "machine": records_lib.machine(), "wall_s": time.perf_counter() - start}
    store_lib.write_json_atomic(path, record)
    return _in_seconds(record, workload)


__all__ = ["MIN_EPOCHS", "MIN_STEPS", "cache_key", "calibrate"]
