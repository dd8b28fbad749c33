"""Trains one trial: prepares a workload's data, builds its model under a precision, fits, and fills the record.

The protocol of one trial: every selector of a study ``s`` starts from the same initial weights
(``keras.utils.set_random_seed(s)`` then the workload's model; the record's ``init_fingerprint`` proves it) and trains
with ``Loop(..., seed=s)`` up to the workload's epoch cap, evaluating once per epoch.  A selector whose epochs are
shorter by design says how many of its epochs match the baseline's steps (``epochs_for_budget``; e.g. DyBAT) and gets
that many (:func:`loop.schedules.step_budget`).  The learning rate follows the hyper-parameters' schedule, its horizon
a fraction of that step budget.  With ``stop_at_target`` a trial ends at its first evaluation that meets the target;
with a pruning limit, at its first evaluation past the limit that does not (status ``pruned``).

Validation: a workload with ``validation="split"`` validates on a split held out of the training set
(``loop.datasets.validation_split``) and evaluates the test set at every evaluation too
(``Loop.fit(extra_evaluations=...)``, timed as evaluation) as ``test_*`` columns that choose nothing.

Every trial records what it cost (``costs``: ``wall_s``, ``flops_per_sample``, RhoLoss's ``irreducible_s``) and
whether it trained alone: ``other_cpu_share``, the share of the machine's CPU other processes took meanwhile
(:mod:`loop.bench.contention`; the report names the studies measured under contention).
"""

import os
import time
import traceback

import numpy as np

from loop.bench import contention
from loop.bench import records as records_lib
from loop.bench.precision import DEFAULT_PRECISION, check_precision, global_policy


def prepare_dataset(workload, data_dir=None):
    """Loads ``workload.dataset`` and cuts the workload's validation split and training and test subsets.

    With ``validation == "split"`` the split is held out of the training set first (``ds.x_val``, ``ds.y_val``),
    then ``label_noise`` is applied to the remaining training labels.  The subsets are drawn with a fixed generator
    (seed 0), so every selector and study trains on the same rows.

    Returns:
        ``(ds, (x_train, y_train), (x_test, y_test))``.
    """
    from loop import datasets

    ds = datasets.load(workload.dataset, data_dir=data_dir, **workload.load_options)
    if workload.validation == "split":
        ds = datasets.validation_split(ds, workload.n_val)
    if workload.label_noise:
        ds = datasets.with_label_noise(ds, workload.label_noise)
    rng = np.random.default_rng(0)
    x_train, y_train, x_test, y_test = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    if workload.n_train is not None and workload.n_train < len(y_train):
        rows = np.sort(rng.permutation(len(y_train))[:workload.n_train])
        x_train, y_train = x_train[rows], y_train[rows]
    if workload.n_test is not None and workload.n_test < len(y_test):
        rows = np.sort(rng.permutation(len(y_test))[:workload.n_test])
        x_test, y_test = x_test[rows], y_test[rows]
    return ds, (x_train, y_train), (x_test, y_test)


def validation_data(ds, workload, test):
    """What a trial validates on, and its extra evaluations: ``(validation_data, extra_evaluations)``."""
    if workload.validation == "split":
        return (ds.x_val, ds.y_val), {"test": test}
    return test, None


def weights_fingerprint(model):
    """A number that changes with any initial weight: proves the trials of a study start alike."""
    return float(sum(np.abs(w).astype(np.float64).sum() for w in model.get_weights()))


def train_one(ds, train, test, workload, hyperparameters, record, make_selector, *, time_limit_s=None,
              calibration=None, irreducible_dir=None):
    """Trains the trial that ``record`` (from :func:`loop.bench.records.new`) plans, fills its outcome and returns
    it; never raises for a failed training (status ``failed``, with the error), so a campaign goes on.

    A selector whose ``tasks`` leave out the dataset's task is not trained (status ``not_applicable``).  The model
    is built and trained under the record's precision (``"mixed_float16"`` trains with a LossScaleOptimizer).

    Args:
        ds, train, test: from :func:`prepare_dataset` for ``workload``.
        workload, hyperparameters: what the record plans (:mod:`loop.bench.workloads`).
        record: the planned record; filled in place.
        make_selector: builds a fresh selector.
        time_limit_s: exact pruning's limit (training-clock seconds), or None.
        calibration: on the seconds clock, :func:`loop.bench.calibration.calibrate`'s result (the budget and the
            evaluation period in seconds); required there.
        irreducible_dir: where a selector with ``fit_irreducible`` (RhoLoss) keeps its irreducible losses, one
            file per study and selector configuration (:func:`irreducible_losses`): computed once, off every
            trial's clock, and reused by every trial of the study; None: it trains them inside the fit, on the
            clock.

    Raises:
        ValueError: the record's precision is not one of :data:`loop.bench.precision.PRECISIONS`.
    """
    import keras

    precision = record.get("precision") or DEFAULT_PRECISION
    check_precision(precision)
    keras.backend.clear_session()  # before the policy: clear_session resets the global policy to float32
    record["machine"] = records_lib.machine()
    if workload.clock == "seconds" and calibration is None:
        raise ValueError(f"{workload.label}: a workload on the seconds clock trains with a calibration "
                         "(loop.bench.calibration.calibrate), which gives its budget and evaluation period in seconds")
    with global_policy(precision):
        return _train(ds, train, test, workload, hyperparameters, record, make_selector, time_limit_s, calibration,
                      irreducible_dir)


