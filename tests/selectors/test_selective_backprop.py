"""SelectiveBackprop and its RandomDrop control, pinned to the reference semantics (angelajiang/SelectiveBackprop)."""

import numpy as np
import pytest
import tensorflow as tf

from helpers import StepBatch, make_data, make_loop
from loop.selectors import RandomDrop, SelectiveBackprop, from_string


def _batch(losses, step):
    losses = tf.constant(losses, tf.float32)
    n = losses.shape[0]
    return StepBatch(tf.range(n), losses, tf.ones([n]), tf.zeros([n], tf.int32), tf.fill([n, 2], 0.5),
                     tf.constant(step, tf.int64), tf.constant(step, tf.int64))


def _compiled(selector, state):
    selector.on_train_begin(state)
    return tf.function(lambda b: selector.keep(b))


def test_percentile_counts_strictly_lower_losses_in_a_window_holding_the_batch(make_state):
    selector = SelectiveBackprop(beta=1.0, history=4)
    selector.on_train_begin(make_state())
    # The batch enters the window first: with an empty window, equal losses are at percentile 0 (strictly lower).
    np.testing.assert_allclose(selector.percentiles(tf.constant([1.0, 1.0, 1.0])).numpy(), [0, 0, 0])
    # Window now [1, 1, 1, 2, 3] truncated to the last 4: [1, 1, 2, 3].
    np.testing.assert_allclose(selector.percentiles(tf.constant([2.0, 3.0])).numpy(), [0.5, 0.75])


@pytest.mark.parametrize("beta", [0.0, 1.0, 3.0])
def test_keep_rate_matches_the_expected_percentile_power(beta, make_state):
    rng = np.random.default_rng(0)
    keep = _compiled(SelectiveBackprop(beta=beta, history=1024, prime_epochs=0), make_state())
    kept = [np.mean(keep(_batch(rng.random(64), step)).numpy() > 0) for step in range(60)]
    # Uniform losses: the percentile is ~U(0, 1) once the window is full, so E[p^beta] = 1 / (beta + 1).
    assert abs(np.mean(kept[20:]) - 1 / (beta + 1)) < 0.04


def test_after_priming_every_step_backpropagates_exactly_one_batch():
    x, y = make_data(n=160)
    loop = make_loop(SelectiveBackprop(beta=1.0), batch_size=16, deterministic=True)
    frame = loop.fit((x, y), epochs=4, verbose=0).frame
    assert loop.step.variant == "accumulate"
    # Epoch 0 primes: 10 plain steps over all 160 samples, and no extra forward pass.
    assert frame.loc[0, ["step", "samples_seen", "samples_backpropagated"]].tolist() == [10, 160, 160]
    steps, seen, backprop = (np.diff(frame[c].to_numpy()) for c in ("step", "samples_seen",
                                                                      "samples_backpropagated"))
    assert (seen == 160).all() and (backprop == 16 * steps).all() and 0 < steps.sum() < 30
    assert loop.trained_counts.sum() == frame["samples_backpropagated"].iloc[-1]
    queued = loop.tables.queue_indices.numpy()
    assert len(queued) < 16  # the remainder waits for the next epoch instead of making a partial step


def test_accumulate_false_is_the_in_batch_variant():
    x, y = make_data(n=96)
    loop = make_loop(SelectiveBackprop(accumulate=False, prime_epochs=0), batch_size=16)
    frame = loop.fit((x, y), epochs=2, verbose=0).frame
    assert loop.step.variant == "compact" and frame["step"].tolist() == [6, 12]
    assert frame["samples_backpropagated"].iloc[-1] < 96 * 2
    assert repr(from_string("selective_backprop:accumulate=False")) == "SelectiveBackprop(accumulate=False)"


