"""KAKURENBO: the hidden set, its fraction's schedule, the rate's move, and a fit."""

import math

import numpy as np
import pytest

from loop.selectors import KAKURENBO, from_string, registered
from helpers import FakeState, flatten, make_data, make_loop

LOSSES = [0.1, 0.05, 2.0, 0.3, 0.2, 0.9, 0.01, 1.5, 0.4, np.nan]


def test_the_hidden_set_by_hand():
    # The 5 lowest losses are samples 6, 1, 0, 4, 3; with threshold 0.7 a hidden sample needs p_y = exp(-loss) >= 0.7,
    # i.e. loss <= 0.357: all five.  With 0.8 (loss <= 0.223) sample 3 (0.3) is moved back.
    assert KAKURENBO(threshold=0.7).hide(LOSSES, 0.5).tolist() == [0, 1, 3, 4, 6]
    assert KAKURENBO(threshold=0.8).hide(LOSSES, 0.5).tolist() == [0, 1, 4, 6]
    # Only the lowest floor(F * n) are candidates: 0.3 * 10 = 3 -> samples 6, 1, 0.
    assert KAKURENBO().hide(LOSSES, 0.3).tolist() == [0, 1, 6]
    # A well-learned but unconfident sample is never hidden, and a never-seen one (NaN) neither.
    assert KAKURENBO(threshold=0.95).hide(LOSSES, 1.0).tolist() == [1, 6]
    assert KAKURENBO().hide([np.nan] * 4, 1.0).tolist() == [] and KAKURENBO().hide(LOSSES, 0.0).tolist() == []


def test_the_fraction_follows_the_references_schedule_and_the_rate_its_inverse():
    selector = KAKURENBO(fraction=0.3)
    # Milestones at 60, 120, 160 of the reference's 200 epochs: 30%, 60%, 80% of the run.
    assert [round(selector.fraction_at(e, 10), 4) for e in range(10)] == [0.3] * 3 + [0.24] * 3 + [0.18] * 2 + [0.12] * 2
    assert selector.rate_factor(0, 10) == 1.0  # the warm-up epoch
    assert selector.rate_factor(1, 10) == pytest.approx(1 / 0.7) and selector.rate_factor(9, 10) == pytest.approx(1 / 0.88)
    assert KAKURENBO(warmup_epochs=0).rate_factor(0, 10) == pytest.approx(1 / 0.7)


def test_a_plan_trains_every_other_sample_once_with_the_rate_as_loss_weights():
    losses = np.linspace(0.01, 3.0, 120)
    selector = KAKURENBO(fraction=0.3)
    first = flatten(selector(FakeState(epoch=0, epochs=10, losses=losses)))
    assert np.array_equal(np.sort(first[0]), np.arange(120)) and np.all(first[1] == 1)  # epoch 0: nothing hidden
    state = FakeState(epoch=1, epochs=10, losses=losses)
    idx, weights = flatten(selector(state))
    hidden = selector.hidden_
    expected = np.flatnonzero(losses <= -math.log(0.7))[:36]  # 36 = floor(0.3 * 120) lowest, confident
    assert np.array_equal(hidden, expected) and len(hidden) > 0
    assert np.array_equal(np.sort(idx), np.setdiff1d(np.arange(120), hidden))  # each other sample once
    assert np.allclose(weights, 1 / 0.7)  # SGD's form of the rate's move
    # Next epoch the hidden samples get a fresh forward pass (the reference's second loader) before the cut.
    later = FakeState(epoch=2, epochs=10, losses=losses)
    selector(later)
    assert len(later.scored) == 1 and np.array_equal(later.scored[0], hidden)


def test_registered_validated_and_tunable():
    assert registered()["kakurenbo"] is KAKURENBO
    assert repr(from_string("kakurenbo:fraction=0.2")) == "KAKURENBO(fraction=0.2)"
    assert KAKURENBO.tune_space == {"fraction": ("uniform", 0.1, 0.4)}
    for bad, match in (({"fraction": 1.0}, "fraction"), ({"threshold": 0.4}, "threshold"),
                       ({"lr_adjust": "lr"}, "lr_adjust='lr' is not allowed")):
        with pytest.raises(ValueError, match=match):
            KAKURENBO(**bad)


def test_a_fit_hides_the_learned_samples_and_moves_sgds_rate_by_weights():
    x, y = make_data(n=240)
    loop = make_loop(KAKURENBO(fraction=0.4), optimizer="sgd", batch_size=16)
    hist = loop.fit((x, y), epochs=6, verbose=0)
    seen = hist.frame["samples_seen"].diff().fillna(hist.frame["samples_seen"]).to_numpy()
    assert seen[0] == 240 and (seen[1:] < 240).any()  # later epochs leave samples out
    counts = loop.trained_counts
    assert counts.min() < 6 and counts.max() == 6  # hidden samples trained less often
    losses = loop.losses
    assert losses[counts < 6].mean() < losses[counts == 6].mean()  # the hidden ones are the well-learned


def test_an_adaptive_optimizer_needs_the_rate_hook(tmp_path):
    import keras

    from loop.schedules import ScaledRate

    x, y = make_data(n=240)
    with pytest.raises(ValueError, match="optimizer is Adam without the rate hook: build it with "
                                         r"learning_rate=selector.scaled_learning_rate"):
        make_loop(KAKURENBO(), optimizer="adam").fit((x, y), epochs=2, verbose=0)
    selector = KAKURENBO(fraction=0.3)
    rate = selector.scaled_learning_rate(1e-3)
    assert isinstance(rate, ScaledRate)
    optimizer = keras.optimizers.Adam(learning_rate=rate)
    loop = make_loop(selector, optimizer=optimizer)
    loop.fit((x, y), epochs=5, verbose=0)
    # The loop's clone shares the factor: at the last epoch (4 of 5, 80% of the run: 0.4 F) it is 1 / (1 - 0.12).
    assert float(selector._scale.numpy()) == pytest.approx(1 / (1 - 0.12))
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(1e-3 / (1 - 0.12), rel=1e-6)
    assert all(not isinstance(b, tuple) for b in loop.selector(type("S", (), {
        "num_samples": 240, "epoch": 4, "epochs": 5, "losses": loop.losses, "batch_size": 16, "optimizer": optimizer,
        "rng": np.random.default_rng(0), "score": loop.score})()))  # the hook's form: no loss weights


def test_a_loss_that_is_not_a_cross_entropy_is_refused():
    x, y = make_data(n=60)
    with pytest.raises(ValueError, match="reads a sample's confidence from its cross-entropy loss"):
        make_loop(KAKURENBO(), optimizer="sgd", loss="mse").fit((x, np.eye(3)[y]), epochs=1, verbose=0)
