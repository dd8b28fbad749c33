"""``lr_range_test``: the learning-rate range test (Smith 2015), through the loop's own compiled step.

Leslie N. Smith, "Cyclical Learning Rates for Training Neural Networks"
(2015, arXiv:1506.01186), section 3.3: train for a short while with a
learning rate that grows from very small to very large, and read off where the
loss falls fastest and where it stops falling.  This module runs that sweep as
fastai's ``lr_find`` and the Keras-community LR finders do:

* **The sweep.**  An exponential schedule from ``min_lr`` to ``max_lr`` over
  ``num_steps`` optimizer steps (default one pass over the data):
  ``lr_i = min_lr * (max_lr / min_lr) ** (i / (num_steps - 1))`` for step
  ``i = 0 .. num_steps - 1``.  It is a
  ``keras.optimizers.schedules.LearningRateSchedule`` of the optimizer's
  ``iterations`` (:class:`ExponentialRange`), given to a fresh copy of the
  optimizer as its ``learning_rate``, so the loop's compiled chunk function
  (:class:`loop.step.Functions`, traced once) applies it on the device at each
  step, with no Python per step.
* **The batches.**  A :class:`loop.Loop` trains one "epoch" whose plan is
  ``num_steps`` mini-batches of seeded shuffled passes over the data (a new
  permutation per pass, from ``seed``); the selector's ``on_batch_end`` hook
  receives every batch's fresh per-sample losses.
* **The loss of a step** is the mean per-sample loss of its mini-batch in the
  training forward pass of that step, i.e. before that step's update (as in
  fastai); regularization losses are not included.
* **Smoothing.**  An exponential moving average with bias correction
  (``avg = beta * avg + (1 - beta) * loss``, ``smoothed = avg / (1 - beta**(i+1))``,
  ``beta = smoothing``; 0 turns it off), as in fastai and S. Gugger's
  "How do you find a good learning rate" (2018).
* **Divergence.**  The sweep stops once the smoothed loss exceeds
  ``divergence`` times the lowest smoothed loss so far (fastai's 4x), or a
  loss is NaN or Inf.  The loop checks ``model.stop_training`` once per
  compiled chunk, so up to ``steps_per_execution - 1`` more steps may run
  after the step that diverged (default 4 steps per chunk); the frame ends at
  the diverging step.  The test assumes a non-negative loss, as every
  Keras classification and regression loss is.
* **Nothing changes.**  A compiled model trains in place: its variables
  (weights, non-trainable state such as batch-norm statistics, and dropout
  seed state) are saved before and restored after, also on error.  An
  uncompiled model is copied (``keras.models.clone_model`` with its weights)
  and the copy trains, since the loop compiles a model it is given
  uncompiled; a model that cannot be cloned must be compiled first.  An
  optimizer object passed in is never stepped (the sweep trains a fresh copy
  of its configuration).

The suggestions (:class:`LRRangeResult`), both from the smoothed loss before
divergence:

* ``suggested_lr``: the learning rate of the steepest descent, the most
  negative ``d smoothed_loss / d log(lr)`` (``np.gradient``) between the end
  of the sweep's first 10% (skipped, as fastai's ``lr_find`` skips them: the
  average has seen too few losses there) and the step of the minimum smoothed
  loss.  This is fastai's "steep"
  suggestion (fastai v1 ``recorder.plot(suggestion=True)``, "min numerical
  gradient"; fastai v2 ``SuggestionMethod.Steep``), the lower-risk reading of
  Smith's advice to pick the rate where the loss decreases fastest.
* ``conservative_lr``: ``min_loss_lr / 10``, the learning rate of the minimum
  smoothed loss divided by ten (fastai's ``lr_min``, ``SuggestionMethod.Minimum``):
  one order of magnitude below where the loss stops improving.

Both are heuristics for a starting value, not optima; look at the plot.
"""

import dataclasses
import math
import numbers
import typing
import warnings

import keras
import numpy as np
import pandas as pd

from loop import validation

__all__ = ["ExponentialRange", "LRRangeResult", "lr_range_test"]