def test_random_drop_keep_rate_and_exact_counts(make_state):
    keep = _compiled(RandomDrop(keep=0.3, prime_epochs=0), make_state())
    rates = [np.mean(keep(_batch(np.zeros(50), step)).numpy() > 0) for step in range(200)]
    assert abs(np.mean(rates) - 0.3) < 0.02 and np.std(rates) > 0
    keep = _compiled(RandomDrop(keep=0.3, exact=True, prime_epochs=0), make_state())
    counts = {int(np.sum(keep(_batch(np.zeros(50), step)).numpy() > 0)) for step in range(20)}
    assert counts == {15}


def test_random_drop_ignores_the_loss_and_trains_full_batches():
    x, y = make_data(n=160)
    loop = make_loop(RandomDrop(keep=0.5, prime_epochs=0), batch_size=16)
    frame = loop.fit((x, y), epochs=2, verbose=0).frame
    assert (frame["samples_backpropagated"] == 16 * frame["step"]).all()
    assert 6 <= frame["step"].iloc[-1] <= 14  # about half of 2 x 160 candidates, in batches of 16
    selector = RandomDrop(keep=0.5, exact=True)
    assert repr(selector) == "RandomDrop(keep=0.5, exact=True)" and repr(selector.clone()) == repr(selector)
    assert selector.get_params() == {"keep": 0.5, "exact": True, "prime_epochs": 1}
    with pytest.raises(ValueError, match="keep=0 is out of range"):
        RandomDrop(keep=0)


class _RecordingSB(SelectiveBackprop):
    """SelectiveBackprop that records each candidate batch's uniforms and keep mask (run eagerly)."""

    records = []

    def _uniform(self, *args, **kwargs):
        draws = super()._uniform(*args, **kwargs)
        type(self).records.append(("uniform", draws.numpy()))
        return draws

    def _select(self, batch):
        weights = super()._select(batch)
        type(self).records.append(("mask", weights.numpy() > 0))
        return weights


class _RecordingDrop(RandomDrop):
    """RandomDrop that records each candidate batch's keep mask (run eagerly)."""

    records = []

    def _select(self, batch):
        weights = super()._select(batch)
        type(self).records.append(("mask", weights.numpy() > 0))
        return weights


def _consecutive_equal(records, kind):
    arrays = [a for k, a in records if k == kind]
    assert len(arrays) >= 10, f"only {len(arrays)} candidate batches recorded"
    return sum(np.array_equal(a, b) for a, b in zip(arrays, arrays[1:])), len(arrays)


@pytest.mark.parametrize("recording, kinds", [(_RecordingSB, ("uniform", "mask")),
                                              (_RecordingDrop, ("mask",))])
def test_accumulating_filters_draw_afresh_for_every_candidate_batch(recording, kinds):
    """The reference draws new uniforms for every candidate batch, also when no optimizer step came between."""
    recording.records = []
    x, y = make_data(n=160)
    selector = recording(prime_epochs=0) if recording is _RecordingSB else recording(keep=0.5, exact=True,
                                                                                       prime_epochs=0)
    loop = make_loop(selector, batch_size=16, run_eagerly=True)
    frame = loop.fit((x, y), epochs=2, verbose=0).frame
    candidates = 2 * 160 // 16
    assert frame["step"].iloc[-1] < candidates  # accumulating: fewer optimizer steps than candidate batches
    for kind in kinds:
        equal, total = _consecutive_equal(recording.records, kind)
        assert total == candidates
        assert equal == 0, f"{equal} of {total - 1} consecutive candidate batches drew the same {kind}s"
    assert int(loop.tables.candidates.numpy()) == candidates


@pytest.mark.parametrize("selector", [SelectiveBackprop(prime_epochs=0), RandomDrop(prime_epochs=0)])
def test_a_batch_without_candidate_number_is_refused(selector, make_state):
    selector.on_train_begin(make_state())
    batch = _batch(np.zeros(4), 0)._replace(candidate=None)
    with pytest.raises(ValueError, match="candidate=None"):
        selector.keep(batch)