def irreducible_losses(ds, train, workload, hp, selector, study, directory):
    """RhoLoss's irreducible losses for one study, computed once and cached (the paper's amortized accounting).

    The file ``<directory>/study_<s>-<configuration>.npz`` (:class:`loop.selectors.rho_loss.IrreducibleLosses`) is
    keyed by the selector's repr, so another holdout or irreducible-loss model gets its own.  On a miss the losses are
    computed as the selector's ``on_train_begin`` would, from study ``s``'s seeded weights
    (``keras.utils.set_random_seed(s)``, then the workload's model), except that the irreducible-loss model trains
    with the dataset's optimizer at its default constant rate, not the trial's schedule: every trial of the study
    shares it, whatever its point (the RHO-LOSS paper's IL model has hyper-parameters of its own).

    Returns:
        ``(path, IrreducibleLosses)``.
    """
    import hashlib
    import os

    import keras

    from loop.selectors.rho_loss import IrreducibleLosses

    configuration = hashlib.sha256(repr(selector).encode()).hexdigest()[:8]
    path = os.path.join(directory, f"study_{study}-{configuration}.npz")
    try:
        return path, IrreducibleLosses.load(path)
    except ValueError:
        pass
    keras.utils.set_random_seed(study)
    model = ds.model(workload.model, **workload.model_kwargs)
    optimizer = keras.optimizers.get({"class_name": ds.optimizer, "config": {"learning_rate": ds.learning_rate}})
    losses = selector.fit_irreducible(*train, model=model, loss=ds.loss, optimizer=optimizer,
                                      batch_size=hp.batch_size or ds.batch_size, seed=study)
    os.makedirs(directory, exist_ok=True)
    losses.save(path)
    keras.backend.clear_session()
    return path, losses


#: On the seconds clock the time budget ends a trial; its epoch cap, in the method's own epochs, is this many times
#: the budget's Shuffle epochs (a cap no method should reach: a pruned epoch is at most this much cheaper).
SECONDS_EPOCH_MARGIN = 20


def _clock_options(workload, hp, selector, n, batch_size, peak, calibration):
    """What the seconds clock gives a fit: ``(epochs, schedule, fit options, record's clock)``."""
    from loop import schedules

    budget_s, period_s = calibration["budget_s"], calibration["eval_period_s"]
    epochs, _ = schedules.step_budget(selector, workload.epochs * SECONDS_EPOCH_MARGIN, n, batch_size)
    clock = schedules.TrainClock()
    horizon_s = hp.horizon * budget_s
    rate = schedules.ClockSchedule(clock, peak, horizon_s, shape=hp.schedule, warmup_s=hp.warmup * horizon_s)
    options = {"eval_every_seconds": period_s, "time_budget_s": budget_s, "train_clock": clock}
    described = {"seconds_per_epoch": calibration["seconds_per_epoch"], "budget_s": budget_s,
                 "eval_period_s": period_s, "horizon_s": horizon_s}
    return epochs, rate, options, described


