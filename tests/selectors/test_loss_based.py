import numpy as np
import pytest

from loop.selectors import Curriculum, LossSorted
from helpers import batches_of, flatten


def _losses(n=60, seed=0):
    losses = np.random.default_rng(seed).random(n).astype(np.float32)
    losses[[3, 7]] = np.nan
    return losses


def test_loss_sorted_desc_puts_never_seen_first(make_state):
    losses = _losses()
    order = flatten(LossSorted()(make_state(num_samples=60, losses=losses)))[0]
    assert set(order[:2]) == {3, 7}
    seen = losses[order[2:]]
    assert np.all(np.diff(seen) <= 0)


def test_loss_sorted_asc_puts_never_seen_last(make_state):
    losses = _losses()
    order = flatten(LossSorted(order="asc")(make_state(num_samples=60, losses=losses)))[0]
    assert set(order[-2:]) == {3, 7}
    assert np.all(np.diff(losses[order[:-2]]) >= 0)


def test_loss_sorted_per_class_interleaves_sorted_queues(make_state):
    state = make_state(num_samples=60, num_classes=3, batch_size=6, losses=np.random.default_rng(1).random(60))
    plan = LossSorted(per_class=True)(state)
    order = flatten(plan)[0]
    for c in range(3):
        queue = order[state.labels[order] == c]
        assert np.all(np.diff(state.losses[queue]) <= 0)
    for batch in batches_of(plan):
        assert np.all(np.bincount(state.labels[batch], minlength=3) == 2)


def test_loss_sorted_refresh_scores_every_k_epochs(make_state):
    selector = LossSorted(refresh_every=2)
    for epoch, expect in [(0, True), (1, False), (2, True)]:
        state = make_state(num_samples=30, epoch=epoch)
        order = flatten(selector(state))[0]
        assert bool(state.scored) == expect
        if expect:
            assert np.array_equal(order, np.arange(30)[::-1])  # true losses rise with the index


def test_loss_sorted_per_class_rejects_regression(make_state):
    LossSorted()(make_state(task="regression"))
    with pytest.raises(ValueError, match="regression"):
        LossSorted(per_class=True)(make_state(task="regression"))


@pytest.mark.parametrize("pacing", ["linear", "root", "geometric"])
def test_curriculum_pool_grows_from_start_to_all(make_state, pacing):
    selector = Curriculum(pacing=pacing, start=0.25, ramp=0.5)
    true_losses = np.random.default_rng(0).random(100)
    sizes = []
    for epoch in range(10):
        state = make_state(num_samples=100, epoch=epoch, epochs=10, true_losses=true_losses)
        order = flatten(selector(state))[0]
        sizes.append(len(order))
        assert len(np.unique(order)) == len(order)
        easiest = np.argsort(true_losses)[:len(order)]
        assert set(order) == set(easiest)
    assert sizes[0] == 25 and sizes[5:] == [100] * 5 and sizes == sorted(sizes)


def test_curriculum_hard_takes_highest_losses(make_state):
    true_losses = np.random.default_rng(0).random(100)
    order = flatten(Curriculum(order="hard", start=0.3)(make_state(num_samples=100, true_losses=true_losses)))[0]
    assert set(order) == set(np.argsort(-true_losses)[:30])


def test_curriculum_scores_with_the_current_model_by_default(make_state):
    """The default ranks by state.score (all samples, every epoch), not by the stale loss table."""
    stale = np.linspace(2.0, 0.1, 100)    # the table: the last samples look easy (just trained on, say)
    fresh = np.linspace(0.1, 2.0, 100)    # the current model: the first samples are the easy ones
    selector = Curriculum(start=0.2)
    assert selector.refresh_every == 1
    for epoch in range(3):
        state = make_state(num_samples=100, epoch=epoch, epochs=10, losses=stale, true_losses=fresh)
        order = flatten(selector(state))[0]
        assert len(state.scored) == 1 and np.array_equal(np.sort(state.scored[0]), np.arange(100))
        assert set(order) == set(range(len(order))) and len(order) >= 20


def test_curriculum_stale_variant_reads_the_loss_table_only(make_state):
    stale = np.linspace(2.0, 0.1, 100)
    state = make_state(num_samples=100, epoch=1, epochs=10, losses=stale, true_losses=stale[::-1])
    order = flatten(Curriculum(start=0.2, refresh_every=None)(state))[0]
    assert state.scored == [] and set(order) == set(range(100 - len(order), 100))
    every_other = Curriculum(refresh_every=2)
    scored = []
    for epoch in range(4):
        state = make_state(num_samples=100, epoch=epoch, epochs=10, losses=stale)
        every_other(state)
        scored.append(len(state.scored))
    assert scored == [1, 0, 1, 0]
