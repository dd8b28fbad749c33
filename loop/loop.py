"""``Loop``: the façade that puts a model, a selector and the compiled step together.

Who owns what: :class:`Loop` holds the user's choices (model, optimizer, loss,
metrics, selector, batch size, seed, switches), the last fit's training data
(one :class:`loop.data.TrainingData`, ``loop.data``) and the compiled
functions built for it (:meth:`Loop.make_functions`, cached until the data or
the selector changes), and wires the parts:

* :mod:`loop.protocol`: the selector protocol (``State``, plans, hooks);
* :mod:`loop.validation`: every check of user input before training (this
  class's and ``fit``'s arguments too);
* :mod:`loop.data`: the training data, resident or streamed, behind one
  interface (chosen once, in :func:`loop.data.training_data`), and the
  evaluation data checked against it;
* :mod:`loop.objective`: per-sample losses, metrics and the task (the
  model's ``compile`` as their defaults);
* :mod:`loop.tables`: the per-sample loss table and counters on the device;
* :mod:`loop.step`: the train step and the compiled functions;
* :mod:`loop.distribute`: the step under a ``tf.distribute`` strategy;
* :mod:`loop.driver`: the eager epoch loop, timing and callbacks;
* :mod:`loop.checkpoint`: checkpoints, resume and a run's identity;
* :mod:`loop.history`: the history and time-to-target arithmetic.
"""

import keras
import numpy as np
import tensorflow as tf

from loop import checkpoint as checkpoint_lib
from loop import data as data_lib
from loop import distribute as distribute_lib
from loop import history as history_lib
from loop import objective as objective_lib
from loop import schedules
from loop import streaming as streaming_lib
from loop import validation
from loop.driver import EpochDriver, FitOptions, Timer, callback_list, selector_error
from loop.protocol import State, check_indices, describe, in_step_filter, needs_of
from loop.selectors import Shuffle, from_string
from loop.step import Functions, TrainStep
from loop.tables import Tables


