"""Reference models: build, forward pass, one gradient step, one short Loop fit."""

import numpy as np
import pytest

import keras
import tensorflow as tf

from loop.datasets import models

try:
    from loop import Loop
except ImportError:  # The core loop is written concurrently.
    Loop = None

CLASSIFY = "sparse_categorical_crossentropy"

# (builder, input_shape, num_classes, kwargs)
FAST = {
    "mnist_cnn": (models.mnist_cnn, (28, 28, 1), 10, {}),
    "fashion_mnist_cnn": (models.fashion_mnist_cnn, (28, 28, 1), 10, {}),
    "resnet20": (models.resnet20, (32, 32, 3), 10, {}),
    "simple_cnn": (models.simple_cnn, (32, 32, 3), 100, {}),
    "sentiment_lstm": (models.sentiment_lstm, (12,), 2, {"vocab_size": 30}),
    "mlp": (models.mlp, (26,), 10, {}),
    "mlp_regressor": (models.mlp_regressor, (13,), 1, {}),
}
APPLICATIONS = models.cifar_models()
SLOW = {
    "resnet18": (models.resnet18, (32, 32, 3), 10, {}),
    **{name: (APPLICATIONS[name], (32, 32, 3), 10, {})
       for name in ("resnet50", "efficientnet_b4", "efficientnet_v2s",
                    "mobilenet_v3_small")},
}


def _data(input_shape, num_classes, n, seed=0):
    rng = np.random.default_rng(seed)
    if len(input_shape) == 1 and num_classes == 2:  # token ids
        x = rng.integers(0, 30, (n, *input_shape)).astype(np.int32)
    else:
        x = rng.normal(size=(n, *input_shape)).astype(np.float32)
    if num_classes == 1:
        y = rng.normal(size=n).astype(np.float32)
    else:
        y = (np.arange(n) % num_classes).astype(np.int32)
    return x, y


def _forward_and_step(builder, input_shape, num_classes, kwargs, n=4):
    model = builder(input_shape=input_shape, num_classes=num_classes, **kwargs)
    x, y = _data(input_shape, num_classes, n)
    probabilities = model(x, training=False).numpy()
    if num_classes == 1:
        assert probabilities.shape == (n, 1)
        loss_fn = keras.losses.MeanSquaredError()
    else:
        assert probabilities.shape == (n, num_classes)
        np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-4)
        loss_fn = keras.losses.SparseCategoricalCrossentropy()
    optimizer = keras.optimizers.SGD(0.01)
    before = [w.numpy().copy() for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None for g in grads)
    optimizer.apply_gradients(zip(grads, model.trainable_weights))
    assert np.isfinite(float(loss))
    assert any(not np.array_equal(b, w.numpy())
               for b, w in zip(before, model.trainable_weights))
    return model


@pytest.mark.parametrize("name", FAST)
def test_model_forward_and_gradient_step(name):
    builder, shape, classes, kwargs = FAST[name]
    model = _forward_and_step(builder, shape, classes, kwargs)
    assert builder.__doc__
    assert not model.compiled


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_large_model_forward_and_gradient_step(name):
    builder, shape, classes, kwargs = SLOW[name]
    _forward_and_step(builder, shape, classes, kwargs, n=2)


def test_resnet20_is_resnet20():
    model = models.resnet20()
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)
             and l.kernel_size == (3, 3)]
    assert len(convs) == 19  # stem + 9 blocks x 2; + the dense layer = 20
    assert 250_000 < model.count_params() < 300_000