@keras.saving.register_keras_serializable(package="loop")
class ExponentialRange(keras.optimizers.schedules.LearningRateSchedule):
    """``min_lr * (max_lr / min_lr) ** (step / (num_steps - 1))``, held at ``max_lr`` after the last step."""

    def __init__(self, min_lr, max_lr, num_steps):
        self.min_lr, self.max_lr, self.num_steps = float(min_lr), float(max_lr), int(num_steps)

    def __call__(self, step):
        fraction = keras.ops.minimum(keras.ops.cast(step, "float32") / float(self.num_steps - 1), 1.0)
        return self.min_lr * keras.ops.exp(fraction * math.log(self.max_lr / self.min_lr))

    def values(self, steps=None):
        """The learning rates of steps ``0 .. steps - 1`` (default all ``num_steps``), in float64."""
        steps = np.arange(self.num_steps if steps is None else steps)
        return self.min_lr * (self.max_lr / self.min_lr) ** (np.minimum(steps / (self.num_steps - 1), 1.0))

    def get_config(self):
        return {"min_lr": self.min_lr, "max_lr": self.max_lr, "num_steps": self.num_steps}


@dataclasses.dataclass(frozen=True)
class LRRangeResult:
    """What :func:`lr_range_test` found.

    Attributes:
        frame: one row per step run, up to the step that diverged: ``step``,
            ``learning_rate`` (the rate of that step's update), ``loss`` (the
            batch's mean per-sample loss before the update), ``smoothed_loss``.
        suggested_lr: the learning rate at the steepest descent of the smoothed
            loss (fastai's "steep" rule; see :mod:`loop.lr_range`).
        conservative_lr: ``min_loss_lr / 10`` (fastai's "minimum" rule).
        min_loss_lr: the learning rate at the lowest smoothed loss.
        diverged_step: the step at which the smoothed loss passed
            ``divergence`` times its best (or a loss was not finite), None if
            the sweep ran to the end.
        min_lr, max_lr, num_steps: the sweep asked for.
        trace_count: how many times the loop traced its chunk function (1).
    """

    frame: pd.DataFrame
    suggested_lr: float
    conservative_lr: float
    min_loss_lr: float
    diverged_step: typing.Optional[int]
    min_lr: float
    max_lr: float
    num_steps: int
    trace_count: int

    @property
    def diverged(self):
        """True when the sweep stopped early on divergence."""
        return self.diverged_step is not None

    def __repr__(self):
        stop = f"diverged at step {self.diverged_step}" if self.diverged else "no divergence"
        return (f"LRRangeResult(suggested_lr={self.suggested_lr:.3g}, conservative_lr={self.conservative_lr:.3g}, "
                f"min_loss_lr={self.min_loss_lr:.3g}, {len(self.frame)}/{self.num_steps} steps, {stop})")

    def plot(self, ax=None):
        """Loss and smoothed loss against the learning rate (log x axis), a marker at ``suggested_lr``.

        Draws on ``ax``, or on a new ``matplotlib.figure.Figure`` (no pyplot,
        so no GUI backend is touched and nothing is shown); save it with
        ``ax.figure.savefig(path)``.

        Returns:
            The ``matplotlib.axes.Axes``.
        """
        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(6, 4)).subplots()
        frame = self.frame
        lr, loss, smooth = (frame[c].to_numpy(float) for c in ("learning_rate", "loss", "smoothed_loss"))
        ax.plot(lr, loss, color="0.7", linewidth=0.8, label="loss")
        ax.plot(lr, smooth, color="C0", linewidth=1.6, label="smoothed loss")
        ax.set_xscale("log")
        if len(lr):
            i = int(np.argmin(np.abs(np.log(lr) - math.log(self.suggested_lr))))
            ax.plot([self.suggested_lr], [smooth[i]], "o", color="C3", markersize=8,
                    label=f"suggested {self.suggested_lr:.2g}")
            ax.axvline(self.conservative_lr, color="C2", linestyle=":", linewidth=1,
                       label=f"min-loss lr / 10: {self.conservative_lr:.2g}")
            # The last steps may explode: scale the y axis to the smoothed curve before divergence.
            head = smooth[:self.diverged_step or len(smooth)]
            head, seen = head[np.isfinite(head)], loss[np.isfinite(loss)]
            if head.size and seen.size:
                low, high = float(seen.min()), float(head.max())
                if high > low:
                    ax.set_ylim(low - 0.05 * (high - low), high + 0.1 * (high - low))
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss")
        ax.set_title("learning-rate range test")
        ax.legend(loc="best", fontsize="small")
        return ax


