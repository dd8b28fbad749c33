import numpy as np
import pytest

from loop.selectors import DyBAT
from helpers import batches_of


def _train(selector, epochs, make_state, num_samples=100, batch_size=10, loss_of_batch=None, drop=0.5):
    """Drives the selector like the loop: each trained batch records a loss that shrinks when trained."""
    losses = np.full(num_samples, np.nan, np.float32)
    base = np.random.default_rng(7).random(num_samples // batch_size) + 1.0
    plans = []
    for epoch in range(epochs):
        state = make_state(num_samples=num_samples, batch_size=batch_size, epoch=epoch, epochs=epochs,
                           losses=losses)
        plan = batches_of(selector(state))
        plans.append((state.losses.copy(), plan))
        for batch in plan:
            b = batch[0] // batch_size
            losses[batch] = base[b]
            base[b] *= drop
    return plans


def test_dybat_epoch0_trains_all_fixed_batches_in_order(make_state):
    plan = batches_of(DyBAT(delta=0.3)(make_state(num_samples=105, batch_size=10)))
    assert len(plan) == 10  # drop_last
    assert np.array_equal(np.stack(plan), np.arange(100).reshape(10, 10))


@pytest.mark.parametrize("order", ["dataset", "loss"])
@pytest.mark.parametrize("delta", [0.2, 0.3, 0.5, 1.0])
def test_dybat_picks_top_batches_and_keeps_step_budget(make_state, delta, order):
    selector = DyBAT(delta=delta, order=order)
    m = int(delta * 10)
    epochs = selector.epochs_for_budget(4, 100, 10)
    plans = _train(selector, epochs, make_state)
    steps = sum(len(p) for _, p in plans)
    assert 4 * 10 <= steps < 4 * 10 + m  # the baseline's 4 epochs x 10 batches, rounded up to whole rounds
    for epoch, (losses, plan) in enumerate(plans[1:], 1):
        batch_loss = losses[np.arange(100).reshape(10, 10)].mean(axis=1)
        ids = [b[0] // 10 for b in plan]
        top = list(np.argsort(-batch_loss, kind="stable")[:m])
        if delta == 1.0:
            assert ids == list(range(10))
        elif order == "dataset":
            # Every round after round 0 is the top-m by the losses recorded so far, trained in dataset order.
            assert ids == sorted(top)
        else:
            assert ids == top  # highest recorded loss first


def test_dybat_trains_chosen_batches_in_dataset_order_by_default(make_state):
    """The reference (run.py, turbo_train) sorts the chosen batch ids and walks the loader in order."""
    selector = DyBAT(delta=0.4)
    assert selector.order == "dataset"
    selector(make_state(num_samples=100, batch_size=10))  # round 0: batches 0..9
    # Recorded batch losses: batch 7 hardest, then 2, 9, 4; the rest easy.
    batch_loss = np.array([0.1, 0.2, 5.0, 0.3, 2.0, 0.1, 0.2, 9.0, 0.3, 3.0])
    state = make_state(num_samples=100, batch_size=10, epoch=1, losses=np.repeat(batch_loss, 10))
    plan = batches_of(selector(state))
    assert [b[0] // 10 for b in plan] == [2, 4, 7, 9]
    assert all(np.array_equal(b, np.arange(10 * i, 10 * i + 10)) for b, i in zip(plan, [2, 4, 7, 9]))
    loss_first = DyBAT(delta=0.4, order="loss")
    loss_first(make_state(num_samples=100, batch_size=10))
    assert [b[0] // 10 for b in batches_of(loss_first(state))] == [7, 2, 9, 4]


def test_dybat_stream_mode_keeps_b_steps_per_epoch(make_state):
    selector = DyBAT(delta=0.3, rounds_per_call=None)
    plans = _train(selector, 4, make_state)
    assert [len(p) for _, p in plans] == [10, 10, 10, 10]
    assert selector.epochs_for_budget(4, 100, 10) == 4


def test_dybat_rounds_per_call_one_is_the_paper(make_state):
    selector = DyBAT(delta=0.3, rounds_per_call=1)
    plans = _train(selector, 6, make_state)
    assert [len(p) for _, p in plans] == [10, 3, 3, 3, 3, 3]
    for losses, plan in plans[1:]:
        batch_loss = losses[np.arange(100).reshape(10, 10)].mean(axis=1)
        assert sorted(b[0] // 10 for b in plan) == sorted(np.argsort(-batch_loss)[:3])
    assert selector.epochs_for_budget(3, 100, 10) == 1 + 7  # 10 + 7 * 3 >= 30 steps


def test_dybat_bad_arguments():
    for delta in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match=f"delta={delta}"):
            DyBAT(delta=delta)
    with pytest.raises(ValueError, match="order='desc'"):
        DyBAT(order="desc")


def test_dybat_state_round_trip(make_state):
    a = DyBAT(delta=0.3)
    _train(a, 2, make_state)
    b = DyBAT(delta=0.3)
    b.set_state(a.get_state())
    state = make_state(num_samples=100, batch_size=10, epoch=2, losses=np.random.default_rng(0).random(100))
    assert all(np.array_equal(x, y) for x, y in zip(batches_of(a(state)), batches_of(b(state))))


@pytest.mark.parametrize("rounds_per_call", [1, 2, None])
@pytest.mark.parametrize("num_samples, batch_size", [(100, 10), (105, 10), (1000, 64), (64, 64), (127, 64)])
@pytest.mark.parametrize("delta", [0.1, 0.5, 1.0])
def test_dybat_budget_covers_the_baselines_steps_with_a_partial_batch(make_state, num_samples, batch_size, delta,
                                                                     rounds_per_call):
    """Shuffle trains ceil(n / b) batches an epoch; DyBAT drops the partial one, and must still match the steps."""
    selector = DyBAT(delta=delta, rounds_per_call=rounds_per_call)
    baseline = 3 * -(-num_samples // batch_size)
    epochs = selector.epochs_for_budget(3, num_samples, batch_size)
    steps = []
    for epoch in range(epochs):
        state = make_state(num_samples=num_samples, batch_size=batch_size, epoch=epoch, epochs=epochs,
                           losses=np.random.default_rng(epoch).random(num_samples))
        steps.append(len(batches_of(selector(state))))
    assert sum(steps[:-1]) < baseline <= sum(steps)  # enough steps, and the fewest epochs that give them


def test_dybat_budget_bad_arguments():
    with pytest.raises(ValueError, match="batch_size=200 is larger than the 100 samples"):
        DyBAT().epochs_for_budget(3, 100, 200)
    with pytest.raises(ValueError, match="baseline_epochs=-1"):
        DyBAT().epochs_for_budget(-1, 100, 10)
    assert DyBAT().epochs_for_budget(0, 100, 10) == 0