def test_mnist_models_follow_the_papers():
    mnist = models.mnist_cnn()
    convs = [l for l in mnist.layers if isinstance(l, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 32]
    assert all(c.kernel_size == (2, 2) for c in convs)
    rates = [l.rate for l in mnist.layers if isinstance(l, keras.layers.Dropout)]
    assert rates == [0.3, 0.3, 0.5]
    fashion = models.fashion_mnist_cnn()
    convs = [l for l in fashion.layers if isinstance(l, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 128, 64]
    assert sum(isinstance(l, keras.layers.PReLU) for l in fashion.layers) == 4
    assert sum(isinstance(l, keras.layers.MaxPooling2D) for l in fashion.layers) == 3


@pytest.mark.skipif(Loop is None, reason="loop.Loop not available yet")
@pytest.mark.parametrize("name", FAST)
def test_model_trains_in_loop(name):
    builder, shape, classes, kwargs = FAST[name]
    model = builder(input_shape=shape, num_classes=classes, **kwargs)
    x, y = _data(shape, classes, 16)
    loss, metrics = (("mse", ["mae"]) if classes == 1
                     else (CLASSIFY, ["accuracy"]))
    history = Loop(model, optimizer="adam", loss=loss, metrics=metrics,
                   batch_size=8, seed=0).fit((x, y), epochs=1, verbose=0)
    assert history is not None



@pytest.mark.skipif(Loop is None, reason="loop.Loop not available yet")
@pytest.mark.parametrize("name", ["iris", "boston", "spirals"])
def test_dataset_defaults_drive_loop(name, tmp_path, monkeypatch):
    import helpers as util

    from loop import datasets

    path = util.write_boston_csv(tmp_path / "boston-housing" / "BostonHousing.csv")
    util.trust(monkeypatch, "boston-housing/csv", path)
    ds = datasets.load(name, data_dir=tmp_path)
    history = Loop(ds.model(), optimizer="adam", loss=ds.loss, metrics=ds.metrics,
                   batch_size=8, seed=0).fit(
        (ds.x_train[:16], ds.y_train[:16]), epochs=1, verbose=0,
        validation_data=(ds.x_test[:8], ds.y_test[:8]))
    assert history is not None


def _bn_pair(shape, seed=0, **kwargs):
    from loop.datasets.models import FusedBatchNormalization

    rng = np.random.default_rng(seed)
    keras_bn, fused = keras.layers.BatchNormalization(**kwargs), FusedBatchNormalization(**kwargs)
    keras_bn.build(shape)
    fused.build(shape)
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        if getattr(keras_bn, name, None) is not None:
            value = rng.uniform(0.5, 1.5, getattr(keras_bn, name).shape).astype("float32")
            getattr(keras_bn, name).assign(value)
            getattr(fused, name).assign(value)
    return keras_bn, fused


def _bn_results(layer, x, g):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        objective = tf.reduce_sum(tf.cast(y, tf.float32) * g)
    grads = tape.gradient(objective, [x] + layer.trainable_weights)
    return [y, *grads, layer.moving_mean, layer.moving_variance, layer(x, training=False)]


@pytest.mark.parametrize("shape, kwargs", [((8, 5, 5, 4), {}), ((16, 3, 3, 2), {"momentum": 0.9, "epsilon": 1e-5}),
                                           ((6, 4), {}), ((8, 5, 5, 4), {"axis": 1}),
                                           ((8, 5, 5, 4), {"center": False})])
def test_fused_batch_norm_equals_keras_batch_norm(shape, kwargs):
    """Outputs, gradients, moving statistics and inference agree (the fused kernel or, where it cannot, Keras')."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(2.0, 3.0, size=shape).astype("float32"))
    g = tf.constant(rng.normal(size=shape).astype("float32"))
    keras_bn, fused = _bn_pair(shape, **kwargs)
    for a, b in zip(_bn_results(keras_bn, x, g), _bn_results(fused, x, g)):
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(a).max()))


def test_fused_batch_norm_under_mixed_bfloat16_casts_like_keras():
    import tensorflow as tf

    from loop.datasets.models import FusedBatchNormalization

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        x = tf.constant(np.random.default_rng(2).normal(size=(8, 4, 4, 3)).astype("float32"))
        keras_bn, fused = keras.layers.BatchNormalization(), FusedBatchNormalization()
        ya, yb = keras_bn(x, training=True), fused(x, training=True)
        assert yb.dtype == ya.dtype == tf.bfloat16 and fused.moving_mean.dtype == tf.float32
        np.testing.assert_allclose(np.asarray(tf.cast(yb, tf.float32)), np.asarray(tf.cast(ya, tf.float32)),
                                   atol=0.05)
        np.testing.assert_allclose(fused.moving_variance.numpy(), keras_bn.moving_variance.numpy(), rtol=1e-5)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_resnet20_uses_the_fused_batch_norm_and_saves_and_loads(tmp_path):
    from loop.datasets.models import FusedBatchNormalization, resnet20

    model = resnet20(input_shape=(8, 8, 3))
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in model.layers) == 21
    path = str(tmp_path / "resnet20.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_fashion_mnist_cnn_width_scales_filters_and_units():
    from loop.datasets import models

    half, full = models.fashion_mnist_cnn(width=0.5), models.fashion_mnist_cnn()
    conv = [layer.filters for layer in half.layers if hasattr(layer, "filters")]
    assert conv == [32, 64, 32] and [layer.filters for layer in full.layers if hasattr(layer, "filters")] == [64, 128,
                                                                                                            64]
    assert [layer.units for layer in half.layers if hasattr(layer, "units")] == [128, 10]
    with pytest.raises(ValueError, match="width=0"):
        models.fashion_mnist_cnn(width=0)
