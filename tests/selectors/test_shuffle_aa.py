"""ShuffleAA: Shuffle on its own random stream, the benchmark's A/A control."""

import numpy as np
import pytest

from loop.selectors import Shuffle, ShuffleAA, from_string, registered
from helpers import FakeState, batches_of, flatten, make_data, make_loop


def plan(selector, epoch=0, seed=0, n=120, batch_size=16):
    return batches_of(selector(FakeState(num_samples=n, batch_size=batch_size, epoch=epoch, seed=seed)))


def test_a_fresh_permutation_every_epoch_cut_like_shuffles():
    for drop_last in (False, True):
        ours, theirs = plan(ShuffleAA(drop_last=drop_last)), plan(Shuffle(drop_last=drop_last))
        assert [len(b) for b in ours] == [len(b) for b in theirs] == [16] * 7 + ([] if drop_last else [8])
    order = np.concatenate(plan(ShuffleAA()))
    assert np.array_equal(np.sort(order), np.arange(120))
    assert not np.array_equal(order, np.concatenate(plan(ShuffleAA(), epoch=1)))


def test_its_permutations_are_not_shuffles():
    for seed in range(5):
        for epoch in range(3):
            ours = np.concatenate(plan(ShuffleAA(), epoch, seed))
            assert not np.array_equal(ours, np.concatenate(plan(Shuffle(), epoch, seed)))
            assert not np.array_equal(ours, np.concatenate(plan(Shuffle(), epoch, seed + 1)))


def test_reproducible_by_seed_and_epoch_with_no_state_to_resume():
    a, b = ShuffleAA(), ShuffleAA()
    first = [np.concatenate(plan(a, epoch)) for epoch in range(4)]
    assert np.array_equal(np.concatenate(plan(b, 3)), first[3])   # a fresh object at epoch 3: what resuming sees
    assert all(np.array_equal(np.concatenate(plan(b, e)), first[e]) for e in range(4))
    assert not np.array_equal(np.concatenate(plan(a, 0, seed=1)), first[0])
    assert a.get_state() == {} and repr(a.clone()) == "ShuffleAA()"


def test_its_first_positions_are_spread_as_a_uniform_permutations():
    firsts = np.array([np.concatenate(plan(ShuffleAA(), 0, seed, n=10, batch_size=10))[0] for seed in range(2000)])
    counts = np.bincount(firsts, minlength=10)
    assert counts.min() > 140 and counts.max() < 260   # 200 each expected; 4 standard deviations = 54


def test_name_repr_and_tune_space():
    assert registered()["shuffle_aa"] is ShuffleAA
    assert repr(ShuffleAA()) == "ShuffleAA()" and repr(from_string("shuffle_aa")) == "ShuffleAA()"
    assert repr(from_string("shuffle_aa:drop_last=True")) == "ShuffleAA(drop_last=True)"
    assert getattr(ShuffleAA, "tune_space", {}) == getattr(Shuffle, "tune_space", {}) == {}
    assert not isinstance(ShuffleAA(), Shuffle)   # never taken for the baseline itself


@pytest.mark.parametrize("seed", [0, 3])
def test_a_fit_repeats_by_seed_and_differs_from_shuffles(seed):
    x, y = make_data(n=96)

    def fit(selector):
        loop = make_loop(selector, batch_size=16, seed=seed)
        loop.fit(x, y, epochs=2, verbose=0)
        assert np.array_equal(loop.trained_counts, np.full(96, 2))
        return np.concatenate([w.ravel() for w in loop.model.get_weights()])

    ours = fit(ShuffleAA())
    assert np.array_equal(ours, fit(ShuffleAA()))
    assert not np.allclose(ours, fit(Shuffle()))
