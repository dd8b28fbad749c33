"""loop.protocol: the State, plan validation, the hooks, and how wrapping selectors forward them."""

import dataclasses

import numpy as np
import pytest

from helpers import make_data, make_loop
from loop.protocol import HOOKS, State, describe, in_step_filter, validate_plan
from loop.selectors import DyBAT, DynamicBatchSize, OrderedSGD, SelectiveBackprop, Shuffle


def _state(**changes):
    fields = dict(epoch=0, epochs=3, step=0, num_samples=10, batch_size=4, labels=np.arange(10) % 2,
                  num_classes=2, task="classification", losses=np.full(10, np.nan, np.float32),
                  loss_step=np.full(10, -1), rng=np.random.default_rng(0), logs={"loss": 1.0})
    return State(**{**fields, **changes})


def test_state_is_frozen_with_read_only_arrays():
    labels = np.arange(10) % 2
    state = _state(labels=labels)
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.epoch = 3
    with pytest.raises(ValueError, match="read-only"):
        state.losses[0] = 1.0
    with pytest.raises(TypeError):
        state.logs["loss"] = 0.0
    labels[0] = 1  # a view: the caller's array is not copied, and stays writable for its owner
    assert state.labels[0] == 1
    smaller = state.replace(batch_size=2)
    assert smaller.batch_size == 2 and state.batch_size == 4 and np.shares_memory(smaller.labels, labels)
    with pytest.raises(RuntimeError, match="no scorer"):
        state.score([0])


def test_validate_plan_flattens_batches_and_weights():
    plan = validate_plan([np.array([3, 1]), (np.array([0, 2, 9]), [0.5, 1.0, 2.0])], 10, "s")
    assert plan.indices.tolist() == [3, 1, 0, 2, 9] and plan.bounds.tolist() == [0, 2, 5]
    assert plan.weights.tolist() == [1.0, 1.0, 0.5, 1.0, 2.0] and plan.num_batches == 2
    rows = validate_plan(np.arange(8).reshape(2, 4), 10, "s")  # a 2-D plan array: one batch per row
    assert rows.bounds.tolist() == [0, 4, 8]


@pytest.mark.parametrize("plan,message", [
    (np.arange(6), r"batch 0 is a single index \(0\), not an index array"),
    ([np.arange(6).reshape(2, 3)], r"the mini-batch has shape \(2, 3\), not 1-D"),
    ([np.array([1, 2]), (np.array([1]), [1.0], "x")], "a tuple must be"),
    ([np.array([0, 10])], r"indices \[10\] are outside \[0, 10\)"),
    (iter([]), "empty plan"),
    (5, "returned int, not an iterable"),
])
def test_validate_plan_refuses_ambiguous_or_bad_plans(plan, message):
    with pytest.raises(ValueError, match=message):
        validate_plan(plan, 10, "s")


def test_in_step_filter_and_its_mode():
    assert in_step_filter(Shuffle()) == (None, None)
    keep, mode = in_step_filter(OrderedSGD())
    assert mode == "mask" and keep is not None
    assert in_step_filter(SelectiveBackprop())[1] == "accumulate"
    assert in_step_filter(SelectiveBackprop(accumulate=False))[1] == "compact"


def test_wrapping_selector_forwards_every_protocol_member():
    for base in (OrderedSGD(), SelectiveBackprop(), DyBAT()):
        wrapped = DynamicBatchSize(base)
        for member in HOOKS:
            assert hasattr(wrapped, member) == hasattr(base, member), member
        assert in_step_filter(wrapped)[1] == in_step_filter(base)[1]


def test_dynamic_batch_size_over_ordered_sgd_runs_in_mask_mode():
    x, y = make_data(n=64)
    loops = [make_loop(DynamicBatchSize(OrderedSGD(q=4), k0=16, k1=16), deterministic=True),
             make_loop(OrderedSGD(q=4), deterministic=True)]
    frames = [loop.fit((x, y), epochs=2, verbose=0).frame for loop in loops]
    assert [loop.step.variant for loop in loops] == ["mask", "mask"]
    # The same plans and the same one-pass step: the wrapper trains exactly like the bare selector.
    columns = ["step", "samples_seen", "samples_backpropagated", "loss", "accuracy"]
    assert frames[0][columns].equals(frames[1][columns])


def test_describe_names_functions_and_objects():
    def my_selector(state):
        return []
    assert describe(my_selector) == "my_selector"
    assert describe(DyBAT(delta=0.25)) == "DyBAT(delta=0.25)"