# --------------------------------------------------------------------------------------------- the test
def lr_range_test(model, x, y=None, *, loss=None, optimizer="adam", batch_size=32, min_lr=1e-7, max_lr=10.0,
                  num_steps=None, seed=0, smoothing=0.98, divergence=4.0, metrics=None, steps_per_execution=4,
                  **loop_kwargs):
    """Sweeps the learning rate exponentially over one pass and suggests one (Smith 2015).

    The sweep trains through the loop's compiled step (:class:`loop.Loop`),
    with a copy of ``optimizer`` whose learning rate follows
    :class:`ExponentialRange`; see :mod:`loop.lr_range` for the protocol and
    the suggestion rules.  The model and the optimizer passed in are left as
    they were.

    Args:
        model: a Keras model, compiled or not.
        x, y: the training data, as ``Loop.fit`` takes it (arrays, ``(x, y)``,
            a dict of inputs, or a ``loop.RandomAccess``).
        loss: as ``Loop``'s (default: the model's compiled loss).
        optimizer: a Keras optimizer, its name or config, or None for the
            model's compiled optimizer; its configuration is copied and its
            learning rate replaced by the sweep.  Default ``"adam"``.
        batch_size: rows per step.
        min_lr, max_lr: the first and last learning rates, ``0 < min_lr < max_lr``.
        num_steps: steps of the sweep (at least 2); default one pass,
            ``ceil(num_samples / batch_size)``.  More than a pass draws a new
            shuffled pass each time.
        seed: seeds the shuffling (the loop's ``seed``).
        smoothing: ``beta`` of the bias-corrected moving average, in ``[0, 1)``.
        divergence: stop once the smoothed loss exceeds ``divergence`` times
            its best so far; greater than 1, or ``math.inf`` never to stop.
        metrics: train metrics for the loop (not reported; default none beyond
            the model's compiled ones).
        steps_per_execution: steps per compiled call; divergence is checked
            after each call, so this bounds the steps run past it.
        **loop_kwargs: more ``Loop`` arguments (``jit_compile``,
            ``deterministic``, ``strategy``, ``resident_limit_bytes``,
            ``eval_batch_size``...); not ``selector``.

    Returns:
        A :class:`LRRangeResult`: ``.frame``, ``.suggested_lr``,
        ``.conservative_lr``, ``.plot()``.

    Raises:
        ValueError: an argument out of range (naming it and the fix), or bad
            data (from the loop).
    """
    from loop.loop import Loop

    _check_arguments(min_lr, max_lr, num_steps, smoothing, divergence, loop_kwargs)
    num_samples = _num_samples(x, y)
    batch_size_ = min(validation.positive_int("batch_size", batch_size), num_samples)
    if num_steps is None:
        num_steps = max(2, math.ceil(num_samples / batch_size_))
    schedule = ExponentialRange(min_lr, max_lr, num_steps)
    work = _sweep_model(model)
    recorder = _Recorder(work, num_steps, batch_size_, smoothing, divergence)
    saved = [(v, v.numpy()) for v in work.variables] if work is model else []
    stop_training = getattr(model, "stop_training", False)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="the model is compiled with another optimizer")
            loop = Loop(work, optimizer=_sweep_optimizer(optimizer, model, schedule), loss=loss, metrics=metrics,
                        selector=recorder, batch_size=batch_size, seed=seed,
                        steps_per_execution=steps_per_execution, **loop_kwargs)
        try:
            loop.fit(x, y, epochs=1, verbose=0)
        except FloatingPointError:  # a NaN or Inf loss: the chunk's finite losses are still on the device
            recorder.salvage(loop)
        trace_count = loop.trace_count
    finally:
        for variable, value in saved:  # a compiled model trained in place: put every variable back
            variable.assign(value)
        model.stop_training = stop_training
    losses = np.asarray(recorder.losses, np.float64)
    if not len(losses):
        raise ValueError(f"the range test recorded no loss (the first step's loss was not finite at "
                         f"min_lr={min_lr!r}); lower min_lr or check the data and the loss")
    smoothed = _smooth(losses, smoothing)
    stop = recorder.diverged_step
    frame = pd.DataFrame({"step": np.arange(len(losses)), "learning_rate": schedule.values(len(losses)),
                          "loss": losses, "smoothed_loss": smoothed})
    suggested, min_loss_lr = suggest(frame["learning_rate"].to_numpy(), smoothed, stop, num_steps // 10)
    return LRRangeResult(frame=frame, suggested_lr=suggested, conservative_lr=min_loss_lr / 10,
                         min_loss_lr=min_loss_lr, diverged_step=stop, min_lr=float(min_lr), max_lr=float(max_lr),
                         num_steps=int(num_steps), trace_count=int(trace_count))


def suggest(learning_rates, smoothed, diverged_step=None, skip_start=0):
    """``(steepest-descent lr, min-loss lr)`` of a sweep, from the smoothed loss before ``diverged_step``.

    The steepest descent is the most negative ``np.gradient(smoothed, log(lr))``
    from step ``skip_start`` to the minimum of the smoothed loss (inclusive).
    ``lr_range_test`` skips the first 10% of the sweep there, as fastai's
    ``lr_find`` does: the first steps' slopes are mostly noise, as the average
    has seen few losses.  With fewer than two such steps (the loss only rose,
    or its minimum comes within the skipped part) the skip is dropped, and
    with fewer than two steps in all the result is the min-loss rate.
    """
    lr = np.asarray(learning_rates, np.float64)
    smooth = np.asarray(smoothed, np.float64)
    end = len(lr) if diverged_step is None else max(1, int(diverged_step))
    lr, smooth = lr[:end], smooth[:end]
    finite = np.isfinite(smooth)
    if not finite.all():
        end = max(1, int(np.argmax(~finite)))
        lr, smooth = lr[:end], smooth[:end]
    best = int(np.argmin(smooth))
    if best < 1:
        return float(lr[best]), float(lr[best])
    start = int(skip_start) if best - int(skip_start) >= 1 else 0
    slope = np.gradient(smooth[start:best + 1], np.log(lr[start:best + 1]))
    return float(lr[start + int(np.argmin(slope))]), float(lr[best])


# ------------------------------------------------------------------------------------------------ parts
def _smooth(losses, beta):
    """The bias-corrected exponential moving average of ``losses`` (``beta = 0``: the losses themselves)."""
    out = np.empty(len(losses))
    avg = 0.0
    for i, value in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * value
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


class _Recorder:
    """The range test's selector: one plan of shuffled batches; records each batch's loss; stops on divergence."""

    def __init__(self, model, num_steps, batch_size, smoothing, divergence):
        self.model, self.num_steps, self.batch_size = model, num_steps, batch_size
        self.smoothing, self.divergence = smoothing, divergence
        self.__name__ = "lr_range_test"
        self.losses, self.diverged_step = [], None
        self._avg, self._best, self._plan = 0.0, math.inf, None

    def __call__(self, state):
        batches = []
        while len(batches) < self.num_steps:  # one seeded permutation per pass; each pass's last batch may be short
            order = state.rng.permutation(state.num_samples)
            batches += [order[i:i + self.batch_size] for i in range(0, state.num_samples, self.batch_size)]
        self._plan = batches[:self.num_steps]
        return self._plan

    def on_batch_end(self, indices, losses):
        if self.diverged_step is not None:
            return  # steps run in the chunk after the divergence: not part of the sweep
        self._record(float(np.mean(losses)))

    def _record(self, loss):
        i = len(self.losses)
        self.losses.append(loss)
        if not math.isfinite(loss):
            self._stop(i)
            return
        self._avg = self.smoothing * self._avg + (1.0 - self.smoothing) * loss
        smoothed = self._avg / (1.0 - self.smoothing ** (i + 1))
        if i > 0 and smoothed > self.divergence * self._best:
            self._stop(i)
        self._best = min(self._best, smoothed)

    def _stop(self, step):
        self.diverged_step = step
        self.model.stop_training = True

    def salvage(self, loop):
        """After a non-finite loss ended the fit: records the chunk's losses up to it from the position table."""
        if self.diverged_step is not None or self._plan is None:
            return
        bad = loop.tables.nonfinite_step()
        positions = loop.tables.position_losses()
        bounds = np.cumsum([0] + [len(b) for b in self._plan])
        for b in range(len(self.losses), min(bad or 0, len(self._plan) - 1) + 1):
            self._record(float(np.mean(positions[bounds[b]:bounds[b + 1]])))
            if self.diverged_step is not None:
                return
        if self.diverged_step is None:
            self._record(math.nan)


def _sweep_model(model):
    """The model the sweep trains: ``model`` itself when it is compiled, else a copy with its weights.

    ``Loop`` compiles a model it is given uncompiled (so Keras callbacks find
    its optimizer); the sweep must not leave the user's model compiled with the
    sweep's optimizer, so an uncompiled model is copied
    (``keras.models.clone_model``) instead.
    """
    import keras

    if getattr(model, "compiled", False):
        return model
    try:
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
    except Exception as err:  # noqa: BLE001 - any failure to copy is reported with the way out
        raise ValueError(f"lr_range_test trains an uncompiled model on a copy (keras.models.clone_model), which "
                         f"failed for {model.name!r} ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                         "compile the model first (model.compile(optimizer=..., loss=...)): the test then trains "
                         "it in place and puts its variables back") from None
    return clone


def _sweep_optimizer(optimizer, model, schedule):
    """A fresh optimizer of ``optimizer``'s class and configuration, with ``schedule`` as its learning rate."""
    if optimizer is None:
        optimizer = model.optimizer if getattr(model, "compiled", False) else "adam"
    if isinstance(optimizer, (str, dict)):
        try:
            optimizer = keras.optimizers.get(optimizer)
        except ValueError as err:
            raise ValueError(f"optimizer={optimizer!r} is not a Keras optimizer name or config ({err}); pass "
                             "e.g. 'adam', 'sgd' or keras.optimizers.SGD(momentum=0.9)") from None
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(f"optimizer must be a keras.optimizers.Optimizer, its name or None, got {optimizer!r}")
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer  # the loop wraps it again for a float16 model
    config = dict(keras.optimizers.serialize(optimizer)["config"])
    config["learning_rate"] = schedule
    return type(optimizer).from_config(config)


def _num_samples(x, y):
    source = validation.as_source(x, y, "training data")
    if source is not None:
        return len(source)
    x, y = validation.as_arrays(x, y, "training data")
    return validation.check_arrays(x, y, "training data")


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _check_arguments(min_lr, max_lr, num_steps, smoothing, divergence, loop_kwargs):
    min_lr, max_lr = _number("min_lr", min_lr), _number("max_lr", max_lr)
    for name, value in (("min_lr", min_lr), ("max_lr", max_lr)):
        if not (0 < value < math.inf):
            raise ValueError(f"{name} must be a positive, finite learning rate, got {value!r}; "
                             "e.g. min_lr=1e-7, max_lr=10")
    if min_lr >= max_lr:
        raise ValueError(f"min_lr={min_lr!r} must be below max_lr={max_lr!r}; the sweep grows from min_lr to "
                         "max_lr (e.g. min_lr=1e-7, max_lr=10)")
    if num_steps is not None and (isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral)
                                  or num_steps < 2):
        raise ValueError(f"num_steps must be an integer of at least 2, got {num_steps!r}; leave it None for one "
                         "pass over the data")
    smoothing = _number("smoothing", smoothing)
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}; 0.98 is usual, 0 turns smoothing off")
    divergence = _number("divergence", divergence)
    if not divergence > 1:
        raise ValueError(f"divergence must be greater than 1, got {divergence!r}; 4.0 stops once the smoothed "
                         "loss is 4x its best, math.inf never stops early")
    if "selector" in loop_kwargs:
        raise ValueError("lr_range_test takes no selector: the sweep serves its own shuffled batches")
    if "epochs" in loop_kwargs:
        raise ValueError("lr_range_test takes no epochs: give num_steps (default one pass over the data)")