class Loop:
    """A compiled Keras training loop that takes a batch-selection callable.

    Args:
        model: any Keras 3 model.  If you compiled it, its optimizer, loss and
            metrics are the defaults of the three arguments below, and the
            loop never changes your ``compile``.  If not, the loop compiles it
            with the arguments below (so that Keras callbacks such as
            ``TensorBoard`` and ``EarlyStopping`` find them).
        optimizer: a Keras optimizer or its name (default: the model's, else "adam").
        loss: a Keras loss name, ``keras.losses.Loss`` or function (default:
            the model's); it is always evaluated per sample.
        metrics: metric names, ``keras.metrics.Metric`` objects or functions;
            ``"accuracy"`` is chosen by the shapes of targets and outputs, as
            in ``Model.compile``.
        selector: a selector (see :mod:`loop.protocol`), a spec string such as
            ``"dybat:delta=0.5"``, or None for ``Shuffle()``.  A selector object
            with ``clone()`` is cloned: ``loop.selector`` is the copy that learns.
            A selector class whose constructor needs no argument is
            instantiated (``selector=Shuffle`` is ``Shuffle()``, as Keras
            instantiates a loss or metric class); one that needs arguments
            is refused with a message naming them.
        batch_size: the nominal mini-batch size handed to the selector; a batch
            size larger than the data gives one batch of all of it, as in Keras.
        seed: seeds ``state.rng`` and hence the plans.  The loop sets no global
            seed: seed the model's initialization yourself, e.g. with
            ``keras.utils.set_random_seed(seed)`` before building the model.
        steps_per_execution: mini-batches per compiled call; batch-level
            callbacks and ``on_batch_end`` fire once per call.
        jit_compile: compile the step with XLA.
        run_eagerly: run the step eagerly, for debugging.
        deterministic: turn on TensorFlow op determinism at ``fit``.  This is
            process-wide (``tf.config.experimental.enable_op_determinism``) and
            TensorFlow offers no way to turn it off again.
        eval_batch_size: rows per forward pass when evaluating and scoring.
        strategy: a ``tf.distribute`` strategy (Mirrored, MultiWorkerMirrored);
            build the model under ``strategy.scope()``.  See :mod:`loop.distribute`.
        resident_limit_bytes: training data of at most this many bytes
            (inputs and targets, decoded) is copied onto the device once and
            gathered by index; larger data, and any random-access source
            larger than this, streams by index from its source a chunk at a
            time (see :mod:`loop.streaming`).  Default 2 GiB; 0 always
            streams, None never does.
        staging_bytes: the streamed path's memory budget in bytes: the
            staging buffer plus the rows read ahead (default 512 MiB).  A
            compiled call's chunk is staged in pieces that fit it, whatever
            the row size, batch size or ``steps_per_execution``.

    Raises:
        ValueError: an argument is out of range, naming it.
    """

    def __init__(self, model, *, optimizer=None, loss=None, metrics=None, selector=None, batch_size=32, seed=0,
                 steps_per_execution=32, jit_compile=False, run_eagerly=False, deterministic=False,
                 eval_batch_size=1024, strategy=None, resident_limit_bytes=streaming_lib.DEFAULT_RESIDENT_LIMIT_BYTES,
                 staging_bytes=streaming_lib.DEFAULT_STAGING_BYTES):
        if not isinstance(model, keras.Model):
            raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
        self.batch_size = validation.positive_int("batch_size", batch_size)
        self.steps_per_execution = validation.positive_int("steps_per_execution", steps_per_execution)
        self.eval_batch_size = validation.positive_int("eval_batch_size", eval_batch_size)
        self.resident_limit_bytes = validation.resident_limit_bytes(resident_limit_bytes)
        self.staging_bytes = validation.positive_int("staging_bytes", staging_bytes)
        seed = validation.seed(seed)
        compiled_optimizer, self.loss, self.metric_specs = objective_lib.compiled_defaults(model, optimizer, loss,
                                                                                           metrics)
        self.model, self.strategy = model, strategy
        with distribute_lib.scope(strategy):  # wrapped in a LossScaleOptimizer for float16, as Model.compile does
            self.optimizer = objective_lib.training_optimizer(optimizer, compiled_optimizer, model)
        distribute_lib.check(strategy, model, self.optimizer)
        self.loss_name, self.loss_fn = objective_lib.per_sample_loss(self.loss)
        self.metric_names = [objective_lib.metric_name(m) for m in self.metric_specs]
        self.seed, self.jit_compile = int(seed), bool(jit_compile)
        self.run_eagerly, self.deterministic = bool(run_eagerly), bool(deterministic)
        self.selector = selector
        self.data = None  # the last fit's training data (a loop.data.TrainingData)
        self.tables = self.step = self.train_metrics = self.val_metrics = None
        self.history = None
        self._invalidate_functions()

    # --------------------------------------------------------------- selector
    @property
    def selector(self):
        """The loop's selector (a clone of the one passed in, when it has ``clone()``)."""
        return self._selector

    @selector.setter
    def selector(self, selector):
        selector = validation.selector(selector)  # a class instantiated; else None, a name or a callable
        if selector is None or isinstance(selector, str):
            selector = Shuffle() if selector is None else from_string(selector)
        elif callable(getattr(selector, "clone", None)):
            selector = selector.clone()
        self._keep, self._filter_mode = in_step_filter(selector)
        self._needs = needs_of(selector)
        self._active = getattr(selector, "active", None) if self._keep is not None else None
        self._selector = selector
        self._invalidate_functions()  # an in-step filter is traced into the step: rebuild at the next fit

    # ------------------------------------------------------------------- data
    @property
    def streaming(self):
        """True when the last fit streamed its training data from a source (see :mod:`loop.streaming`)."""
        return self.data is not None and self.data.streaming

    @property
    def num_samples(self):
        """The number of training samples of the last fit."""
        return self.data.num_samples

    @property
    def labels(self):
        """The training targets of the last fit (NumPy)."""
        return self.data.labels

    @property
    def task(self):
        """``"classification"`` or ``"regression"``, inferred from the loss, the targets and the model."""
        return self.data.task.kind

    @property
    def num_classes(self):
        """The number of classes of the training targets (None for regression)."""
        return self.data.num_classes

    @property
    def sample_weight(self):
        """The last fit's per-sample weights (float32 ``[num_samples]``), or None."""
        return None if self.data is None else self.data.sample_weight

    def _use_data(self, x, y, sample_weight=None, class_weight=None):
        """Checks the training data and keeps it as :attr:`data` (the same ``x, y`` and weights keep theirs)."""
        data = data_lib.training_data(x, y, loss_name=self.loss_name, loss_fn=self.loss_fn, model=self.model,
                                      resident_limit_bytes=self.resident_limit_bytes,
                                      staging_bytes=self.staging_bytes, sample_weight=sample_weight,
                                      class_weight=class_weight, previous=self.data)
        if data is not self.data:
            self.data = data
            self._invalidate_functions()

    # ---------------------------------------------------------- the functions
    def _invalidate_functions(self):
        """The one place that drops the compiled functions; :meth:`make_functions` builds them again."""
        self.functions = None

    def make_functions(self, force=False):
        """Builds the compiled step and functions for the current data and selector, once, and returns them.

        As Keras' ``make_train_function``: the functions are cached until the
        training data or the selector changes (or ``force``).  The optimizer and
        metrics are built once; each build sizes fresh per-sample tables to the
        data (the step counters carry on).

        Args:
            force: build again even when the cached functions are current.

        Returns:
            The :class:`loop.step.Functions`.

        Raises:
            RuntimeError: no training data yet (call ``fit``).
        """
        if self.functions is not None and not force:
            return self.functions
        if self.data is None:
            raise RuntimeError("call fit() first; the loop builds its functions for the training data")
        with distribute_lib.scope(self.strategy):
            self._build(self.data)
        return self.functions

    def _build(self, data):
        """Builds the optimizer and metrics (once) and the data-sized tables and compiled functions."""
        head = data.head()
        y_pred = self.model(head, training=False)
        if self.train_metrics is None:  # once: the model's compile (for Keras callbacks), metrics and optimizer
            self.train_metrics, self.val_metrics = objective_lib.build_objective(
                self.model, self.optimizer, self.loss, self.metric_specs, head, data.y, y_pred)
        positions = getattr(self.selector, "on_batch_end", None) is not None
        self.tables = (Tables(data.num_samples, positions=positions) if self.tables is None
                       else self.tables.with_samples(data.num_samples, positions=positions))
        step = self.step = TrainStep(self.model, self.optimizer, self.loss_fn, data, self.tables,
                                     self.train_metrics, self._keep, self._filter_mode, self._active,
                                     batch_size=min(self.batch_size, data.num_samples),
                                     sample_weight=data.device_sample_weight, needs=self._needs)
        if self.strategy is not None:
            from loop.quantities import check_distributable

            check_distributable(self.selector, self._keep, self._needs)
            step = distribute_lib.DistributedStep(step, self.strategy)
        self.functions = Functions(step, model=self.model, loss_fn=self.loss_fn, data=data, tables=self.tables,
                                   val_metrics=self.val_metrics, run_eagerly=self.run_eagerly,
                                   jit_compile=self.jit_compile, needs=self._needs)

    @property
    def trace_count(self):
        """How many times the chunk function was traced (1 per built loop, whatever the batch sizes)."""
        return 0 if self.functions is None else self.functions.trace_count

    @property
    def trace_time_s(self):
        """Seconds spent tracing the chunk function, outside the training clock."""
        return 0.0 if self.functions is None else self.functions.trace_time_s

    def make_state(self, epoch, epochs, logs):
        """The :class:`loop.protocol.State` the selector sees at the start of ``epoch``."""
        data = self.data
        return State(epoch=epoch, epochs=epochs, step=int(self.tables.steps.numpy()), num_samples=data.num_samples,
                     batch_size=min(self.batch_size, data.num_samples), labels=data.labels,
                     num_classes=data.num_classes, task=data.task.kind, losses=self.tables.loss.numpy(),
                     loss_step=self.tables.loss_step.numpy(), rng=np.random.default_rng([self.seed, epoch]),
                     logs=dict(logs), score_fn=self.score, quantities_fn=self.quantities, inputs=data.inputs,
                     model=self.model, optimizer=self.optimizer, loss=self.loss)

    def score(self, indices):
        """Fresh per-sample losses of training rows ``indices`` (``training=False``); they enter the loss table."""
        return self._forward_pass(indices, "score")

    def quantities(self, indices):
        """The per-sample quantities the selector declares (``needs``) of training rows ``indices``, as a dict of
        NumPy arrays (``training=False``; the losses enter the loss table).  See :meth:`loop.protocol.State.quantities`.
        """
        return self._forward_pass(indices, "quantities")

    def _forward_pass(self, indices, name):
        """:meth:`score` (``name="score"``) or :meth:`quantities`: one compiled pass over rows ``indices``."""
        if self.functions is None:
            raise RuntimeError(f"call fit() before {name}(); the loop builds its functions there")
        indices = check_indices(indices, self.data.num_samples, name)
        if name == "quantities" and not len(indices):
            raise ValueError("quantities() got no indices; pass at least one training row")
        batch = self.functions.score_batch if name == "score" else self.functions.quantities_batch
        return self.data.score(indices, batch, self.eval_batch_size)

    def evaluate(self, x, y=None, sample_weight=None):
        """Returns the loss and metrics on ``(x, y)`` (or ``evaluate((x, y))``) as a dict without ``val_`` prefix.

        With ``sample_weight`` (one non-negative weight per sample) the loss is
        weighted as in Keras' ``Model.evaluate``: the mean of ``weight * loss``
        over the samples; the other metrics are unweighted, as Keras'
        ``compile(metrics=...)`` are.
        """
        if self.functions is None:
            raise RuntimeError("call fit() before evaluate(); the loop builds its metrics there")
        return self._evaluate(self.data.evaluation_data(x, y, "evaluation data", sample_weight), prefix="")

    def _evaluate(self, data, prefix="val_"):
        """The loss and metrics on the :class:`loop.data.EvaluationData` ``data``, keys prefixed."""
        self.val_metrics.reset_state()
        for batch in data.batches(self.eval_batch_size):
            self.functions.eval_batch(*batch)
        return self.val_metrics.result(prefix)

    @property
    def losses(self):
        """The last-seen loss of every training sample (NaN where never seen)."""
        return self.tables.loss.numpy()

    @property
    def loss_step(self):
        """The global step at which each training sample's loss was last seen (-1: never)."""
        return self.tables.loss_step.numpy()

    @property
    def trained_counts(self):
        """How many times each training sample contributed to a gradient (weight > 0)."""
        return self.tables.trained.numpy()

    # -------------------------------------------------------------------- fit
    def fit(self, x, y=None, *, epochs, sample_weight=None, class_weight=None, validation_data=None, target=None,
            stop_at_target=False, eval_every=None, eval_every_seconds=None, time_budget_s=None, train_clock=None,
            callbacks=None, verbose=1, checkpoint_dir=None, extra_evaluations=None):
        """Trains the model, asking the selector for a plan every epoch.

        Args:
            x, y: the training inputs and targets, or ``fit((x, y))``; x may be a dict or tuple of arrays.
                x may also be a random-access source that streams by index: a NumPy memmap (with y), or a
                :class:`loop.RandomAccess` over a ``tfds.data_source``, a ``grain`` source or any object
                with ``__len__`` and ``__getitem__`` (see :mod:`loop.streaming`).  Data larger than
                ``resident_limit_bytes`` streams; smaller data is read onto the device once.
            epochs: number of epochs, i.e. selector calls.  0 trains nothing, as in
                Keras: the data and arguments are checked and the loop is built
                (so ``evaluate`` works), the callbacks get ``on_train_begin`` and
                ``on_train_end``, and an empty History comes back; the selector is
                not called and ``checkpoint_dir`` is neither read nor written.
            sample_weight: one finite, non-negative weight per training sample
                (shape ``[n]``), as in Keras' ``Model.fit``.  It multiplies the
                plan's weights: the step minimizes ``sum(plan_w * sample_w *
                loss) / n`` over each mini-batch of ``n`` rows (an in-step filter
                sees the product as ``batch.weights``), so a sample of weight 0
                never changes the model.  The train ``loss`` is weighted by it
                as in Keras (the mean of ``sample_w * loss``); the other
                metrics are not, as Keras' ``compile(metrics=...)`` are not;
                the plan's weights never weight the metrics.  Works with
                streamed data (the weights stay in memory, like the labels).
            class_weight: ``{class id: weight}``, turned into ``sample_weight``
                from the labels as Keras does (one-hot targets by their argmax;
                a class left out weighs 1).  Giving both is an error, as in Keras.
            validation_data: an ``(x, y)`` pair or ``(x, y, sample_weight)`` triple
                evaluated at each evaluation (weighted as :meth:`evaluate` does), or
                a :class:`loop.RandomAccess`, read in order at each evaluation.
            target: ``{metric: threshold}`` or ``{metric: (threshold, "min"|"max")}``
                used for ``time_to_target`` and ``stop_at_target``.
            stop_at_target: end the fit as soon as the target is reached.
            eval_every: evaluate every this many optimizer steps instead of once
                per epoch (plus at the end of training).
            eval_every_seconds: ``T``: evaluate on a grid of the training clock (``train_time_s``) instead: at
                the first chunk boundary at or after each ``k * T`` (once, for the latest ``k``, however many a
                chunk crosses) and at the end of the fit, so every method is looked at equally often per
                training second (AlgoPerf).  Rows get ``eval_grid_k`` and ``eval_overshoot_s = train_time_s -
                k * T`` (NaN for the final, off-grid row).  Not with ``eval_every``; a resumed fit keeps the grid.
            time_budget_s: stop at the first chunk boundary where the training clock reaches it, then evaluate.
            train_clock: a :class:`loop.schedules.TrainClock` set to the training clock before every chunk, for
                a :class:`loop.schedules.ClockSchedule` (default: the optimizer's ``ClockSchedule``'s clock); runs
                are then no longer bit-identical across repetitions, the rate following measured seconds.
            callbacks: ``keras.callbacks.Callback`` objects.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch.
            checkpoint_dir: save a checkpoint there at every epoch end and on
                SIGTERM or Ctrl-C, and resume from its latest checkpoint; see
                :mod:`loop.checkpoint`.
            extra_evaluations: ``{name: data}`` of further data sets, each an
                ``(x, y)`` pair or a :class:`loop.RandomAccess`, evaluated at
                every evaluation right after ``validation_data``, e.g.
                ``{"test": (x_test, y_test)}`` when ``validation_data`` is a
                split held out of the training set.  Their metrics enter the
                history only, as ``<name>_loss``, ``<name>_accuracy``, ...
                columns: never the logs that callbacks and the selector read,
                and never ``target`` or ``stop_at_target`` (a target on them
                is refused), so the test set chooses nothing.  Their time
                counts as evaluation time (``eval_time_s``), outside the
                training clock.  Names are lower-case identifiers other than
                ``val``.

        Returns:
            A :class:`loop.history.History`.

        Raises:
            ValueError: bad data, plan, target or argument, naming the value.
            FloatingPointError: a loss became NaN or Inf, naming the epoch and step.
        """
        settings, extra = validation.fit_options(
            epochs=epochs, eval_every=eval_every, verbose=verbose, target=target, stop_at_target=stop_at_target,
            extra=extra_evaluations, metric_names=self.metric_names, validated=validation_data is not None,
            loss_name=self.loss_name, selector=self.selector, filter_mode=self._filter_mode,
            eval_every_seconds=eval_every_seconds, time_budget_s=time_budget_s,
            train_clock=schedules.clock_of(self.optimizer) if train_clock is None else train_clock,
            multi_worker=distribute_lib.multi_worker(self.strategy))
        self._use_data(x, y, sample_weight, class_weight)
        data = self.data
        validation_set = None if validation_data is None else data.evaluation_set(validation_data, "validation_data")
        extra = tuple((name, data.evaluation_set(d, f"extra_evaluations[{name!r}]")) for name, d in extra.items())
        options = FitOptions(**settings, validation=validation_set, extra_evaluations=extra)
        if self.deterministic:
            tf.config.experimental.enable_op_determinism()
        functions = self.make_functions()
        self.tables.clear_nonfinite()
        if epochs == 0:
            return self._no_epochs(options, callbacks)
        checkpointer = resume = None
        if checkpoint_dir is not None:
            checkpointer = checkpoint_lib.Checkpointer(
                checkpoint_dir, model=self.model, optimizer=self.optimizer, tables=self.tables,
                metrics=self.train_metrics.objects + self.val_metrics.objects, selector=lambda: self.selector,
                identity=checkpoint_lib.run_identity(
                    selector=describe(self.selector), seed=self.seed, batch_size=self.batch_size,
                    num_samples=data.num_samples, loss=self.loss_name, strategy=self.strategy,
                    sample_weight=data.sample_weight), strategy=self.strategy)
            resume = checkpointer.restore()
        state = self.make_state(0, epochs, {})
        timer = Timer(resume.timer if resume else None)
        if hasattr(self.selector, "on_train_begin"):
            try:
                # Its time (e.g. RhoLoss fitting its irreducible-loss model) is training and selection time.
                with timer.measure("train", "selection", "setup"), distribute_lib.scope(self.strategy):
                    self.selector.on_train_begin(state)  # an in-step filter's variables are replicated too
            except Exception as err:
                raise selector_error(err, self.selector, 0, "on_train_begin")
        functions.trace(warm=self.strategy is None)
        self.history = history_lib.History(rows=resume.rows if resume else None, target=options.target,
                                           selector=describe(self.selector),
                                           params={"batch_size": self.batch_size, "seed": self.seed, "epochs": epochs})
        if resume is not None and (resume.stopped or resume.epoch >= epochs):
            return self.history
        callbacks, batch_hooks = callback_list(callbacks, self.model, options)
        self.model.stop_training = False
        feeder = data.feeder(self.tables, carry_queue=self._filter_mode == "accumulate",
                             worker=distribute_lib.worker_slice(self.strategy),
                             steps_per_execution=self.steps_per_execution, batch_size=self.batch_size)
        driver = EpochDriver(options, selector=self.selector, make_state=self.make_state, functions=functions,
                             tables=self.tables, train_metrics=self.train_metrics, evaluate=self._evaluate,
                             model=self.model, steps_per_execution=self.steps_per_execution, data=data, feeder=feeder,
                             history=self.history, callbacks=callbacks, batch_hooks=batch_hooks, timer=timer,
                             plan_check=distribute_lib.plan_check(self.strategy, lambda: self.selector),
                             checkpointer=checkpointer, resume=resume)
        with checkpoint_lib.guard(checkpointer):
            return driver.run(state)

    def _no_epochs(self, options, callbacks):
        """``fit(epochs=0)``, as in Keras: the callbacks' train begin and end, nothing trained; an empty History."""
        self.history = history_lib.History(target=options.target, selector=describe(self.selector),
                                           params={"batch_size": self.batch_size, "seed": self.seed, "epochs": 0})
        callbacks, _ = callback_list(callbacks, self.model, options)
        self.model.stop_training = False
        callbacks.on_train_begin()
        callbacks.on_train_end({})
        return self.history
