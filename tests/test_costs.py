"""loop.costs: FLOPs from TensorFlow's cost analysis, and speedups predicted from sample counts."""

import keras
import numpy as np
import pytest

from loop import costs


def test_forward_flops_of_a_dense_model_match_the_weight_count():
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(30), keras.layers.Dense(5)])
    flops = costs.forward_flops(model, np.zeros((8, 20), np.float32))
    matmuls = 2 * (20 * 30 + 30 * 5)
    assert matmuls <= flops <= matmuls + 2 * (30 + 5)  # the matmuls, plus at most the bias adds


def test_forward_flops_grow_with_a_convolution():
    small = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    big = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3), keras.layers.Flatten(),
                            keras.layers.Dense(2)])
    x = np.zeros((1, 8, 8, 1), np.float32)
    conv_small = 2 * 6 * 6 * 9 * 1 * 4
    assert costs.forward_flops(small, x) >= conv_small
    assert costs.forward_flops(big, x) > 3 * costs.forward_flops(small, x)


def test_predicted_speedup_weighs_backward_passes_by_the_device_ratio():
    shuffle, filtered = (300, 300), (400, 100)  # forwarded, backpropagated to the same target
    assert costs.predicted_speedup(shuffle, shuffle, 2.0) == 1.0
    assert costs.predicted_speedup(shuffle, filtered, 2.0) == pytest.approx(900 / 600)
    # where backward passes are nearly free, forwarding more costs more
    assert costs.predicted_speedup(shuffle, filtered, 0.0) == pytest.approx(300 / 400)
    assert costs.training_flops(10, 400, 100) == 10 * (400 + 200)
    with pytest.raises(ValueError, match="backward_ratio=-1"):
        costs.predicted_speedup(shuffle, filtered, -1)
