"""loop.data: where the training data lives is chosen once, and both kinds answer the same interface alike."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import make_data, make_loop, make_model

from loop import RandomAccess, objective
from loop.data import ResidentData, StreamedData, training_data
from loop.protocol import FlatPlan
from loop.tables import Tables


def _data(x, y, limit, model=None, previous=None):
    name, loss_fn = objective.per_sample_loss("sparse_categorical_crossentropy")
    return training_data(x, y, loss_name=name, loss_fn=loss_fn, model=model or make_model(),
                         resident_limit_bytes=limit, previous=previous)


def test_the_limit_chooses_the_kind_once_and_both_answer_alike():
    x, y = make_data(n=40)
    resident, streamed = _data(x, y, None), _data(x, y, 0)
    assert isinstance(resident, ResidentData) and not resident.streaming
    assert isinstance(streamed, StreamedData) and streamed.streaming
    for data in (resident, streamed):
        assert data.num_samples == 40 and data.num_classes == 3 and data.task.kind == "classification"
        np.testing.assert_array_equal(data.labels, y)
        np.testing.assert_array_equal(data.y.numpy(), y)
        np.testing.assert_allclose(data.head(2).numpy(), x[:2])
    assert resident.inputs is x and isinstance(streamed.inputs, RandomAccess)  # what state.inputs shows
    # A random-access source that fits is read onto the device; data over the limit streams.
    assert isinstance(_data(RandomAccess(x, y), None, None), ResidentData)
    assert isinstance(_data(x, y, x.nbytes + y.nbytes - 1), StreamedData)


def test_the_same_arrays_keep_their_data_and_others_get_new():
    x, y = make_data(n=24)
    first = _data(x, y, None)
    assert _data(x, y, None, previous=first) is first
    assert _data(x.copy(), y, None, previous=first) is not first


def test_sample_weights_belong_to_the_data_and_weight_each_plan():
    x, y = make_data(n=6)
    name, loss_fn = objective.per_sample_loss("sparse_categorical_crossentropy")
    model = make_model()

    def data(previous=None, **weights):
        return training_data(x, y, loss_name=name, loss_fn=loss_fn, model=model, resident_limit_bytes=None,
                             previous=previous, **weights)

    plain = data()
    plan = FlatPlan(np.array([5, 0, 5], np.int32), np.array([1.0, 0.5, 2.0], np.float32), np.array([0, 3], np.int32))
    assert plain.sample_weight is None and plain.plan_weights(plan) is plan.weights
    weights = np.arange(6, dtype=np.float32)
    weighted = data(plain, sample_weight=weights)
    assert weighted is not plain and weighted.x is plain.x  # only the weights differ: the device tensors are shared
    np.testing.assert_array_equal(weighted.plan_weights(plan), [5.0, 0.0, 10.0])
    np.testing.assert_array_equal(weighted.device_sample_weight.numpy(), weights)
    assert data(weighted, sample_weight=weights.copy()) is weighted  # equal weights: kept
    by_class = data(weighted, class_weight={0: 3.0})
    np.testing.assert_array_equal(by_class.sample_weight, np.where(y == 0, 3.0, 1.0))


def test_feeders_stage_the_rows_the_step_gathers():
    x, y = make_data(n=30)
    indices = np.array([3, 17, 29, 0], np.int32)
    for data in (_data(x, y, None), _data(x, y, 0)):
        feeder = data.feeder(Tables(data.num_samples), steps_per_execution=2, batch_size=2)
        plan = FlatPlan(indices, np.ones(4, np.float32), np.array([0, 2, 4], np.int32))
        feeder.start(plan, 0)
        pieces = []
        for first, last in feeder.pieces(0, 2):  # each piece's rows are ready while it trains
            pieces.append((first, last))
            piece = indices[plan.bounds[first]:plan.bounds[last]]
            rows_x, rows_y = data.rows(tf.constant(piece))
            np.testing.assert_allclose(rows_x.numpy(), x[piece])
            np.testing.assert_array_equal(rows_y.numpy(), y[piece])
        assert pieces[0][0] == 0 and pieces[-1][1] == 2
        feeder.stop()


def test_score_batches_the_indices_on_both_kinds():
    x, y = make_data(n=30)
    indices = np.array([5, 1, 28, 7, 7, 12, 0], np.int64)
    for data in (_data(x, y, None), _data(x, y, 0)):
        seen = []

        def score_batch(batch):
            x_rows, _ = data.score_rows(batch)
            seen.append(batch.numpy().tolist())
            return tf.reduce_sum(x_rows, axis=1)

        out = data.score(indices, score_batch, batch_size=3)
        np.testing.assert_allclose(out, x[indices].sum(axis=1), rtol=1e-6)
        assert seen == [[5, 1, 28], [7, 7, 12], [0]]
        assert data.score(np.zeros([0], np.int64), score_batch, 3).shape == (0,)


def test_evaluation_batches_are_the_same_from_arrays_and_sources():
    x, y = make_data(n=30)
    vx, vy = make_data(n=11, seed=1)
    data = _data(x, y, None)
    for evaluation in (data.evaluation_data(vx, vy, "validation_data"),
                       data.evaluation_data(RandomAccess(vx, vy), None, "validation_data")):
        batches = list(evaluation.batches(4))
        assert [len(b[1]) for b in batches] == [4, 4, 3]
        np.testing.assert_allclose(np.concatenate([b[0].numpy() for b in batches]), vx)
        np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), vy)


@pytest.mark.parametrize("limit", [None, 0])
def test_evaluation_data_is_checked_against_the_training_data(limit):
    x, y = make_data(n=30)
    data = _data(x, y, limit)
    with pytest.raises(ValueError, match="validation_data: x has sample shape"):
        data.evaluation_data(np.zeros([5, 4], np.float32), np.zeros([5], np.int32), "validation_data")
    with pytest.raises(ValueError, match=r"validation_data: label \[7\] at sample 0 is outside \[0, 3\)"):
        data.evaluation_data(x[:5], np.full([5], 7, np.int32), "validation_data")


def test_the_functions_are_built_once_and_rebuilt_when_the_data_or_selector_changes():
    x, y = make_data(n=32)
    loop = make_loop()
    with pytest.raises(RuntimeError, match="call fit"):
        loop.make_functions()
    loop.fit(x, y, epochs=1, verbose=0)
    functions = loop.make_functions()
    assert loop.make_functions() is functions and loop.make_functions(force=True) is not functions
    functions = loop.functions
    loop.fit(x, y, epochs=1, verbose=0)
    assert loop.functions is functions  # the same arrays: the same data and functions
    loop.selector = "shuffle"
    assert loop.functions is None
    loop.fit(x, y, epochs=1, verbose=0)
    functions = loop.functions
    loop.fit(x.copy(), y, epochs=1, verbose=0)
    assert loop.functions is not functions
