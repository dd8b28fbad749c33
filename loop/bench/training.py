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
"""

import time
import traceback

import numpy as np

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


def train_one(ds, train, test, workload, hyperparameters, record, make_selector, *, time_limit_s=None):
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

    Raises:
        ValueError: the record's precision is not one of :data:`loop.bench.precision.PRECISIONS`.
    """
    import keras

    precision = record.get("precision") or DEFAULT_PRECISION
    check_precision(precision)
    keras.backend.clear_session()  # before the policy: clear_session resets the global policy to float32
    record["machine"] = records_lib.machine()
    with global_policy(precision):
        return _train(ds, train, test, workload, hyperparameters, record, make_selector, time_limit_s)


def _train(ds, train, test, workload, hp, record, make_selector, time_limit_s):
    import keras

    from loop import Loop, costs, schedules
    from loop.selectors import Selector

    keras.utils.set_random_seed(record["study"])
    val, extra = validation_data(ds, workload, test)
    record.update({"task": ds.task, "metrics": list(ds.metrics), "loss": ds.loss, "target_metric": ds.target_metric,
                   "n_train": int(len(train[1])), "n_test": int(len(test[1])),
                   "n_val": int(len(val[1])) if workload.validation == "split" else None,
                   "time_limit_s": time_limit_s})
    if "label_noise" in ds.extras:
        record["label_noise"] = {k: v for k, v in ds.extras["label_noise"].items() if k != "rows"}
    start = time.perf_counter()
    loop = None
    try:
        model = ds.model(workload.model, **workload.model_kwargs)
        record.update({"model": model.name, "compute_dtype": model.compute_dtype,
                       "init_fingerprint": weights_fingerprint(model)})
        selector = make_selector()
        tasks = getattr(selector, "tasks", None) or Selector.tasks
        if ds.task not in tasks:
            record["status"] = records_lib.NOT_APPLICABLE
            record["error"] = (f"{record['selector']} supports {' and '.join(tasks)} only; {workload.label} is a "
                               f"{ds.task} task")
            return record
        batch_size = hp.batch_size or ds.batch_size
        epochs, steps = schedules.step_budget(selector, workload.epochs, len(train[1]), batch_size)
        record["loop_epochs"] = epochs
        rate = schedules.make_schedule(hp.learning_rate or ds.learning_rate, hp.schedule, steps,
                                       horizon=hp.horizon, warmup=hp.warmup)
        record["schedule"] = {**schedules.describe_schedule(rate), "step_budget": steps}
        optimizer = keras.optimizers.get({"class_name": ds.optimizer, "config": {"learning_rate": rate}})
        loop = Loop(model, optimizer=optimizer, loss=ds.loss, metrics=list(ds.metrics), selector=selector,
                    batch_size=batch_size, seed=record["study"])
        limit = None if time_limit_s is None else TrainTimeLimit(lambda: loop.history, time_limit_s)
        hist = loop.fit(train, epochs=epochs, validation_data=val, verbose=0, target=workload.target,
                        stop_at_target=workload.stop_at_target, extra_evaluations=extra,
                        callbacks=[limit] if limit else None)
        record["frame"] = hist.frame.to_dict(orient="records")
        if limit is not None and limit.stopped_at is not None:
            record["status"] = records_lib.PRUNED
            record["error"] = (f"pruned: training time {limit.stopped_at:.3f}s passed the limit "
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