def _train(ds, train, test, workload, hp, record, make_selector, time_limit_s, calibration, irreducible_dir):
    import keras

    from loop import Loop, costs, schedules
    from loop.selectors import Selector

    selector = make_selector()
    if irreducible_dir is not None and callable(getattr(selector, "fit_irreducible", None)) and \
            getattr(selector, "irreducible", None) is None:
        try:
            path, losses = irreducible_losses(ds, train, workload, hp, selector, record["study"], irreducible_dir)
        except Exception as err:
            record.update(status=records_lib.FAILED, error=f"irreducible losses: {type(err).__name__}: {err}"[:500],
                          traceback=traceback.format_exc()[-4000:])
            return record
        selector.irreducible = path  # read in on_train_begin, left out of the repr
        record["costs"]["irreducible_s"] = losses.seconds  # spent once per study, off every trial's clock
        record["irreducible"] = {"file": os.path.basename(path), "fingerprint": losses.fingerprint(),
                                 "seconds": losses.seconds}
    keras.utils.set_random_seed(record["study"])
    val, extra = validation_data(ds, workload, test)
    record.update({"task": ds.task, "metrics": list(ds.metrics), "loss": ds.loss, "target_metric": ds.target_metric,
                   "n_train": int(len(train[1])), "n_test": int(len(test[1])),
                   "n_val": int(len(val[1])) if workload.validation == "split" else None,
                   "time_limit_s": time_limit_s})
    if "label_noise" in ds.extras:
        record["label_noise"] = {k: v for k, v in ds.extras["label_noise"].items() if k != "rows"}
    start, cpu = time.perf_counter(), contention.CpuMeter()
    loop = None
    try:
        model = ds.model(workload.model, **workload.model_kwargs)
        record.update({"model": model.name, "compute_dtype": model.compute_dtype,
                       "init_fingerprint": weights_fingerprint(model)})
        tasks = getattr(selector, "tasks", None) or Selector.tasks
        if ds.task not in tasks:
            record["status"] = records_lib.NOT_APPLICABLE
            record["error"] = (f"{record['selector']} supports {' and '.join(tasks)} only; {workload.label} is a "
                               f"{ds.task} task")
            return record
        batch_size = hp.batch_size or ds.batch_size
        peak = hp.learning_rate or ds.learning_rate
        clock_options = {}
        if workload.clock == "seconds":
            epochs, rate, clock_options, record["clock"] = _clock_options(workload, hp, selector, len(train[1]),
                                                                          batch_size, peak, calibration)
            record["schedule"] = schedules.describe_schedule(rate)
        else:
            epochs, steps = schedules.step_budget(selector, workload.epochs, len(train[1]), batch_size)
            rate = schedules.make_schedule(peak, hp.schedule, steps, horizon=hp.horizon, warmup=hp.warmup)
            record["schedule"] = {**schedules.describe_schedule(rate), "step_budget": steps}
        record["loop_epochs"] = epochs
        if callable(getattr(selector, "scaled_learning_rate", None)):  # a selector that moves the rate (KAKURENBO)
            rate = selector.scaled_learning_rate(rate)
        optimizer = keras.optimizers.get({"class_name": ds.optimizer, "config": {"learning_rate": rate}})
        loop = Loop(model, optimizer=optimizer, loss=ds.loss, metrics=list(ds.metrics), selector=selector,
                    batch_size=batch_size, seed=record["study"], jit_compile=bool(record.get("jit_compile")))
        limit = pruned_at = None
        if time_limit_s is not None and workload.clock == "seconds":
            # Exact pruning on the clock itself: the fit stops at the first chunk boundary past the limit.
            clock_options["time_budget_s"] = min(clock_options["time_budget_s"], float(time_limit_s))
        elif time_limit_s is not None:
            limit = TrainTimeLimit(lambda: loop.history, time_limit_s)
        hist = loop.fit(train, epochs=epochs, validation_data=val, verbose=0, target=workload.target,
                        stop_at_target=workload.stop_at_target, extra_evaluations=extra,
                        callbacks=[limit] if limit else None, **clock_options)
        record["frame"] = hist.frame.to_dict(orient="records")
        if limit is not None:
            pruned_at = limit.stopped_at
        elif time_limit_s is not None and hist.rows:
            from loop import history as history_lib

            last = hist.rows[-1]
            if last["train_time_s"] >= time_limit_s and not history_lib.reached(last, hist.target):
                pruned_at = float(last["train_time_s"])
        if pruned_at is not None:
            record["status"] = records_lib.PRUNED
            record["error"] = (f"pruned: training time {pruned_at:.3f}s passed the limit "
                               f"{time_limit_s:.3f}s before the target")
        record["costs"]["flops_per_sample"] = costs.forward_flops(model, train[0])  # after the fit: never timed
    except Exception as err:  # a failed trial is a result, not a crash of the campaign
        record["status"] = records_lib.FAILED
        record["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        record["traceback"] = traceback.format_exc()[-4000:]
        if loop is not None and loop.history is not None and loop.history.rows:
            record["frame"] = loop.history.frame.to_dict(orient="records")
    finally:
        record["costs"]["wall_s"] = time.perf_counter() - start
        record["costs"]["other_cpu_share"] = cpu.share()  # measured alone? (loop.bench.contention)
    return record


def _time_limit_class():
    import keras

    class _TrainTimeLimit(keras.callbacks.Callback):
        """Stops a fit at the first evaluation whose ``train_time_s`` exceeds ``limit_s`` before the target."""

        def __init__(self, history, limit_s):
            super().__init__()
            self.history, self.limit_s, self.stopped_at = history, float(limit_s), None

        def on_epoch_end(self, epoch, logs=None):
            from loop import history as history_lib

            history = self.history()
            if history is None or not history.rows:
                return
            row = history.rows[-1]
            if row["train_time_s"] > self.limit_s and not history_lib.reached(row, history.target):
                self.stopped_at = float(row["train_time_s"])
                self.model.stop_training = True

    return _TrainTimeLimit


def TrainTimeLimit(history, limit_s):  # noqa: N802  (a class, built on first use so keras loads lazily)
    """A Keras callback that stops a ``Loop.fit`` at the first evaluation whose training clock passed ``limit_s``.

    It reads the last history row at every epoch end (after that epoch's
    evaluation); a row that meets the fit's target never stops the fit.

    Args:
        history: a zero-argument function returning the loop's :class:`loop.history.History`.
        limit_s: the training-time limit in seconds (training plus selection, evaluation excluded).

    Returns:
        The callback; its ``stopped_at`` is the training time at which it stopped the fit, or None.
    """
    return _time_limit_class()(history, limit_s)


__all__ = ["TrainTimeLimit", "prepare_dataset", "train_one", "validation_data", "weights_fingerprint"]
