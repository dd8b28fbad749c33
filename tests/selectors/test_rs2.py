"""RS2 without replacement: rounds of ceil(r n) samples of a seeded permutation, redrawn when it runs out."""

import math

import numpy as np
import pytest

from loop import schedules
from loop.selectors import RS2, SelectiveBackprop, from_string, registered
from loop.selectors.infobatch import InfoBatch
from loop.selectors.random_drop import RandomDrop
from helpers import FakeState, flatten, make_data, make_loop


def rounds(selector, epochs, n=120, batch_size=10, seed=0):
    return [flatten(selector(FakeState(num_samples=n, batch_size=batch_size, epoch=e, seed=seed)))[0]
            for e in range(epochs)]


def test_every_sample_once_per_block_of_epochs_when_the_ratio_divides():
    taken = rounds(RS2(ratio=0.25), 8)  # k = 30: one permutation lasts 4 epochs
    assert all(len(t) == 30 for t in taken)
    for block in (taken[:4], taken[4:]):
        assert np.array_equal(np.sort(np.concatenate(block)), np.arange(120))
    assert not np.array_equal(np.concatenate(taken[:4]), np.concatenate(taken[4:]))  # the permutation is redrawn


def test_batches_are_cut_from_the_round_in_order():
    plan = RS2(ratio=0.25)(FakeState(num_samples=120, batch_size=8))
    assert [len(b) for b in plan] == [8, 8, 8, 6]


def test_the_permutation_end_fills_up_from_a_fresh_one_without_repeats():
    selector = RS2(ratio=0.3)  # k = 36 of 120: the fourth round holds the last 12 and 24 of the next permutation
    taken = rounds(selector, 10)
    assert all(len(t) == 36 and len(np.unique(t)) == 36 for t in taken)
    first_pass = np.concatenate(taken)[:120]
    assert np.array_equal(np.sort(first_pass), np.arange(120))
    second_pass = np.concatenate(taken)[120:240]  # the fill and the following rounds: the fresh permutation
    assert np.array_equal(np.sort(second_pass), np.arange(120))
    counts = np.bincount(np.concatenate(taken), minlength=120)  # 360 draws: every sample 3 times
    assert np.array_equal(counts, np.full(120, 3))


def test_seeded_and_reproducible():
    assert all(np.array_equal(a, b) for a, b in zip(rounds(RS2(ratio=0.3), 6), rounds(RS2(ratio=0.3), 6)))
    assert not np.array_equal(rounds(RS2(ratio=0.3), 1, seed=1)[0], rounds(RS2(ratio=0.3), 1)[0])


def test_checkpoint_state_resumes_the_same_rounds_and_clone_starts_fresh():
    a = RS2(ratio=0.3)
    rounds(a, 3)
    saved = a.get_state()
    assert set(saved) == {"order_", "position_"} and saved["position_"] == 108
    b = RS2(ratio=0.3)
    b.set_state(saved)
    for epoch in (3, 4):
        state = dict(num_samples=120, batch_size=10, epoch=epoch)
        assert np.array_equal(flatten(a(FakeState(**state)))[0], flatten(b(FakeState(**state)))[0])
    fresh = a.clone()
    assert fresh.order_ is None and fresh.position_ == 0 and fresh.ratio == 0.3


def test_ratio_one_is_a_full_shuffle_each_epoch():
    for taken in rounds(RS2(ratio=1.0), 3):
        assert np.array_equal(np.sort(taken), np.arange(120))


@pytest.mark.parametrize("epochs,n,batch,expected", [
    (10, 1000, 10, 100),   # b divides n and k: ceil(E / r)
    (3, 120, 10, 12),      # k = 30 -> 3 steps a round; the baseline makes 36
    (2, 100, 32, 8),       # k = 10 -> 1 step a round; the baseline makes 2 * 4
    (0, 100, 10, 0),
])
def test_epochs_for_budget_matches_the_baselines_steps(epochs, n, batch, expected):
    selector = RS2(ratio=0.1 if n != 120 else 0.25)
    assert selector.epochs_for_budget(epochs, n, batch) == expected
    k = selector.round_size(n)
    assert expected * -(-k // batch) >= epochs * -(-n // batch)


@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.1176, 0.25, 0.3, 0.5, 1.0])
def test_the_step_budget_is_about_the_baselines_steps_not_whole_epochs(ratio):
    epochs, n, batch = 10, 50_000, 128
    selector = RS2(ratio=ratio)
    loop_epochs, steps = schedules.step_budget(selector, epochs, n, batch)
    per_round = math.ceil(selector.round_size(n) / batch)
    baseline = epochs * math.ceil(n / batch)   # 3910, Shuffle's steps
    assert loop_epochs == selector.epochs_for_budget(epochs, n, batch)
    assert steps == loop_epochs * per_round == selector.expected_steps(loop_epochs, n, batch)
    assert baseline <= steps < baseline + per_round   # the rounds' own steps: the schedule decays within the run
    if ratio < 1:
        assert steps < loop_epochs * math.ceil(n / batch)   # what step_budget counted without expected_steps
    else:
        assert (loop_epochs, steps) == schedules.step_budget(None, epochs, n, batch) == (10, baseline)


