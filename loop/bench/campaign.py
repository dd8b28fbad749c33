"""The one campaign loop: studies over workloads and selectors, with an optional search, every trial stored.

Every suite runs through :func:`run_campaign`: the untuned ones (``default``, ``seeds``, ``full``), where a study is
one trial at the entry's hyper-parameters, and the searched ones (``tuned``, ``--tune K``), where a study is K
quasirandom trials (:mod:`loop.bench.search`) scored by its fastest, with exact pruning.  ``--seeds auto``
(:mod:`loop.bench.auto_seeds`) calls it round after round.

Order: workload by workload (its data loaded once, and only when a trial of it must train), study by study,
selector by selector, trial by trial.  For each planned trial the store (:class:`loop.bench.store.Store`) is asked
first: a trial stored with the same identity (:func:`loop.bench.records.identity`) is skipped, unless it failed and
``retry_failed``; a trial another process has claimed is left to it.  **Exact pruning**: within a searched study,
a trial whose training clock passes the study's best time to target so far cannot win, so it is stopped at its first
evaluation past that time (:func:`loop.bench.training.TrainTimeLimit`) and stored as ``pruned``.  The best so far
is recomputed from the stored trials, so a killed campaign resumes with the same limits.
"""

import math
import os
import typing

from loop.bench import labels as labels_lib
from loop.bench import records as records_lib
from loop.bench import search as search_lib
from loop.bench import store as store_lib
from loop.bench.precision import DEFAULT_PRECISION, check_precision
from loop.bench.progress import Progress
from loop.bench.suites import Entry
from loop.bench.workloads import Workload


def as_entry(item):
    """An :class:`~loop.bench.suites.Entry` from an entry or a bare :class:`~loop.bench.workloads.Workload`."""
    if isinstance(item, Entry):
        return item
    if isinstance(item, Workload):
        return Entry(workload=item)
    raise ValueError(f"a campaign runs suite entries or workloads, got {item!r}; build one with "
                     "loop.bench.suites.entry('iris', epochs=10) or Workload(dataset='iris', epochs=10)")


def check_targets(entries):
    """Raises ``ValueError`` for an entry without a fixed target: a searched study scores trials against it."""
    for item in entries:
        if not item.workload.target:
            raise ValueError(f"{item.name}: a search scores each study by its fastest trial to a fixed target; give "
                             "the workload a target (e.g. the full suite's) or --target")


def check_search_spaces(selectors):
    """Raises ``ValueError`` for a selector whose ``tune_space`` is not a search space (checked before training)."""
    from loop.selectors import from_string

    for spec in selectors:
        search_lib.search_space(1.0, from_string(spec) if isinstance(spec, str) else spec)


def _seconds_to_target(record, target):
    from loop.bench.scoring import time_to

    return time_to(record, target, "seconds")


class Plan(typing.NamedTuple):
    """A campaign's checked plan (:func:`checked_plan`)."""

    entries: list     #: the suite entries
    studies: list     #: the study numbers
    keyed: list       #: ``(spec, label)`` of every selector
    store: object     #: the results directory's :class:`~loop.bench.store.Store`
    per_entry: dict   #: ``{entry name: K}`` (None when not searched)
    planned: dict     #: ``{(entry name, label): trials planned}``


def checked_plan(entries, selectors, studies, out, trials, precision, jit_compile):
    """Checks everything a campaign takes before anything trains (see :func:`run_campaign`'s Raises) and opens the
    store (sweeping dead writers' temporary files); returns the :class:`Plan`."""
    entries = [as_entry(item) for item in entries]
    check_precision(precision)
    if trials is not None:
        trials = search_lib.check_trials(trials)
        check_targets(entries)
        check_search_spaces(selectors)
    studies = list(range(studies)) if isinstance(studies, int) else [int(s) for s in studies]
    keyed = [(spec, labels_lib.selector_key(spec)[0]) for spec in selectors]
    labels_lib.check_unique([label for _, label in keyed])
    store = store_lib.Store(out)
    store_lib.check_out_precision(out, precision)
    store_lib.check_out_jit(out, jit_compile)
    store.sweep()
    per_entry = {item.name: (search_lib.check_trials(item.trials) if item.trials is not None else trials)
                 if trials is not None else None for item in entries}
    planned = {(item.name, label): len(studies) * (per_entry[item.name] or 1)
               for item in entries for spec, label in keyed if item.runs(spec)}
    return Plan(entries, studies, keyed, store, per_entry, planned)


def empty_summary():
    """A campaign's summary before anything ran."""
    return {"ran": 0, "skipped": 0, "claimed": 0, "failed": 0, "pruned": 0, "not_applicable": 0, "unloadable": []}


