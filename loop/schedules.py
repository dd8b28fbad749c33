"""Learning-rate schedules with a decay horizon in optimizer steps or training seconds, and a step budget.

Who owns what: :func:`rate` is the formula below, written once; :class:`WarmupDecay` is a
``keras.optimizers.schedules.LearningRateSchedule`` (serializable with
``get_config``/``from_config`` and ``keras.optimizers.schedules.serialize``)
that the optimizer evaluates at its ``iterations`` inside the loop's compiled
step; :func:`make_schedule` builds one from a shape name and fractions;
:func:`step_budget` counts the optimizer steps a selector makes in an epoch cap,
so that every method's schedule decays within its own steps.  :class:`ClockSchedule` is the same
formula over seconds of the training clock (a :class:`TrainClock` that ``Loop.fit`` sets once per
compiled chunk), so that every method's schedule decays over the same budget in seconds.

The rate of the update at optimizer step ``t`` (0-based, the optimizer's
``iterations`` before the update), for a peak rate ``lr``, a horizon of ``H``
steps and ``W`` warm-up steps (``W < H``):

* **warm-up** (``t < W``): ``lr * (t + 1) / W``, linear from ``lr / W`` up to
  ``lr`` at step ``W - 1``; no step trains at rate 0.
* **decay** (``W <= t < H``), with ``p = (t - W) / (H - W)`` going from 0 to
  just under 1 and the final rate ``end = alpha * lr``:

  * ``constant``: ``lr``;
  * ``cosine``: ``end + (lr - end) * (1 + cos(pi * p)) / 2``;
  * ``linear``: ``lr - (lr - end) * p``.

* **after the horizon** (``t >= H``): the final value, ``end`` for ``cosine``
  and ``linear`` and ``lr`` for ``constant``.

The default ``alpha = 0`` decays fully, to 0 at the horizon, as the budget-aware
baselines of Kaddour et al., "No Train No Gain: Revisiting Efficient Training
Algorithms for Transformer-based Language Models" (NeurIPS 2023) do: their
finding is that data-selection gains vanish against a baseline whose rate
decays to its end within the budget.  A run that outlives its horizon trains
at ``end`` (0 by default: those steps change nothing), so the horizon should be
at most the run's step budget.  Warm-up counts inside the horizon.

A method's step budget (:func:`step_budget`): the epoch cap, turned into the
method's own loop epochs by ``selector.epochs_for_budget(E, n, b)`` when the
selector has it (as ``loop.bench.training`` does), then counted in the method's
own optimizer steps by ``selector.expected_steps(epochs, n, b)`` when it has
it, else ``epochs * ceil(n / b)``.  A selector that steps less often per epoch
(SelectiveBackprop and RandomDrop accumulating kept samples, InfoBatch
pruning, DyBAT's rounds, RhoLoss's presampled batches) declares
``expected_steps``, so its horizon ``fraction * budget`` ends within its run.
"""

import math

import keras
import numpy as np
import tensorflow as tf

__all__ = ["SHAPES", "WarmupDecay", "make_schedule", "step_budget", "describe_schedule", "rate", "TrainClock",
           "ClockSchedule", "clock_of", "ScaledRate"]

#: The schedule shapes: ``constant`` (after an optional warm-up), ``cosine`` and ``linear`` decay.
SHAPES = ("constant", "cosine", "linear")


