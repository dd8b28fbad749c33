"""The per-sample tables and counters of a fit, as one ``tf.Module`` that a checkpoint saves whole.

Who owns what: :class:`Tables` owns every device-resident number the loop keeps
about the training set and its progress:

* ``loss``: the last-seen loss of every sample (NaN where never seen);
* ``loss_step``: the optimizer step that saw it (-1 where never seen);
* ``trained``: how many times each sample contributed to a gradient;
* the counters ``steps`` (optimizer steps), ``seen`` (samples forwarded in
  training steps), ``forward`` (every sample the model forwarded on training
  data: training passes, candidate passes without gradient, the second pass
  over kept rows, and ``state.score``) and ``backpropagated``, and
  ``first_bad_step`` (the first step whose loss was NaN or Inf, -1 if none);
* ``positions``: the losses of the current epoch's plan by position, kept only
  when a selector has an ``on_batch_end`` hook;
* ``queue_indices`` and ``queue_weights``: the rows an accumulating in-step
  filter has chosen and not yet trained (see :mod:`loop.step`); they carry over
  epoch ends and are checkpointed with the rest;
* ``candidates``: the candidate batches an in-step filter has seen (one per
  call of its ``keep``, whether or not an optimizer step followed), handed to
  the filter as ``StepBatch.candidate`` so that a filter drawing random numbers
  can seed them afresh for every candidate batch (see :mod:`loop.protocol`).

The train step writes them inside the compiled function (scatters and adds, no
host reads); the host reads a table once per epoch.
"""

import numpy as np
import tensorflow as tf


class Tables(tf.Module):
    """Device-resident per-sample tables and step counters.

    Args:
        num_samples: the training-set size.
        positions: also keep per-plan-position losses (for ``on_batch_end``).
    """

    def __init__(self, num_samples, *, positions=False):
        super().__init__(name="tables")
        self.num_samples = int(num_samples)
        self.loss = tf.Variable(tf.fill([num_samples], np.float32(np.nan)), trainable=False, name="loss")
        self.loss_step = tf.Variable(tf.fill([num_samples], np.int64(-1)), trainable=False, name="loss_step")
        self.trained = tf.Variable(tf.zeros([num_samples], tf.int32), trainable=False, name="trained_counts")
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps")
        self.seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="samples_seen")
        self.forward = tf.Variable(0, dtype=tf.int64, trainable=False, name="samples_forwarded")
        self.backpropagated = tf.Variable(0, dtype=tf.int64, trainable=False, name="samples_backpropagated")
        self.first_bad_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="first_nonfinite_step")
        self.candidates = tf.Variable(0, dtype=tf.int64, trainable=False, name="candidate_batches")
        self.queue_indices = tf.Variable(tf.zeros([0], tf.int32), shape=tf.TensorShape([None]), trainable=False,
                                         name="queue_indices")
        self.queue_weights = tf.Variable(tf.zeros([0]), shape=tf.TensorShape([None]), trainable=False,
                                         name="queue_weights")
        self.positions = None
        if positions:
            self.positions = tf.Variable(tf.zeros([0]), shape=tf.TensorShape([None]), trainable=False,
                                         name="position_losses")

    def record(self, indices, losses):
        """Writes fresh losses of ``indices`` into the loss table, stamped with the current step."""
        self.loss.scatter_update(tf.IndexedSlices(losses, indices))
        self.loss_step.scatter_update(tf.IndexedSlices(tf.fill(tf.shape(indices), self.steps.read_value()),
                                                       indices))

    def account(self, indices, kept_indices, losses):
        """The bookkeeping of one optimizer step over ``indices``, of which ``kept_indices`` were backpropagated."""
        self.forwarded(indices, losses)
        self.stepped(kept_indices)

    def forwarded(self, indices, losses):
        """The bookkeeping of a forward pass over candidates that may not all be trained (no step is counted)."""
        self._check_finite(losses)
        self.record(indices, losses)
        self.seen.assign_add(tf.cast(tf.size(indices), tf.int64))
        self.forward.assign_add(tf.cast(tf.size(indices), tf.int64))

    def add_forwards(self, count):
        """Counts ``count`` more forwarded samples that are not new candidates (a kept row's training pass, a score)."""
        self.forward.assign_add(tf.cast(count, tf.int64))

    def stepped(self, trained_indices):
        """The bookkeeping of one optimizer step that backpropagated ``trained_indices``."""
        self.steps.assign_add(1)
        self.trained.scatter_add(tf.IndexedSlices(tf.ones_like(trained_indices), trained_indices))
        self.backpropagated.assign_add(tf.cast(tf.size(trained_indices), tf.int64))

    def enqueue(self, indices, weights):
        """Appends chosen rows to the queue of an accumulating filter."""
        self.queue_indices.assign(tf.concat([self.queue_indices, indices], 0))
        self.queue_weights.assign(tf.concat([self.queue_weights, weights], 0))

    def dequeue(self, count):
        """Removes and returns the first ``count`` queued ``(indices, weights)``."""
        indices, weights = self.queue_indices[:count], self.queue_weights[:count]
        self.queue_indices.assign(self.queue_indices[count:])
        self.queue_weights.assign(self.queue_weights[count:])
        return indices, weights

    def next_candidate(self):
        """The number of the candidate batch an in-step filter is about to see (from 0); advances the counter."""
        candidate = self.candidates.read_value()
        with tf.control_dependencies([candidate]):
            self.candidates.assign_add(1)
        return candidate

    def _check_finite(self, losses):
        finite = tf.reduce_all(tf.math.is_finite(losses))
        self.first_bad_step.assign(tf.where(tf.logical_and(tf.logical_not(finite), self.first_bad_step < 0),
                                            self.steps.read_value(), self.first_bad_step.read_value()))

    def nonfinite_step(self):
        """The first step whose loss was NaN or Inf since :meth:`clear_nonfinite`, or None (a host read)."""
        step = int(self.first_bad_step.numpy())
        return None if step < 0 else step

    def clear_nonfinite(self):
        """Forgets a non-finite loss seen before (at the start of a fit)."""
        self.first_bad_step.assign(-1)

    def reset_positions(self, size):
        """Zeroes the per-position losses for a plan of ``size`` rows (nothing when positions are not kept)."""
        if self.positions is not None:
            self.positions.assign(tf.zeros([size]))

    def position_losses(self, start=0, stop=None):
        """The current plan's losses at positions ``[start, stop)``, NumPy (a host read).

        Raises:
            RuntimeError: the tables keep no positions (no ``on_batch_end`` hook).
        """
        if self.positions is None:
            raise RuntimeError("these tables keep no per-position losses; a selector with on_batch_end gets them")
        return self.positions[start:stop].numpy()

    def counts(self):
        """``{"step", "samples_seen", "samples_forwarded", "samples_backpropagated"}`` as Python ints (a host read)."""
        return {"step": int(self.steps.numpy()), "samples_seen": int(self.seen.numpy()),
                "samples_forwarded": int(self.forward.numpy()),
                "samples_backpropagated": int(self.backpropagated.numpy())}

    def with_samples(self, num_samples, *, positions=False):
        """New tables for a training set of ``num_samples`` rows that keep this module's counters."""
        fresh = Tables(num_samples, positions=positions)
        fresh.steps, fresh.seen, fresh.backpropagated = self.steps, self.seen, self.backpropagated
        fresh.forward = self.forward
        fresh.first_bad_step = self.first_bad_step
        fresh.candidates = self.candidates
        return fresh
