"""The eager epoch driver of ``Loop.fit``: plans, compiled chunks, evaluation, callbacks and timing.

Who owns what: :class:`EpochDriver` owns the outer, eager loop of one ``fit``;
it is given everything once, in its constructor (the fit's frozen
:class:`FitOptions` and the parts it drives).  Each epoch is split by job:
:meth:`EpochDriver._begin_epoch` asks the selector for a plan (through a
:class:`loop.protocol.State`), validates it, weights it and uploads it once;
:meth:`EpochDriver._run_chunks` runs it ``steps_per_execution`` mini-batches
per call of the compiled chunk function (:class:`loop.step.Functions`), the
training data's feeder (:meth:`loop.data.TrainingData.feeder`) making each
chunk's rows ready first, and between chunks dispatches the Keras callbacks,
the selector's ``on_batch_end`` hook, mid-epoch evaluations (every
``eval_every`` steps, or on the :class:`EvalGrid` of ``eval_every_seconds``),
the time budget and a checkpoint on interruption, and before each chunk sets
the schedule's training clock; :meth:`EpochDriver._end_epoch` evaluates (the validation
data, then any extra evaluations such as a test set, whose metrics go to the
history only), ends the epoch for the callbacks and saves the epoch's
checkpoint.  The driver never asks where the data lives.  :class:`Timer` owns
the clock: what counts as training, selection and evaluation time.  The
compiled step, the tables and the checkpoint format belong to
:mod:`loop.step`, :mod:`loop.tables` and :mod:`loop.checkpoint`.
"""

import contextlib
import dataclasses
import math
import time
import typing

import keras
import tensorflow as tf

from loop import history as history_lib
from loop.protocol import FlatPlan, describe, validate_plan

_BATCH_HOOKS = ("on_train_batch_end", "on_train_batch_begin", "on_batch_end", "on_batch_begin")


class Timer:
    """Seconds per phase: ``train`` (training and selection), ``selection`` (its share) and ``eval``.

    ``setup`` is the selector's ``on_train_begin`` (e.g. fitting RhoLoss's
    irreducible-loss model), a share of both ``train`` and ``selection``.
    """

    PHASES = ("train", "selection", "setup", "eval")

    #: The clock read (a test may replace it with a fake one).
    now = staticmethod(time.perf_counter)

    def __init__(self, seconds=None):
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self.seconds.update(seconds or {})

    @contextlib.contextmanager
    def measure(self, *phases):
        """Adds the time of the ``with`` body to each of ``phases``."""
        start = self.now()
        try:
            yield
        finally:
            elapsed = self.now() - start
            for phase in phases:
                self.seconds[phase] += elapsed

    def row(self):
        """The history columns of the timer."""
        return {"train_time_s": self.seconds["train"], "selection_time_s": self.seconds["selection"],
                "setup_time_s": self.seconds["setup"], "eval_time_s": self.seconds["eval"]}


class EvalGrid:
    """The evaluation grid of ``fit(eval_every_seconds=T)``: the points ``k * T`` of the training clock.

    The next point is derived from the clock (``k = floor(t / T) + 1``), so a
    fit resumed from a checkpoint's clock keeps the grid.

    Args:
        period: ``T``, in training seconds.
        seconds: the training clock when the fit starts (the restored one when resuming).
    """

    def __init__(self, period, seconds=0.0):
        self.period = period
        self.next = self.floor(seconds) + 1

    @property
    def next_time(self):
        """The training second of the next grid point."""
        return self.next * self.period

    def floor(self, seconds):
        """The largest ``k`` with ``k * T <= seconds`` (exactly, whatever the rounding of the division)."""
        k = math.floor(seconds / self.period)
        return k + 1 if (k + 1) * self.period <= seconds else k - 1 if k * self.period > seconds else k

    def due(self, seconds):
        """The ``k`` of the latest grid point at or before ``seconds`` not yet evaluated, or None; once per point."""
        if seconds < self.next_time:
            return None
        k = self.floor(seconds)
        self.next = k + 1
        return k


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """The settings of one ``fit`` that the driver reads (validated by ``Loop.fit``)."""

    epochs: int
    target: dict
    stop_at_target: bool = False
    eval_every: typing.Optional[int] = None
    eval_every_seconds: typing.Optional[float] = None  # evaluate on the grid k * T of the training clock
    time_budget_s: typing.Optional[float] = None       # stop at the first chunk boundary past it
    train_clock: typing.Any = None                     # a loop.schedules.TrainClock set before every chunk
    verbose: int = 1
    validation: typing.Any = None   # a loop.data.EvaluationData, or None
    extra_evaluations: tuple = ()   # ((name, EvaluationData), ...): reported only, never read by the fit


