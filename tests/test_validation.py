"""loop.validation: every check of user data and arguments, on its own."""

import numpy as np
import pytest
import tensorflow as tf

from loop import objective
from loop.validation import (as_arrays, check_arrays, check_labels, check_like, check_loss_applies,
                             positive_int)


def test_data_comes_as_a_pair_or_as_x_and_y():
    x, y = np.zeros((4, 2)), np.arange(4)
    for got in (as_arrays((x, y), None, "d"), as_arrays(x, y, "d"), as_arrays([x, y.tolist()], None, "d")):
        assert isinstance(got[0], np.ndarray) and got[1].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="must be an"):
        as_arrays(x, None, "d")
    with pytest.raises(ValueError, match="tf.data.Dataset"):
        as_arrays(tf.data.Dataset.from_tensor_slices((x, y)), None, "d")


@pytest.mark.parametrize("x,y,message", [
    (np.zeros((3, 2)), np.zeros(4), "x has 3 samples but y has 4"),
    ({"a": np.zeros((3, 2)), "b": np.zeros((2, 2))}, np.zeros(3), "different lengths"),
    (np.zeros((0, 2)), np.zeros(0), "the dataset is empty"),
    (np.array(["a", "b"]), np.zeros(2), "encode the inputs as numbers"),
    (np.zeros((2, 2)), np.array([0.0, np.nan]), "y holds NaN"),
    (np.float32(1.0), np.zeros(1), "leading sample dimension"),
])
def test_bad_arrays(x, y, message):
    with pytest.raises(ValueError, match=message):
        check_arrays(x, y, "d")


def test_labels_and_shapes():
    check_labels(np.array([0, 2, 1]), 3, True, "v")
    with pytest.raises(ValueError, match=r"v: label \[3\] at sample 1 is outside \[0, 3\)"):
        check_labels(np.array([0, 3, 1]), 3, True, "v")
    check_labels(np.array([0, 3]), None, True, "v")  # regression: nothing to check
    with pytest.raises(ValueError, match=r"y has sample shape \(2,\)"):
        check_like(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((5, 3)), np.zeros(5), "v")
    with pytest.raises(ValueError, match="another structure"):
        check_like({"a": np.zeros((2, 3))}, np.zeros(2), np.zeros((5, 3)), np.zeros(5), "v")


def test_loss_is_tried_on_the_targets_before_tracing():
    name, fn = objective.per_sample_loss("sparse_categorical_crossentropy")
    probs = tf.fill([4, 3], 1 / 3)
    check_loss_applies(name, fn, np.array([0, 1, 2, 0]), probs)
    with pytest.raises(ValueError, match="looks one-hot"):
        check_loss_applies(name, fn, np.eye(3)[[0, 1, 2, 0]], probs)
    name, fn = objective.per_sample_loss("categorical_crossentropy")
    with pytest.raises(ValueError, match="takes one-hot targets"):
        check_loss_applies(name, fn, np.array([0, 1, 2, 0]), probs)
    with pytest.raises(ValueError, match="one value per sample"):
        check_loss_applies("total", lambda y, p: tf.reduce_sum(p), np.array([0, 1, 2, 0]), probs)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None])
def test_positive_int(value):
    with pytest.raises(ValueError, match=f"n must be a positive integer, got {value!r}"):
        positive_int("n", value)
    assert positive_int("n", None, allow_none=True) is None and positive_int("n", np.int64(3)) == 3
