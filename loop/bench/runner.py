"""Runs dataset x selector x seed trainings and stores each one, atomically, as JSON.

The protocol: for a given dataset and seed every selector starts from the same
initial weights (``keras.utils.set_random_seed(seed)`` then ``ds.model()``; the
runner records a fingerprint of those weights to prove it), trains with
``Loop(..., seed=seed)`` for the dataset's fixed epoch budget, evaluates once
per epoch and never stops early.  A selector that trains fewer steps per epoch
by design and says how many epochs match the baseline's gradient steps
(``selector.epochs_for_budget(epochs, num_samples, batch_size)``, e.g. DyBAT, whose
epochs are rounds over its hardest batches) gets that many epochs instead.  Targets are applied afterwards, from the
stored histories (:mod:`loop.bench.tables`), so the same runs answer any
target.

Validation: a budget with ``validation="split"`` validates on a split held
out of the training set (``loop.datasets.validation_split``): its ``val_*``
columns, target and ``stop_at_target`` read that split, and the test set is
evaluated at every evaluation too (``Loop.fit(extra_evaluations=...)``,
timed as evaluation) into ``test_*`` columns that choose nothing.  The older
budgets (``validation="test"``) validate on the test set as before.  A
workload variant (``Budget.workload``, e.g. label noise on the training
labels, applied after the split) is stored and tabled under its own name.

Each finished run is one file ``<out>/runs/<dataset>/<selector>/seed_<k>.json``
written to a temporary name and moved into place with ``os.replace``, so a
killed suite leaves either a whole file or none.  A run that raises (a loss
that becomes NaN, a selector error) is stored with ``status: "failed"`` and its
error, and the suite goes on.  A selector that does not support the dataset's
task (``selector.tasks``) is stored as ``not_applicable`` without training, and
the tables leave it out.  Re-running with the same ``out`` skips every run
whose file exists with the same budget.

Auto seeds (``--seeds auto:MIN:MAX``, :func:`run_auto`): MIN seeds for every
dataset and selector, then rounds that add one seed to each (dataset,
selector) pair whose paired wall-clock speedup's 95% interval still contains 1
(and to the baseline, when it lacks that seed), until every interval excludes
1 or the pair has MAX seeds.  Each round decides from what the results
directory holds, so a killed auto run resumes where it stopped.

Learning rate: the budget's peak rate follows ``budget.schedule`` (:mod:`loop.schedules`; ``constant`` by
default), over the selector's own step budget (:func:`loop.schedules.step_budget`); the run file's ``schedule``
says what trained.  A run given ``time_limit_s`` (tuning's exact pruning, :mod:`loop.bench.tuning`) stops at its
first evaluation past that training time without meeting the target, with status ``pruned``.

Precision: ``precision`` names the ``keras.mixed_precision`` policy every run
trains under (``"float32"``, ``"mixed_bfloat16"`` or ``"mixed_float16"``; see
:data:`PRECISIONS`).  It is set as the global policy before the run's model is
built (and the previous policy is put back after the run), and stored in the
run's file.  One results directory holds runs of one precision, so that the
tables never compare a selector's run with a baseline of another precision:
:func:`run_suite` refuses an ``out`` that holds runs of another precision
(runs stored before precisions were recorded count as ``"float32"``).
"""

import contextlib
import copy
import dataclasses
import glob
import hashlib
import inspect
import json
import math
import os
import re
import sys
import time
import traceback

import numpy as np

from loop.bench.tables import NOT_APPLICABLE

#: Bumped when the run file's layout changes.
RUN_FORMAT = 1

#: The precisions a benchmark can train in: ``keras.mixed_precision`` policy names.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

#: The precision of a run file written before precisions were recorded.
DEFAULT_PRECISION = "float32"


