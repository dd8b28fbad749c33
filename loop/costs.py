"""Hardware-neutral training costs: FLOPs per forward sample, and a speedup predicted from sample counts.

Who owns what: this module turns what the loop counts (``samples_forwarded``
and ``samples_backpropagated`` of a history row, see :mod:`loop.tables`) into
costs that carry over to other hardware.  A wall-clock speedup measured on one
device mixes the selector's savings with that device's ratio of backward to
forward cost; the counts do not.  ``docs/performance.md`` shows how to use
them.

A forward pass costs ``c_f`` per sample and the backward pass (gradients with
respect to activations and weights) ``c_b = r * c_f``; a training step over a
sample costs ``c_f + c_b``.  A run that forwards ``F`` samples in all (every
training pass, candidate pass and score pass) and backpropagates ``B`` of them
costs ``c_f * (F + r * B)``, so against a baseline with ``(F0, B0)`` the
predicted speedup is ``(F0 + r * B0) / (F + r * B)``.  It leaves out what the
counts cannot see: the selector's own host work, per-step overheads and a
set-up such as RhoLoss's irreducible-loss model (``setup_time_s``).
"""

import numpy as np
import tensorflow as tf


def forward_flops(model, example):
    """FLOPs of one sample's forward pass (``training=False``), from TensorFlow's cost analysis of the graph.

    Args:
        model: a built Keras model.
        example: one sample, or a batch (or a nest of arrays) whose first row is used.

    Returns:
        The ``float_operation`` total of TensorFlow's profiler over the
        compiled forward graph at batch size 1 (multiply and add counted
        separately, so a dense layer's ``n_in * n_out`` weights give about
        ``2 * n_in * n_out``), or None when the graph has no op with a
        registered FLOP count.
    """
    head = tf.nest.map_structure(lambda a: tf.convert_to_tensor(np.asarray(a)[:1]), example)
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec([1, *t.shape[1:]], t.dtype), head)
    forward = tf.function(lambda x: model(x, training=False), autograph=False)
    graph = forward.get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
    total = int(getattr(profile, "total_float_ops", 0) or 0)
    return total or None


def training_flops(flops_per_sample, forwarded, backpropagated, backward_ratio=2.0):
    """FLOPs of a run that forwarded and backpropagated those sample counts: ``f * (F + r * B)``.

    ``backward_ratio`` ``r`` is the backward pass's cost in forward passes; 2
    is the usual count (gradients with respect to the inputs and the weights).
    """
    return float(flops_per_sample) * (float(forwarded) + float(backward_ratio) * float(backpropagated))


def predicted_speedup(baseline, run, backward_ratio):
    """The speedup over ``baseline`` that the sample counts predict on a device with backward:forward cost ``r``.

    Args:
        baseline, run: ``(samples_forwarded, samples_backpropagated)`` to the
            same target.
        backward_ratio: ``r = c_b / c_f`` of the device, e.g. measured as
            (train-step time per sample) / (forward time per sample) - 1.

    Returns:
        ``(F0 + r * B0) / (F + r * B)``; ``inf`` when the run's cost is 0.

    Raises:
        ValueError: a negative count or ``backward_ratio``.
    """
    (f0, b0), (f, b) = baseline, run
    if min(f0, b0, f, b, backward_ratio) < 0:
        raise ValueError(f"counts and backward_ratio must be non-negative, got baseline={baseline!r}, run={run!r}, "
                         f"backward_ratio={backward_ratio!r}")
    cost = f + backward_ratio * b
    return float("inf") if cost == 0 else (f0 + backward_ratio * b0) / cost