class WorkloadData:
    """A workload's data, loaded on first use and kept for the workload's trials."""

    def __init__(self, workload, data_dir):
        self.workload, self.data_dir, self.value, self.error = workload, data_dir, None, None

    def __call__(self):
        from loop.bench.training import prepare_dataset

        if self.value is None and self.error is None:
            try:
                self.value = prepare_dataset(self.workload, self.data_dir)
            except Exception as err:  # a dataset that does not load skips its trials; the campaign goes on
                self.error = f"{type(err).__name__}: {err}"
        if self.error is not None:
            raise Unloadable(self.error)
        return self.value


class Unloadable(Exception):
    pass


def run_campaign(entries, selectors, studies, out, *, trials=None, data_dir=None, retry_failed=False, progress=True,
                 stream=None, precision=DEFAULT_PRECISION, jit_compile=False):
    """Runs every planned trial that ``out`` does not hold yet, and stores each one as it finishes.

    Args:
        entries: :class:`~loop.bench.suites.Entry` objects (or bare workloads): what trains, with which
            hyper-parameters, and which selectors run there.
        selectors: string specs (``"dybat:delta=0.5"``) or selector objects/functions.
        studies: an int (studies ``0..studies-1``) or a list of study numbers; study ``s`` trains with seed ``s``.
        out: the results directory.
        trials: K for a search (K quasirandom trials per study, exact pruning; every workload needs a target; an
            entry's own ``trials`` wins); None for one trial per study at the entry's hyper-parameters.
        data_dir: passed to ``loop.datasets.load`` (default ``$LOOP_DATA_DIR``).
        retry_failed: train again the trials stored as failed.
        progress: show progress (:class:`loop.bench.progress.Progress`) on ``stream`` (default stderr).
        precision: the ``keras.mixed_precision`` policy of every trial.
        jit_compile: compile every trial's train step with XLA (``Loop(jit_compile=True)``), the same for every
            method; part of a trial's identity.

    Returns:
        ``{"ran", "skipped", "claimed", "failed", "pruned", "not_applicable": counts, "unloadable": [(workload,
        error), ...]}``.

    Raises:
        ValueError: an unknown or repeated selector, a bad ``tune_space``, ``trials`` < 1, a searched workload
            without a target, an unknown ``precision``, or an ``out`` holding trials of another precision; all
            checked before anything trains.
    """
    plan = checked_plan(entries, selectors, studies, out, trials, precision, jit_compile)
    entries, studies, keyed, store, per_entry = plan.entries, plan.studies, plan.keyed, plan.store, plan.per_entry
    meter = Progress(plan.planned, stream, enabled=progress)
    summary = empty_summary()
    try:
        for item in entries:
            chosen = [(spec, label) for spec, label in keyed if item.runs(spec)]
            data = WorkloadData(item.workload, data_dir)
            try:
                calibration, centre = prepare(item, per_entry[item.name], data, out, precision, meter)
                context = StudyContext(item, per_entry[item.name], data, precision, meter, calibration, centre,
                                   _irreducible_dir(item, out), jit_compile)
                for study in studies:
                    for spec, label in chosen:
                        run_study(context, spec, label, study, store, summary, retry_failed=retry_failed)
            except Unloadable as err:
                skip_unloadable(item, chosen, str(err), summary, meter)
    finally:
        meter.close()
    return summary


def skip_unloadable(item, chosen, error, summary, meter):
    """Counts the trials of a workload whose data does not load as done, and says so."""
    summary["unloadable"].append((item.name, error))
    meter.note(f"cannot load {item.name}, skipping its trials: {error}")
    for _, label in chosen:
        key = (item.name, label)
        while meter.left[key] > 0:
            meter.end(*key, how="unloadable")


def _irreducible_dir(item, out):
    """Where RhoLoss's irreducible losses are cached: once per study, off the clock, on the one-clock protocol."""
    return os.path.join(out, "irreducible", item.workload.label) if item.workload.clock == "seconds" else None