def check_precision(precision, name="precision"):
    """Returns ``precision`` if it is one of :data:`PRECISIONS`.

    Raises:
        ValueError: another value, naming it (as ``name``, e.g. ``"--precision"``) and the choices.
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"{name} {precision!r} is not a precision the benchmark trains in; choose "
                         f"{', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]} (keras.mixed_precision policy names; "
                         f"the default is {DEFAULT_PRECISION})")
    return precision


def add_precision_argument(parser):
    """Adds ``--precision`` to a command line; :func:`parse_precision` checks it."""
    parser.add_argument("--precision", default=DEFAULT_PRECISION, metavar="{" + ",".join(PRECISIONS) + "}",
                        help="the keras.mixed_precision policy the models are built and trained in (default "
                             f"{DEFAULT_PRECISION}); mixed_float16 trains with a LossScaleOptimizer")


def parse_precision(parser, args):
    """``args.precision``, after ``parser.error`` (exit status 2) for a value that is not one of :data:`PRECISIONS`."""
    try:
        return check_precision(args.precision, "--precision")
    except ValueError as err:
        parser.error(str(err))


def run_precision(record):
    """The precision a stored run trained in."""
    return record.get("precision") or DEFAULT_PRECISION


def check_out_precision(out, precision):
    """Raises ``ValueError`` when the results directory ``out`` holds runs of another precision than ``precision``."""
    other = {}
    for path in sorted(glob.glob(os.path.join(out, "runs", "*", "*", "seed_*.json"))):
        record = read_run(path)
        if record is not None and run_precision(record) != precision:
            other.setdefault(run_precision(record), os.path.relpath(path, out))
    if other:
        found = "; ".join(f"{name} (e.g. {example})" for name, example in sorted(other.items()))
        raise ValueError(f"results directory (--out) {out!r} holds runs trained in another precision than "
                         f"{precision}: {found}. One results directory holds one precision, so that its tables "
                         f"compare like with like: give another --out for {precision}, or resume this one with "
                         f"--precision {sorted(other)[0]}")


def selector_key(selector):
    """The (label, factory) of a selector given as a string spec or as an object/function.

    The label is how the selector reads in tables (``DyBAT(delta=0.5)``; a
    spec's is :func:`spec_label`); the factory builds a fresh selector for each
    run, so no state leaks between runs.

    Raises:
        ValueError: an unknown selector name or hyper-parameter, or an import path that builds no selector
            (from ``from_string``).
    """
    from loop.selectors import describe, from_string

    if isinstance(selector, str):
        return spec_label(selector, from_string(selector)), lambda: from_string(selector)
    if not callable(selector):
        raise ValueError(f"a selector must be a string such as 'dybat:delta=0.5' or a callable, got {selector!r}")
    label = describe(selector)
    if re.search(r" at 0x[0-9A-Fa-f]+", label):  # Python's default repr: a memory address that changes every run
        label = object_label(selector)
    return label, lambda: copy.deepcopy(selector)


def object_label(selector):
    """A label for an object whose repr is Python's default: its class and a digest of its attributes.

    Stable across processes (a resumed suite finds the stored runs), and two
    objects of one class with other attribute values get other labels:
    ``my_module.Sampler(#1a2b3c4d)``.
    """
    cls = type(selector)
    state = repr(sorted((k, repr(v)) for k, v in vars(selector).items())) if hasattr(selector, "__dict__") else ""
    return f"{cls.__module__}.{cls.__qualname__}(#{hashlib.sha1(state.encode()).hexdigest()[:8]})"


def spec_label(spec, selector):
    """The table label of ``selector``, built from the string ``spec``: stable across processes and readable.

    An object reads as its repr (``DyBAT(delta=0.5)``, ``HardestFirst(power=2)``:
    every :class:`loop.selectors.Selector`); a function, or an object whose
    repr holds a memory address (Python's default), reads as its spec written
    one way (:func:`loop.selectors.plugins.canonical`: ``my_module:hardest_first``
    also for ``my_module.hardest_first``), so that a resumed run finds its
    stored runs.
    """
    from loop.selectors import describe, plugins, registered

    label = describe(selector)
    if inspect.isroutine(selector) or re.search(r" at 0x[0-9A-Fa-f]+", label):
        return plugins.canonical(spec, registered())
    return label


def slug(text):
    """A file-system-safe, collision-free name for ``text``."""
    readable = re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")[:60] or "selector"
    return f"{readable}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def run_path(out, dataset, label, seed):
    """Where the run of ``dataset`` x selector ``label`` x ``seed`` is stored."""
    return os.path.join(out, "runs", dataset, slug(label), f"seed_{seed}.json")


def write_json_atomic(path, payload):
    """Writes ``payload`` as JSON to ``path`` through a temporary file and ``os.replace``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(payload, f, default=_jsonable)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def read_record(path, key="format", version=RUN_FORMAT):
    """The JSON record at ``path`` whose ``key`` is ``version``, or None when it is missing, unreadable or another."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get(key) == version else None


def read_run(path):
    """The stored run at ``path``, or None when it is missing or unreadable."""
    return read_record(path)


def prepare_dataset(budget, data_dir=None):
    """Loads ``budget.dataset`` and cuts the training and test subsets of the budget.

    With ``budget.validation == "split"`` the validation split is held out of
    the training set first (``ds.x_val``, ``ds.y_val`` of the returned
    dataset; see :func:`validation_data`), then ``budget.label_noise`` is
    applied to the remaining training labels.  The subsets are drawn with a
    fixed generator (seed 0), so every selector and seed trains on the same
    rows.

    Returns:
        ``(ds, (x_train, y_train), (x_test, y_test))``.
    """
    from loop import datasets

    ds = datasets.load(budget.dataset, data_dir=data_dir, **budget.load_options)
    if budget.validation == "split":
        ds = datasets.validation_split(ds, budget.n_val)
    if budget.label_noise:
        ds = datasets.with_label_noise(ds, budget.label_noise)
    rng = np.random.default_rng(0)
    x_train, y_train, x_test, y_test = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    if budget.n_train is not None and budget.n_train < len(y_train):
        rows = np.sort(rng.permutation(len(y_train))[:budget.n_train])
        x_train, y_train = x_train[rows], y_train[rows]
    if budget.n_test is not None and budget.n_test < len(y_test):
        rows = np.sort(rng.permutation(len(y_test))[:budget.n_test])
        x_test, y_test = x_test[rows], y_test[rows]
    return ds, (x_train, y_train), (x_test, y_test)


def validation_data(ds, budget, test):
    """What a run of ``budget`` validates on, and its extra evaluations: ``(validation_data, extra_evaluations)``.

    ``validation="split"``: the held-out split, and ``{"test": test}``; else the test set and nothing more.
    """
    if budget.validation == "split":
        return (ds.x_val, ds.y_val), {"test": test}
    return test, None


def weights_fingerprint(model):
    """A number that changes with any initial weight: proves runs of a seed start alike."""
    return float(sum(np.abs(w).astype(np.float64).sum() for w in model.get_weights()))


@contextlib.contextmanager
def global_policy(precision):
    """Sets the ``keras.mixed_precision`` global policy ``precision`` (checked); puts the previous one back after."""
    import keras

    check_precision(precision)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def train_one(ds, train, test, budget, label, make_selector, seed, precision=DEFAULT_PRECISION, *,
              time_limit_s=None):
    """Trains one run and returns its record (status ``ok``, ``failed``, ``not_applicable`` or ``pruned``); never
    raises.

    A selector whose ``tasks`` attribute leaves out the dataset's task (the
    class-based selectors on a regression dataset) is not trained: its record
    says ``not_applicable`` and why.  The model is built and trained under the
    global policy ``precision`` (:data:`PRECISIONS`; under ``"mixed_float16"``
    the loop wraps the optimizer in a ``LossScaleOptimizer``).

    The learning rate follows ``budget.schedule`` (:mod:`loop.schedules`), its
    horizon a fraction of the selector's own step budget
    (:func:`loop.schedules.step_budget` of the epoch cap); the record's
    ``schedule`` says which rate or schedule trained and that step budget.

    With ``time_limit_s`` (tuning's exact pruning, :mod:`loop.bench.tuning`)
    the fit stops at the first evaluation whose training clock
    (``train_time_s``) has passed ``time_limit_s`` without meeting the target;
    the record's status is then ``pruned`` and its frame ends there.

    Raises:
        ValueError: ``precision`` is not one of :data:`PRECISIONS` (checked before anything runs).
    """
    import keras

    check_precision(precision)
    keras.backend.clear_session()  # before the policy: clear_session resets the global policy to float32
    with global_policy(precision):
        return _train_one(ds, train, test, budget, label, make_selector, seed, precision, time_limit_s)


def _train_one(ds, train, test, budget, label, make_selector, seed, precision, time_limit_s=None):
    import keras

    from loop import Loop, costs, schedules
    from loop.selectors import Selector

    keras.utils.set_random_seed(seed)
    val, extra = validation_data(ds, budget, test)
    record = {"format": RUN_FORMAT, "dataset": budget.name, "selector": label, "seed": seed,
              "budget": budget.config(), "precision": precision, "task": ds.task, "metrics": list(ds.metrics),
              "loss": ds.loss, "target_metric": ds.target_metric, "n_train": int(len(train[1])),
              "n_test": int(len(test[1])), "status": "ok", "error": None, "frame": [], "wall_s": None}
    if budget.validation == "split":
        record["validation"] = "split"
        record["n_val"] = int(len(val[1]))
    if budget.workload:
        record["source_dataset"] = budget.dataset
    if "label_noise" in ds.extras:
        record["label_noise"] = {k: v for k, v in ds.extras["label_noise"].items() if k != "rows"}
    start = time.perf_counter()
    loop = None
    try:
        model = ds.model(budget.model, **budget.model_kwargs)
        record["model"] = model.name
        record["compute_dtype"] = model.compute_dtype  # what the policy gave the model, e.g. bfloat16
        record["init_fingerprint"] = weights_fingerprint(model)
        selector = make_selector()
        tasks = getattr(selector, "tasks", None) or Selector.tasks
        if ds.task not in tasks:
            record["status"] = NOT_APPLICABLE
            record["error"] = (f"{label} supports {' and '.join(tasks)} only; {budget.name} is a {ds.task} "
                               "task")
            record["wall_s"] = time.perf_counter() - start
            return record
        batch_size = budget.batch_size or ds.batch_size
        # The epoch cap in the selector's own epochs (e.g. DyBAT: same gradient steps as the baseline) and steps.
        epochs, steps = schedules.step_budget(selector, budget.epochs, len(train[1]), batch_size)
        record["loop_epochs"] = epochs
        rate = schedules.make_schedule(budget.learning_rate or ds.learning_rate, budget.schedule, steps,
                                       horizon=budget.horizon, warmup=budget.warmup)
        record["schedule"] = {**schedules.describe_schedule(rate), "step_budget": steps}
        optimizer = keras.optimizers.get({"class_name": ds.optimizer, "config": {"learning_rate": rate}})
        loop = Loop(model, optimizer=optimizer, loss=ds.loss, metrics=list(ds.metrics), selector=selector,
                    batch_size=batch_size, seed=seed)
        limit = None if time_limit_s is None else TrainTimeLimit(lambda: loop.history, time_limit_s)
        hist = loop.fit(train, epochs=epochs, validation_data=val, verbose=0, target=budget.target,
                        stop_at_target=budget.stop_at_target, extra_evaluations=extra,
                        callbacks=[limit] if limit else None)
        record["frame"] = hist.frame.to_dict(orient="records")
        if limit is not None and limit.stopped_at is not None:
            record["status"] = PRUNED
            record["error"] = (f"pruned: training time {limit.stopped_at:.3f}s passed the limit "
                               f"{time_limit_s:.3f}s before the target")
        record["flops_per_sample"] = costs.forward_flops(model, train[0])  # after the fit: never timed
    except Exception as err:  # a failed run is a result, not a crash of the suite
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        record["traceback"] = traceback.format_exc()[-4000:]
        if loop is not None and loop.history is not None and loop.history.rows:
            record["frame"] = loop.history.frame.to_dict(orient="records")
    record["wall_s"] = time.perf_counter() - start
    return record


#: The status of a run stopped by ``time_limit_s`` before its target (a tuning trial that can no longer win).
PRUNED = "pruned"


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


def _fmt_seconds(seconds):
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """One line per run on ``stream``: runs done, the current run, elapsed time and an ETA."""

    def __init__(self, total, stream=None):
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.trained = 0
        self.trained_s = 0.0

    def begin(self, what):
        self._line(f"running {what}")

    def end(self, what, record, skipped=False):
        self.done += 1
        if skipped:
            status = "skipped (already in --out)"
        else:
            self.trained += 1
            self.trained_s += record["wall_s"]
            status = {"ok": "ok", NOT_APPLICABLE: f"not applicable ({record['error']})"}.get(
                record["status"], f"FAILED {record['error']}")
            status += f" in {record['wall_s']:.1f}s"
        self._line(f"{what}: {status}")

    def _line(self, text):
        remaining = self.total - self.done
        eta = self.trained_s / self.trained * remaining if self.trained else None
        elapsed = time.perf_counter() - self.start
        print(f"[{self.done}/{self.total}] {text} | elapsed {_fmt_seconds(elapsed)}, ETA {_fmt_seconds(eta)}",
              file=self.stream, flush=True)


def run_suite(budgets, selectors, seeds, out, *, data_dir=None, retry_failed=False, progress=True, stream=None,
              precision=DEFAULT_PRECISION):
    """Runs every budget x selector x seed not already stored under ``out``.

    Args:
        budgets: :class:`loop.bench.suites.Budget` objects, one per dataset.
        selectors: string specs (``"dybat:delta=0.5"``) or selector objects/functions.
        seeds: an int (seeds ``0..seeds-1``) or a list of seeds.
        out: the results directory.
        data_dir: passed to ``loop.datasets.load`` (default ``$LOOP_DATA_DIR``).
        retry_failed: run again the runs stored as failed.
        progress: print a progress line per run.
        stream: where progress goes (default stderr).
        precision: the ``keras.mixed_precision`` policy every run trains in (:data:`PRECISIONS`).

    Returns:
        ``{"ran": n, "skipped": n, "failed": n, "not_applicable": n, "unloadable": [(dataset, error), ...]}``.

    Raises:
        ValueError: an unknown selector name or hyper-parameter, an unknown
            ``precision``, or an ``out`` holding runs of another precision.
    """
    check_precision(precision)
    check_out_precision(out, precision)
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    keyed = [selector_key(s) for s in selectors]
    labels = [label for label, _ in keyed]
    if len(set(labels)) != len(labels):
        raise ValueError(f"selectors {labels} repeat a selector; give each one once")
    os.makedirs(out, exist_ok=True)
    meter = Progress(len(budgets) * len(keyed) * len(seeds), stream) if progress else None
    summary = {"ran": 0, "skipped": 0, "failed": 0, "not_applicable": 0, "unloadable": []}
    for budget in budgets:
        todo = []
        chosen = [(label, factory) for (label, factory), spec in zip(keyed, selectors)
                  if budget.selectors is None or not isinstance(spec, str) or spec in budget.selectors]
        if meter and len(chosen) < len(keyed):
            meter.total -= (len(keyed) - len(chosen)) * len(seeds)
        for seed in seeds:
            for label, factory in chosen:
                path = run_path(out, budget.name, label, seed)
                stored = read_run(path)
                if stored is not None and stored.get("budget") == budget.config() and (
                        run_precision(stored) == precision) and (stored["status"] != "failed" or not retry_failed):
                    summary["skipped"] += 1
                    if meter:
                        meter.end(f"{budget.name} {label} seed {seed}", stored, skipped=True)
                    continue
                todo.append((seed, label, factory, path))
        if not todo:
            continue
        try:
            ds, train, test = prepare_dataset(budget, data_dir)
        except Exception as err:
            message = f"{type(err).__name__}: {err}"
            summary["unloadable"].append((budget.name, message))
            print(f"cannot load {budget.name}, skipping its {len(todo)} runs: {message}",
                  file=stream or sys.stderr, flush=True)
            if meter:
                meter.done += len(todo)
            continue
        for seed, label, factory, path in todo:
            what = f"{budget.name} {label} seed {seed}"
            if meter:
                meter.begin(what)
            record = train_one(ds, train, test, budget, label, factory, seed, precision=precision)
            write_json_atomic(path, record)
            summary["ran"] += 1
            summary["failed"] += record["status"] == "failed"
            summary["not_applicable"] += record["status"] == NOT_APPLICABLE
            if meter:
                meter.end(what, record)
        del ds, train, test
    return summary