def selector_error(err, selector, epoch, where="__call__"):
    """Adds which selector, hook and epoch raised ``err`` to its message (as a note); keeps type and traceback."""
    note = f"raised by selector {describe(selector)} ({where}) at epoch {epoch}"
    if hasattr(err, "add_note"):
        err.add_note(note)
    else:  # Python 3.10: the same attribute, which its traceback printer does not show
        err.__notes__ = [*getattr(err, "__notes__", []), note]
    return err


def callback_list(callbacks, model, options):
    """Keras' ``CallbackList`` for a fit, and whether any callback overrides a batch-level hook.

    As in Keras, batch-level hooks left at their default are skipped, so the
    loop reads nothing from the device per chunk for them.
    """
    cbks = keras.callbacks.CallbackList(callbacks, add_history=False, add_progbar=options.verbose != 0,
                                        model=model, verbose=options.verbose, epochs=options.epochs, steps=None)
    batch_hooks = any(getattr(type(c), h) is not getattr(keras.callbacks.Callback, h)
                      for c in cbks.callbacks for h in _BATCH_HOOKS)
    return cbks, batch_hooks


class EpochDriver:
    """Runs the epochs of one fit; everything it needs is given here, once.

    Args:
        options: the fit's :class:`FitOptions`.
        selector: the selector.
        make_state: ``make_state(epoch, epochs, logs) -> State``.
        functions: the compiled :class:`loop.step.Functions`.
        tables: the :class:`loop.tables.Tables`.
        train_metrics: the training :class:`loop.objective.MetricSet`.
        evaluate: ``evaluate(data, prefix="val_") -> {"val_...": value}`` on a :class:`loop.data.EvaluationData`.
        model: the Keras model (for ``stop_training``).
        steps_per_execution: mini-batches per compiled call.
        data: the :class:`loop.data.TrainingData`; it weights each plan
            (:meth:`loop.data.TrainingData.plan_weights`: ``fit``'s sample weights).
        feeder: the training data's feeder (:meth:`loop.data.TrainingData.feeder`):
            ``start``, ``pieces`` and ``stop`` make each chunk's rows ready
            before it trains (streamed data reads them, in pieces that fit its
            byte budget; their time counts as training time).
        history: the :class:`loop.history.History` the rows are appended to.
        callbacks: the Keras ``CallbackList`` (:func:`callback_list`).
        batch_hooks: whether any callback overrides a batch-level hook.
        timer: the fit's :class:`Timer`.
        plan_check: None, or ``check(plan, epoch)`` that the workers agree.
        checkpointer: None, or the :class:`loop.checkpoint.Checkpointer`.
        resume: None, or the restored checkpoint to go on from.
    """

    def __init__(self, options, *, selector, make_state, functions, tables, train_metrics, evaluate, model,
                 steps_per_execution, data, feeder, history, callbacks, batch_hooks, timer, plan_check=None,
                 checkpointer=None, resume=None):
        self.options, self.selector, self.make_state = options, selector, make_state
        self.functions, self.tables, self.train_metrics = functions, tables, train_metrics
        self.evaluate, self.model, self.data, self.feeder = evaluate, model, data, feeder
        self.steps_per_execution, self.plan_check = steps_per_execution, plan_check
        self.history, self.callbacks, self.batch_hooks, self.timer = history, callbacks, batch_hooks, timer
        self.checkpointer, self.resume = checkpointer, resume
        self.on_batch_end = getattr(selector, "on_batch_end", None)
        self.logs = dict(resume.logs) if resume is not None else {}         # the running train logs
        self.last_val = dict(resume.last_val) if resume is not None else {}  # the last evaluation's
        # The grid starts from the clock before this fit's on_train_begin: the restored one, or 0.
        start = float(resume.timer.get("train", 0.0)) if resume is not None else 0.0
        self.grid = None if options.eval_every_seconds is None else EvalGrid(options.eval_every_seconds, start)
        self.budget_spent = False
        self.watch = math.inf  # the one clock comparison per chunk: the next grid point or the budget
        self._next_watch()

    def run(self, state):
        """Trains ``options.epochs`` epochs (from where ``resume`` stopped) and returns the history.

        Args:
            state: the :class:`loop.protocol.State` of epoch 0 (already shown to ``on_train_begin``).
        """
        resume = self.resume
        self.callbacks.on_train_begin()
        try:
            for epoch in range(resume.epoch if resume is not None else 0, self.options.epochs):
                resumed = resume is not None and resume.plan is not None and epoch == resume.epoch
                if self._epoch(epoch, state if epoch == 0 else None, resume if resumed else None):
                    break
        finally:
            self.feeder.stop()
        self.callbacks.on_train_end(self.logs)
        return self.history

    def _plan(self, epoch, state):
        try:
            plan = self.selector(state)
            if plan is not None and hasattr(plan, "__iter__"):
                plan = list(plan)  # a generator's errors are the selector's own
        except Exception as err:
            raise selector_error(err, self.selector, epoch)
        return validate_plan(plan, state.num_samples, describe(self.selector))

    def _epoch(self, epoch, state, resume):
        """One epoch (``state`` is made here unless given); returns True when the fit should stop."""
        plan, device_plan = self._begin_epoch(epoch, state, resume)
        start_step = resume.start_step if resume is not None else int(self.tables.steps.numpy())
        batch = resume.batch if resume is not None else 0
        steps_now, batch = self._run_chunks(epoch, plan, device_plan, start_step, batch)
        return self._end_epoch(epoch, steps_now, batch / plan.num_batches)

    def _begin_epoch(self, epoch, state, resume):
        """The epoch's plan (asked for, or restored) uploaded to the device; the callbacks' epoch begin."""
        options = self.options
        with self.timer.measure("train", "selection"):
            if state is None:
                state = self.make_state(epoch, options.epochs, self.logs)
            plan = FlatPlan(*resume.plan) if resume is not None else self._plan(epoch, state)
            if self.plan_check is not None:
                self.plan_check(plan, epoch)
            device_plan = (tf.constant(plan.indices), tf.constant(self.data.plan_weights(plan)),
                           tf.constant(plan.bounds))
            self.tables.reset_positions(len(plan.indices))
        self.callbacks.set_params({"verbose": options.verbose, "epochs": options.epochs, "steps": plan.num_batches})
        self.callbacks.on_epoch_begin(epoch)
        if resume is None:  # a resumed epoch keeps its restored running metrics
            self.train_metrics.reset_state()
        return plan, device_plan

    def _run_chunks(self, epoch, plan, device_plan, start_step, batch):
        """Runs the plan's mini-batches from ``batch`` a chunk at a time; returns ``(steps_now, batch)`` reached.

        Between chunks: the hooks, mid-epoch evaluations, an early stop, and a
        checkpoint when interrupted.
        """
        options, num_batches = self.options, plan.num_batches
        steps_now = start_step + batch
        with self.timer.measure("train"):
            self.feeder.start(plan, batch)
        while batch < num_batches:
            stop = min(batch + self.steps_per_execution, num_batches)
            if options.eval_every:
                stop = min(stop, batch + options.eval_every - (start_step + batch) % options.eval_every)
            if self.batch_hooks:
                self.callbacks.on_train_batch_begin(batch)
            steps_now = self._train_chunk(epoch, device_plan, batch, stop)
            if self.on_batch_end is not None:
                self._batch_end_hook(plan, batch, stop, epoch)
            batch = stop
            # The epoch's last boundary is _end_epoch's (nothing is timed in between).
            grid_k = self._clock_check() if batch < num_batches and self.timer.seconds["train"] >= self.watch \
                else None
            mid_eval = (options.eval_every and steps_now % options.eval_every == 0 and batch < num_batches) or \
                grid_k is not None
            if self.batch_hooks or options.verbose == 1 or mid_eval:
                self.logs = self.train_metrics.result()
            if self.batch_hooks or options.verbose == 1:
                self.callbacks.on_train_batch_end(batch - 1, self.logs)
            if mid_eval:
                self._eval_row(epoch + batch / num_batches, grid_k)
                if self._stop():
                    break
            if self.model.stop_training or self.budget_spent:
                break
            if self.checkpointer is not None and self.checkpointer.interrupted and batch < num_batches:
                self.checkpointer.save(epoch=epoch, batch=batch, plan=tuple(plan), start_step=start_step,
                                       rows=self.history.rows, timer=self.timer.seconds, logs=self.logs,
                                       last_val=self.last_val)
                self.checkpointer.stop()
        return steps_now, batch

    def _train_chunk(self, epoch, device_plan, batch, stop):
        """Mini-batches ``[batch, stop)``: one compiled call per piece the feeder stages; returns the global step."""
        with self.timer.measure("train"):
            if self.options.train_clock is not None:  # one assign per chunk: the rate is constant within it
                self.options.train_clock.seconds.assign(self.timer.seconds["train"])
            for first, last in self.feeder.pieces(batch, stop):
                # Reading the result waits for the device, so the time is honest.
                steps_now, bad_step = self.functions.train_chunk(*device_plan, first, last).numpy()
                if bad_step >= 0:
                    break
        if bad_step >= 0:
            raise FloatingPointError(
                f"the loss became NaN or Inf at epoch {epoch}, step {bad_step} (selector "
                f"{describe(self.selector)}); lower the learning rate, check the inputs, or add "
                "gradient clipping (e.g. optimizer=keras.optimizers.Adam(clipnorm=1.0))")
        return steps_now

    def _end_epoch(self, epoch, steps_now, epoch_progress):
        """The epoch's evaluation (unless just done), the callbacks' epoch end and the epoch's checkpoint.

        Returns:
            True when the fit should stop.
        """
        options, rows = self.options, self.history.rows
        self.logs = self.train_metrics.result()
        grid_k = self._clock_check() if self.timer.seconds["train"] >= self.watch else None
        ending = epoch == options.epochs - 1 or self.model.stop_training or self.budget_spent
        if grid_k is not None:
            self._eval_row(epoch + epoch_progress, grid_k)
        elif (ending or (self.grid is None and (not options.eval_every or steps_now % options.eval_every == 0))) \
                and not (rows and rows[-1]["step"] == steps_now):
            self._eval_row(epoch + epoch_progress)  # the epoch's, every eval_every steps, or the fit's final one
        epoch_logs = {**self.logs, **self.last_val}
        self.callbacks.on_epoch_end(epoch, epoch_logs)
        self.logs = epoch_logs
        stopping = self._stop() or self.model.stop_training or self.budget_spent
        if self.checkpointer is not None:
            self.checkpointer.save(epoch=epoch + 1, batch=0, rows=self.history.rows, timer=self.timer.seconds,
                                   logs=self.logs, last_val=self.last_val, stopped=stopping)
            if self.checkpointer.interrupted:
                self.checkpointer.stop()
        return stopping

    def _batch_end_hook(self, plan, batch, stop, epoch):
        bounds = plan.bounds
        with self.timer.measure("train", "selection"):
            fresh = self.tables.position_losses(bounds[batch], bounds[stop])
            try:
                for b in range(batch, stop):
                    lo, hi = bounds[b], bounds[b + 1]
                    self.on_batch_end(plan.indices[lo:hi], fresh[lo - bounds[batch]:hi - bounds[batch]])
            except Exception as err:
                raise selector_error(err, self.selector, epoch, "on_batch_end")

    def _next_watch(self):
        budget = self.options.time_budget_s
        self.watch = min(math.inf if self.grid is None else self.grid.next_time,
                         math.inf if budget is None or self.budget_spent else budget)

    def _clock_check(self):
        """At a chunk boundary past :attr:`watch`: the ``k`` of the grid point crossed (or None); marks the budget."""
        seconds = self.timer.seconds["train"]
        grid_k = None if self.grid is None else self.grid.due(seconds)
        budget = self.options.time_budget_s
        self.budget_spent = self.budget_spent or (budget is not None and seconds >= budget)
        self._next_watch()
        return grid_k

    def _stop(self):
        rows, target = self.history.rows, self.options.target
        if self.options.stop_at_target and rows and history_lib.reached(rows[-1], target):
            self.model.stop_training = True
        return self.model.stop_training

    def _eval_row(self, epoch_progress, grid_k=None):
        """Evaluates and appends a history row; ``grid_k``: the grid point of an ``eval_every_seconds`` evaluation."""
        val, extra = {}, {}
        if self.options.validation is not None:
            with self.timer.measure("eval"):
                self.callbacks.on_test_begin()
                val = self.evaluate(self.options.validation)
                self.callbacks.on_test_end({k[4:]: v for k, v in val.items()})
        # Reported only: in the history row, never in the logs that callbacks, selectors and targets read.
        for name, data in self.options.extra_evaluations:
            with self.timer.measure("eval"):
                extra.update(self.evaluate(data, prefix=f"{name}_"))
        grid = {}
        if self.grid is not None:  # the final, off-grid evaluation: NaN
            grid = {"eval_grid_k": math.nan if grid_k is None else grid_k,
                    "eval_overshoot_s": math.nan if grid_k is None else
                    self.timer.seconds["train"] - grid_k * self.grid.period}
        row = {"epoch": round(float(epoch_progress), 6), **self.tables.counts(), **self.timer.row(), **grid,
               **self.logs, **val, **extra}
        self.history.rows.append(row)
        self.last_val = val