@pytest.mark.parametrize("ratio,epochs,n,batch,expected", [
    (0.1, 10, 1000, 32, (80, 320)),   # k = 100: ceil(100 / 32) = 4 steps a round, 320 / 4 = 80 rounds (not 80 * 32)
    (0.25, 3, 120, 10, (12, 36)),     # k = 30: 3 steps a round
    (0.1, 2, 100, 32, (8, 8)),        # k = 10: one partial batch a round; the baseline's 2 * 4 steps
    (0.3, 4, 10, 64, (4, 4)),         # b capped at n = 10: the baseline's 1 step an epoch; k = 3, 1 step a round
])
def test_step_budget_by_hand(ratio, epochs, n, batch, expected):
    assert schedules.step_budget(RS2(ratio=ratio), epochs, n, batch) == expected


def test_expected_steps_counts_the_rounds_batches_and_checks_its_arguments():
    selector = RS2(ratio=0.25)
    assert selector.expected_steps(12, 120, 10) == 36 and selector.expected_steps(0, 120, 10) == 0
    x, y = make_data(n=120)
    history = make_loop(RS2(ratio=0.25), batch_size=8).fit((x, y), epochs=3, verbose=0)
    assert history.frame["step"].iloc[-1] == selector.expected_steps(3, 120, 8) == 3 * 4   # rounds of 30: 8+8+8+6
    for args, match in (((-1, 120, 10), "epochs=-1"), ((2, 0, 10), "num_samples=0"), ((2, 120, 1.5), "batch_size=1.5")):
        with pytest.raises(ValueError, match=rf"RS2.expected_steps: {match}"):
            selector.expected_steps(*args)


def test_a_fit_trains_each_round_and_the_runner_budget_holds():
    x, y = make_data(n=200)
    loop = make_loop(RS2(ratio=0.25), batch_size=10)
    hist = loop.fit((x, y), epochs=8, verbose=0)
    assert list(hist.frame["samples_seen"]) == [50 * e for e in range(1, 9)]
    assert np.array_equal(loop.trained_counts, np.full(200, 2))  # 8 rounds of 50 = two passes


def test_registered_and_tune_spaces():
    assert registered()["rs2"] is RS2 and repr(from_string("rs2:ratio=0.2")) == "RS2(ratio=0.2)"
    assert RS2.tune_space == {"ratio": ("uniform", 0.1, 0.5)}
    for cls, knob in ((SelectiveBackprop, "beta"), (InfoBatch, "prune_ratio"), (RandomDrop, "keep")):
        kind, low, high = cls.tune_space[knob]
        assert kind == "uniform" and low < high and knob in cls._param_names()
        cls(**{knob: low}), cls(**{knob: high})  # both ends are valid hyper-parameters


def test_with_replacement_each_round_is_an_independent_uniform_subset():
    selector = RS2(ratio=0.25, replacement=True)
    taken = rounds(selector, 40)
    assert all(len(t) == 30 and len(np.unique(t)) == 30 for t in taken)  # k distinct samples a round
    # Independent rounds: the first 4 (one pass's worth) do not cover the data, unlike without replacement.
    assert len(np.unique(np.concatenate(taken[:4]))) < 120
    # Uniform: over 40 rounds each sample is drawn about 40 * 30 / 120 = 10 times (binomial sd about 2.7).
    counts = np.bincount(np.concatenate(taken), minlength=120)
    assert counts.min() >= 1 and abs(counts.mean() - 10) < 1e-9 and counts.std() > 0
    assert selector.order_ is None  # no permutation kept: nothing to resume
    assert all(np.array_equal(a, b) for a, b in zip(taken, rounds(RS2(ratio=0.25, replacement=True), 40)))
    assert [len(b) for b in selector(FakeState(num_samples=120, batch_size=8))] == [8, 8, 8, 6]


def test_replacement_is_named_in_the_repr_and_checked():
    assert repr(from_string("rs2:ratio=0.2,replacement=True")) == "RS2(ratio=0.2, replacement=True)"
    assert repr(RS2(ratio=0.2)) == "RS2(ratio=0.2)"
    with pytest.raises(ValueError, match="replacement='yes' must be True"):
        RS2(replacement="yes")
    # The same step budget either way: a round is k samples.
    assert RS2(0.25, replacement=True).expected_steps(8, 200, 10) == RS2(0.25).expected_steps(8, 200, 10) == 40


def test_a_fit_with_replacement_trains_k_samples_a_round():
    x, y = make_data(n=200)
    loop = make_loop(RS2(ratio=0.25, replacement=True), batch_size=10)
    hist = loop.fit((x, y), epochs=8, verbose=0)
    assert list(hist.frame["samples_seen"]) == [50 * e for e in range(1, 9)]
    assert loop.trained_counts.sum() == 400 and not np.array_equal(loop.trained_counts, np.full(200, 2))