def prepare(item, trials, data, out, precision, meter=None, check_machine=True):
    """What every study of a workload reads, computed once and cached in ``out``, off every trial's clock: the
    seconds clock's calibration (or None) and the range test's centre of a search (or None).

    ``check_machine``: see :func:`loop.bench.calibration.calibrate`.

    Returns:
        ``(calibration, centre)``.
    """
    calibration = centre = None
    workload = item.workload
    if workload.clock == "seconds":
        from loop.bench.calibration import calibrate

        calibration = calibrate(workload, item.hyperparameters, data, out, precision=precision,
                                check_machine=check_machine)
        if meter is not None:
            host = calibration.get("machine", {}).get("host") or "this machine"
            meter.note(f"{item.name}: a Shuffle epoch takes {calibration['seconds_per_epoch']:.3g}s on {host}: budget "
                       f"{calibration['budget_s']:.3g}s of training, an evaluation every "
                       f"{calibration['eval_period_s']:.3g}s")
    if trials is not None:
        centre = search_lib.range_test(workload, item.hyperparameters, data, out, precision=precision)["center_lr"]
        low, high = search_lib.SECONDS_LR_RANGE if workload.clock == "seconds" else search_lib.LR_RANGE
        if meter is not None:
            meter.note(f"{item.name}: range test suggests lr {centre:.3g} (min-loss lr / 10); learning rates "
                       f"searched in [{centre * low:.3g}, {centre * high:.3g}]")
    return calibration, centre


class StudyContext:
    """What every study of one workload shares: its entry, K, data, the precision, the progress meter, and what
    :func:`prepare` computed once (the seconds clock's calibration, the range test's centre of a search)."""

    def __init__(self, item, trials, data, precision, meter, calibration, centre, irreducible_dir, jit_compile=False):
        self.item, self.trials, self.data, self.precision, self.meter = item, trials, data, precision, meter
        self.calibration, self.centre, self.irreducible_dir = calibration, centre, irreducible_dir
        self.jit_compile = bool(jit_compile)

    def plan(self, spec, study):
        """The study's trials: ``[(Hyperparameters, knobs, units, space), ...]`` (one at the entry's
        hyper-parameters when not searched)."""
        if self.trials is None:
            return [(self.item.hyperparameters, {}, None, None)]
        from loop.selectors import from_string

        base = from_string(spec) if isinstance(spec, str) else spec
        clock = self.item.workload.clock
        shared, own = search_lib.search_space(self.centre, base, clock)
        space = {name: [kind, list(args)] for name, kind, args in shared + own}
        pooled = self.item.name if clock == "seconds" else None
        return [(hp, knobs, units, space if units is not None else None)
                for hp, knobs, units in search_lib.points(self.item.hyperparameters, shared, own, self.trials,
                                                          study, pooled)]


def run_study(context, spec, method, study, store, summary, *, retry_failed):
    """Runs one study's trials in order, skipping the stored ones; ``store`` finds, claims and saves trials (the
    results directory's :class:`~loop.bench.store.Store`, or on a Ray worker the driver's, through
    :mod:`loop.bench.cluster`)."""
    from loop.bench.training import train_one

    item, meter, data = context.item, context.meter, context.data
    target = item.workload.target
    best = math.inf
    for k, (hp, knobs, units, space) in enumerate(context.plan(spec, study)):
        label, factory = labels_lib.with_knobs(spec, knobs)
        limit = best if context.trials is not None and math.isfinite(best) else None
        planned = records_lib.new(item.workload, hp, selector=method, trial_selector=label, knobs=knobs,
                                  study=study, trial=k, precision=context.precision, time_limit_s=limit,
                                  search_units=units, search_space=space, jit_compile=context.jit_compile)
        stored = _stored(store, planned, retry_failed)
        if stored is not None:
            summary["skipped"] += 1
            best = min(best, _seconds_to_target(stored, target))
            meter.end(item.name, method, planned, how="stored")
            continue
        with store.claim(planned) as mine:
            stored = _stored(store, planned, retry_failed) if mine else None  # finished by another meanwhile?
            if not mine or stored is not None:
                summary["claimed" if not mine else "skipped"] += 1
                if stored is not None:
                    best = min(best, _seconds_to_target(stored, target))
                meter.end(item.name, method, planned, how="claimed" if not mine else "stored")
                continue
            ds, train, test = data()
            meter.begin(item.name, method, study, k)
            record = train_one(ds, train, test, item.workload, hp, planned, factory, time_limit_s=limit,
                               calibration=context.calibration, irreducible_dir=context.irreducible_dir)
            store.save(record)
        summary["ran"] += 1
        for status in ("failed", "pruned", "not_applicable"):
            summary[status] += record["status"] == status
        best = min(best, _seconds_to_target(record, target))
        meter.end(item.name, method, record)


def _stored(store, planned, retry_failed):
    stored = store.find(planned)
    if stored is not None and stored["status"] == records_lib.FAILED and retry_failed:
        return None
    return stored


__all__ = ["Plan", "StudyContext", "Unloadable", "WorkloadData", "as_entry", "check_search_spaces", "check_targets",
           "checked_plan", "empty_summary", "prepare", "run_campaign", "run_study", "skip_unloadable"]
