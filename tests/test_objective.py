"""loop.objective: per-sample losses through Keras' public API, metrics chosen by shape, the task."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import make_data, make_loop, make_model
from loop.objective import infer_task, make_metric, per_sample_loss


def test_a_loss_object_is_called_through_its_public_call_without_reduction():
    y, p = tf.constant([0, 2]), tf.constant([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    name, fn = per_sample_loss(keras.losses.SparseCategoricalCrossentropy(reduction="sum"))
    np.testing.assert_allclose(fn(y, p).numpy(), -np.log([0.7, 0.8]), rtol=1e-6)
    assert name == "sparse_categorical_crossentropy"
    _, fn = per_sample_loss("mse")
    assert fn(tf.ones([3, 2]), tf.zeros([3, 2])).shape == (3,)
    with pytest.raises(ValueError, match="unknown loss 'crossentropyy'"):
        per_sample_loss("crossentropyy")


@pytest.mark.parametrize("y_shape,p_shape,expected", [
    ((8,), (8, 3), keras.metrics.SparseCategoricalAccuracy),
    ((8, 1), (8, 3), keras.metrics.SparseCategoricalAccuracy),
    ((8, 3), (8, 3), keras.metrics.CategoricalAccuracy),
    ((8, 1), (8, 1), keras.metrics.BinaryAccuracy),
])
def test_accuracy_is_chosen_by_shapes_as_compile_does(y_shape, p_shape, expected):
    metric = make_metric("accuracy", y_shape, p_shape)
    assert type(metric) is expected and metric.name == "accuracy"


def test_accuracy_follows_the_shapes_whatever_the_loss_is_called():
    x, y = make_data(n=64)

    def my_loss(y_true, y_pred):  # a name that says nothing about sparse or one-hot
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)

    loop = make_loop(loss=my_loss)
    loop.fit((x, y), epochs=1, verbose=0)
    assert type(loop.train_metrics.metrics[0]) is keras.metrics.SparseCategoricalAccuracy


def test_task_from_loss_targets_and_outputs():
    model = make_model()
    assert infer_task("mse", np.zeros(4), model) == ("regression", None)
    assert infer_task("sparse_categorical_crossentropy", np.array([0, 1]), model) == ("classification", 3)
    assert infer_task("categorical_crossentropy", np.eye(5), model) == ("classification", 5)
    with pytest.raises(ValueError, match="class labels must be integers"):
        infer_task("binary_crossentropy", np.array([0.5, 1.0]), keras.Sequential([keras.Input((2,)),
                                                                                keras.layers.Dense(1)]))