def _fraction(name, value, low=0.0, high=1.0, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
            math.isfinite(value) and (value > low if low_open else value >= low) and value <= high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def check_shape(shape, name="schedule"):
    """Returns ``shape`` if it is one of :data:`SHAPES`.

    Raises:
        ValueError: another value, naming it and the choices.
    """
    if shape not in SHAPES:
        raise ValueError(f"{name} {shape!r} is not a schedule shape; choose {', '.join(SHAPES[:-1])} or "
                         f"{SHAPES[-1]}")
    return shape


def rate(position, peak, horizon, shape, warmup=0.0, alpha=0.0, *, offset=1.0, ops=np):
    """The rate at ``position`` of a schedule over ``horizon`` (the formula above): the one place it is written.

    Both schedules call it, :class:`WarmupDecay` with the optimizer step and
    :class:`ClockSchedule` with the training clock's seconds, in the same unit
    as ``horizon`` and ``warmup``.

    Args:
        position: ``t``: an array (``ops=np``) or a float tensor (``ops=keras.ops``).
        peak: the peak rate ``lr``.
        horizon: ``H``, where the decay ends.
        shape: one of :data:`SHAPES`.
        warmup: ``W < H``, the length of the linear warm-up (0: none).
        alpha: the final rate as a fraction of ``peak`` (``cosine`` and ``linear``).
        offset: the warm-up rate is ``peak * (t + offset) / W``: 1 for steps (the update at step ``t`` is the
            ``t + 1``-th, so no step trains at rate 0), 0 for seconds (the ramp starts from 0 at 0 s).
        ops: ``numpy`` or ``keras.ops``.
    """
    end = peak if shape == "constant" else alpha * peak
    progress = ops.clip((position - float(warmup)) / float(horizon - warmup), 0.0, 1.0)
    if shape == "cosine":
        decayed = end + (peak - end) * 0.5 * (1.0 + ops.cos(math.pi * progress))
    elif shape == "linear":
        decayed = peak - (peak - end) * progress
    else:
        decayed = ops.full_like(position, peak)
    if not warmup:
        return decayed
    return ops.where(position < float(warmup), peak * ops.minimum((position + offset) / float(warmup), 1.0),
                     decayed)


@keras.saving.register_keras_serializable(package="loop")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up, then ``constant``, ``cosine`` or ``linear`` decay to ``alpha * learning_rate`` at ``horizon``.

    See :mod:`loop.schedules` for the formula.  Steps are the optimizer's
    ``iterations``, so a fit resumed from a checkpoint (which restores them)
    continues the schedule where it stopped.

    Args:
        learning_rate: the peak rate, > 0.
        horizon: ``H``, the step at which the decay ends, >= 1.
        shape: ``"constant"``, ``"cosine"`` or ``"linear"``.
        warmup: ``W``, warm-up steps, ``0 <= W < H``.
        alpha: the final rate as a fraction of ``learning_rate``, in [0, 1].

    Raises:
        ValueError: an argument out of range, naming it.
    """

    def __init__(self, learning_rate, horizon, shape="cosine", warmup=0, alpha=0.0):
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.number)) or not (
                math.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        for name, value, low in (("horizon", horizon, 1), ("warmup", warmup, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer number of optimizer steps >= {low}, got {value!r}")
        if warmup >= horizon:
            raise ValueError(f"warmup={warmup} steps must be fewer than horizon={horizon} steps; shorten the "
                             "warm-up or lengthen the horizon")
        self.learning_rate = float(learning_rate)
        self.horizon, self.warmup = int(horizon), int(warmup)
        self.shape = check_shape(shape, "shape")
        self.alpha = _fraction("alpha", alpha)

    @property
    def final(self):
        """The rate after the horizon: ``alpha * learning_rate`` (``learning_rate`` for ``constant``)."""
        return self.learning_rate if self.shape == "constant" else self.alpha * self.learning_rate

    def __call__(self, step):
        return rate(keras.ops.cast(step, "float32"), self.learning_rate, self.horizon, self.shape, self.warmup,
                    self.alpha, offset=1.0, ops=keras.ops)

    def values(self, steps):
        """The rates of the steps ``steps`` (an int: ``0 .. steps - 1``; or an array of steps), in float64."""
        t = np.arange(steps, dtype=np.float64) if np.ndim(steps) == 0 else np.asarray(steps, np.float64)
        return rate(t, self.learning_rate, self.horizon, self.shape, self.warmup, self.alpha, offset=1.0)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "horizon": self.horizon, "shape": self.shape,
                "warmup": self.warmup, "alpha": self.alpha}

    def __repr__(self):
        return (f"WarmupDecay(learning_rate={self.learning_rate:g}, horizon={self.horizon}, shape={self.shape!r}, "
                f"warmup={self.warmup}, alpha={self.alpha:g})")


def _positive(name, value, unit):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number{unit}, got {value!r}")
    return float(value)


class TrainClock:
    """The training clock a :class:`ClockSchedule` reads: seconds in a non-trainable float64 ``tf.Variable``.

    Pass it to ``Loop.fit(..., train_clock=clock)`` (a fit whose optimizer's
    rate is a :class:`ClockSchedule` drives that schedule's clock even without
    it): before every compiled chunk call the fit assigns the training clock
    (``train_time_s``: training and selection, never evaluation) to
    :attr:`seconds`, one assign per chunk.  The variable lives on one device and
    is only assigned outside the compiled step, so it may be created inside or
    outside a ``tf.distribute`` strategy's scope.

    Args:
        seconds: the starting value.
    """

    def __init__(self, seconds=0.0):
        self.seconds = tf.Variable(float(seconds), dtype=tf.float64, trainable=False, name="train_clock_seconds")

    def __repr__(self):
        return f"TrainClock(seconds={float(self.seconds.numpy()):g})"


@keras.saving.register_keras_serializable(package="loop")
class ClockSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """:class:`WarmupDecay`'s shapes over seconds of the training clock instead of optimizer steps.

    The position is ``clock.seconds`` (see :class:`TrainClock`), so each method's
    rate decays over the budget's unit, training seconds, as in Kaddour et al.
    (2023), whose budgets are wall-clock time; the formula is :func:`rate`'s
    with a ramp from 0 at 0 s (``peak * t / warmup_s``).  ``Loop.fit`` sets the
    clock once per compiled chunk, so the rate is constant within a chunk.

    What it gives up: a run is no longer bit-identical across repetitions (its
    rate follows measured seconds, which vary from run to run); a fit resumed
    from a checkpoint continues from its restored clock.

    Args:
        clock: the :class:`TrainClock` it reads.
        peak: the peak rate, > 0.
        horizon_s: the training second at which the decay ends, > 0.
        shape: ``"constant"``, ``"cosine"`` or ``"linear"``.
        warmup_s: warm-up seconds, ``0 <= warmup_s < horizon_s``.
        alpha: the final rate as a fraction of ``peak``, in [0, 1].

    Raises:
        ValueError: an argument out of range, naming it.
    """

    def __init__(self, clock, peak, horizon_s, *, shape="constant", warmup_s=0.0, alpha=0.0):
        if not isinstance(clock, TrainClock):
            raise ValueError(f"clock must be a loop.schedules.TrainClock, got {type(clock).__name__}")
        self.clock = clock
        self.peak = _positive("peak", peak, "")
        self.horizon_s = _positive("horizon_s", horizon_s, " of training seconds")
        self.warmup_s = _fraction("warmup_s", warmup_s, 0.0, math.inf)
        if self.warmup_s >= self.horizon_s:
            raise ValueError(f"warmup_s={warmup_s!r} must be shorter than horizon_s={horizon_s!r}; shorten the "
                             "warm-up or lengthen the horizon")
        self.shape = check_shape(shape, "shape")
        self.alpha = _fraction("alpha", alpha)

    def __call__(self, step):
        del step  # the position is the training clock, not the optimizer step
        return rate(keras.ops.cast(self.clock.seconds, "float32"), self.peak, self.horizon_s, self.shape,
                    self.warmup_s, self.alpha, offset=0.0, ops=keras.ops)

    def values(self, seconds):
        """The rates at the training seconds ``seconds`` (an array), in float64."""
        return rate(np.asarray(seconds, np.float64), self.peak, self.horizon_s, self.shape, self.warmup_s,
                    self.alpha, offset=0.0)

    def get_config(self):
        return {"peak": self.peak, "horizon_s": self.horizon_s, "shape": self.shape, "warmup_s": self.warmup_s,
                "alpha": self.alpha}

    @classmethod
    def from_config(cls, config):
        """A schedule on a fresh :class:`TrainClock` (a clock is not part of a config): pass it to ``fit``."""
        return cls(TrainClock(), **config)

    def __repr__(self):
        return (f"ClockSchedule(peak={self.peak:g}, horizon_s={self.horizon_s:g}, shape={self.shape!r}, "
                f"warmup_s={self.warmup_s:g}, alpha={self.alpha:g})")


@keras.saving.register_keras_serializable(package="loop")
class ScaledRate(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate times a factor that a selector sets between epochs: ``base(step) * scale``.

    The hook of a selector that moves the learning rate (KAKURENBO's ``1 / (1 - F)``): the selector owns ``scale``
    (a float32 ``tf.Variable``, assigned on the host between compiled calls) and gives the user this schedule to
    build the optimizer with (``KAKURENBO.scaled_learning_rate``).  Unlike weighting the loss, which moves the
    update as the rate does for SGD only, it scales the update of any optimizer, Adam included.

    Args:
        base: a float or a ``LearningRateSchedule`` (e.g. :class:`WarmupDecay`, :class:`ClockSchedule`).
        scale: the ``tf.Variable`` the factor is read from.
    """

    def __init__(self, base, scale):
        if not isinstance(scale, tf.Variable):
            raise ValueError(f"ScaledRate: scale must be a tf.Variable the selector assigns, got {type(scale).__name__}")
        self.base, self.scale = base, scale

    def __call__(self, step):
        base = self.base(step) if callable(self.base) else self.base
        return keras.ops.cast(base, "float32") * keras.ops.cast(self.scale, "float32")

    def get_config(self):
        return {"base": keras.optimizers.schedules.serialize(self.base) if callable(self.base) else self.base}

    @classmethod
    def from_config(cls, config):
        """The schedule with a fresh factor of 1 (a factor is the selector's, not part of a config)."""
        base = config["base"]
        base = keras.optimizers.schedules.deserialize(base) if isinstance(base, dict) else base
        return cls(base, tf.Variable(1.0, dtype=tf.float32, trainable=False, name="rate_factor"))

    def __repr__(self):
        return f"ScaledRate({self.base!r}, scale={float(self.scale.numpy()):g})"


def clock_of(optimizer):
    """The :class:`TrainClock` of ``optimizer``'s :class:`ClockSchedule` (a ``LossScaleOptimizer``'s inner
    optimizer's; also inside a :class:`ScaledRate`), or None."""
    schedule = getattr(getattr(optimizer, "inner_optimizer", optimizer), "_learning_rate", None)
    if isinstance(schedule, ScaledRate):
        schedule = schedule.base
    return schedule.clock if isinstance(schedule, ClockSchedule) else None


def make_schedule(learning_rate, shape, budget_steps, *, horizon=1.0, warmup=0.0, alpha=0.0):
    """The learning rate of a run: a float for a constant rate without warm-up, else a :class:`WarmupDecay`.

    Args:
        learning_rate: the peak rate.
        shape: one of :data:`SHAPES`.
        budget_steps: the run's step budget (:func:`step_budget`), >= 1.
        horizon: the decay horizon as a fraction of ``budget_steps``, in (0, 1]:
            ``H = max(1, round(horizon * budget_steps))``.
        warmup: the warm-up as a fraction of the horizon, in [0, 1):
            ``W = round(warmup * H)`` (clipped to ``H - 1``).
        alpha: the final rate as a fraction of the peak (cosine and linear).

    Returns:
        ``float(learning_rate)`` when ``shape == "constant"`` and there is no
        warm-up step (the optimizer then keeps a plain rate, as before
        schedules existed), else a :class:`WarmupDecay`.

    Raises:
        ValueError: an argument out of range, naming it.
    """
    check_shape(shape)
    horizon = _fraction("horizon", horizon, low_open=True)
    warmup = _fraction("warmup", warmup)
    if warmup >= 1.0:
        raise ValueError(f"warmup must be a fraction of the horizon below 1, got {warmup!r}")
    if isinstance(budget_steps, bool) or not isinstance(budget_steps, (int, np.integer)) or budget_steps < 1:
        raise ValueError(f"budget_steps must be a positive integer, got {budget_steps!r}")
    steps = max(1, int(round(horizon * budget_steps)))
    warm = min(int(round(warmup * steps)), steps - 1)
    if shape == "constant" and warm == 0:
        return float(learning_rate)
    return WarmupDecay(learning_rate, steps, shape, warm, alpha)


def describe_schedule(rate):
    """A JSON-ready description of a run's learning rate: ``{"shape": "constant", "learning_rate": x}`` for a float,
    else the schedule's config with its class name."""
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return {"class_name": type(rate).__name__, **rate.get_config()}
    return {"shape": "constant", "learning_rate": float(rate)}


def step_budget(selector, epochs, num_samples, batch_size):
    """The optimizer steps ``selector`` makes within an epoch cap of ``epochs`` (baseline) epochs.

    First the cap in the method's own loop epochs (``selector.epochs_for_budget``
    when it has it), then those epochs in its own optimizer steps
    (``selector.expected_steps`` when it has it, else ``epochs * ceil(n / b)``
    with ``b = min(batch_size, num_samples)``).

    Returns:
        ``(loop_epochs, steps)``, both integers; ``steps`` is at least 1.

    Raises:
        ValueError: ``epochs``, ``num_samples`` or ``batch_size`` not a positive integer.
    """
    for name, value in (("epochs", epochs), ("num_samples", num_samples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"step_budget: {name} must be a positive integer, got {value!r}")
    loop_epochs = int(epochs)
    if hasattr(selector, "epochs_for_budget"):
        loop_epochs = int(selector.epochs_for_budget(int(epochs), int(num_samples), int(batch_size)))
    if hasattr(selector, "expected_steps"):
        steps = int(selector.expected_steps(loop_epochs, int(num_samples), int(batch_size)))
    else:
        steps = loop_epochs * math.ceil(num_samples / min(batch_size, num_samples))
    return loop_epochs, max(1, steps)
