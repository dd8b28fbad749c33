"""The per-sample quantities a selector declares (``needs``): what the scoring pass and the step compute."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from loop import Loop
from loop.protocol import needs_of
from loop.quantities import Forward, split_last_layer

N, D, K = 96, 5, 3


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype("float32")
    return x, np.argmax(x[:, :K], axis=1).astype("int64")


def mlp(head="softmax"):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((D,))
    h = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    if head == "softmax":
        out = keras.layers.Dense(K, activation="softmax")(h)
    elif head == "logits":
        out = keras.layers.Dense(K)(h)
    else:  # a Dense layer, then a Softmax layer
        out = keras.layers.Softmax()(keras.layers.Dense(K)(h))
    return keras.Model(inputs, out)


class Probe:
    """A plan selector that reads every sample's declared quantities at the start of each epoch."""

    def __init__(self, needs):
        self.needs = needs
        self.seen = []

    def __call__(self, state):
        self.seen.append(state.quantities(np.arange(state.num_samples)))
        return np.array_split(state.rng.permutation(state.num_samples), 4)


def fit(selector, head="softmax", epochs=1):
    x, y = data()
    from_logits = head == "logits"
    loop = Loop(mlp(head), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                optimizer=keras.optimizers.SGD(0.1), selector=selector, batch_size=24, seed=0)
    loop.fit((x, y), epochs=epochs, verbose=0)
    return loop


@pytest.mark.parametrize("head", ["softmax", "logits", "activation_layer"])
def test_last_layer_gradients_are_p_minus_y_and_features_the_last_layers_input(head):
    loop = fit(Probe(("features", "last_layer_gradients", "outputs")), head)
    q = loop.selector.seen[0]  # at the start of epoch 0: the weights as built
    x, y = data()
    model = mlp(head)  # the same seed: the same initial weights
    hidden = keras.Model(model.input, model.get_layer("hidden").output)(x).numpy()
    logits = hidden @ model.layers[-1 if head != "activation_layer" else -2].kernel.numpy() + \
        model.layers[-1 if head != "activation_layer" else -2].bias.numpy()
    p = tf.nn.softmax(logits).numpy()
    np.testing.assert_allclose(q["features"], hidden, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q["last_layer_gradients"], p - np.eye(K)[y], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(q["outputs"], logits if head == "logits" else p, rtol=1e-4, atol=1e-6)
    losses = keras.losses.SparseCategoricalCrossentropy(from_logits=head == "logits", reduction=None)(
        y, q["outputs"]).numpy()
    np.testing.assert_allclose(q["losses"], losses, rtol=1e-4, atol=1e-6)
    assert set(q) == {"losses", "outputs", "features", "last_layer_gradients"}


def test_only_the_declared_quantities_are_computed():
    loop = fit(Probe(("last_layer_gradients",)))
    assert set(loop.selector.seen[0]) == {"losses", "last_layer_gradients"}
    assert loop.functions.quantities_batch is not None
    forward = Forward(loop.model, loop.loss_fn)  # nothing declared: the model as it is, no split
    assert not forward.split and forward.body is None


def test_the_quantities_pass_writes_the_loss_table():
    loop = fit(Probe(("features",)), epochs=1)
    before = loop.tables.loss.numpy().copy()
    fresh = loop.quantities(np.arange(10))["losses"]
    after = loop.tables.loss.numpy()
    np.testing.assert_allclose(after[:10], fresh, rtol=1e-6)
    np.testing.assert_array_equal(after[10:], before[10:])


class FeatureFilter:
    """An in-step filter that keeps every row and stores what its batch held."""

    filter_mode = "compact"

    def __init__(self, needs=("features", "last_layer_gradients")):
        self.needs = needs
        self.got = {}

    def on_train_begin(self, state):
        self.features = tf.Variable(tf.zeros([0, 8]), shape=tf.TensorShape([None, 8]), trainable=False)
        self.gradients = tf.Variable(tf.zeros([0, K]), shape=tf.TensorShape([None, K]), trainable=False)
        self.indices = tf.Variable(tf.zeros([0], tf.int32), shape=tf.TensorShape([None]), trainable=False)
        self.none = tf.Variable(0, trainable=False)

    def __call__(self, state):
        return [np.arange(state.num_samples)]  # one batch: the step sees every row once, before any step

    def keep(self, batch):
        if batch.features is None or batch.last_layer_gradients is None:
            self.none.assign(1)
        else:
            self.features.assign(batch.features)
            self.gradients.assign(batch.last_layer_gradients)
            self.indices.assign(batch.indices)
        return batch.weights


def test_an_in_step_filter_sees_the_declared_quantities_of_its_candidates():
    selector = FeatureFilter()
    loop = fit(selector)
    got = loop.selector
    x, y = data()
    model = mlp()
    hidden = keras.Model(model.input, model.get_layer("hidden").output)(x).numpy()
    p = model(x).numpy()
    order = got.indices.numpy()
    np.testing.assert_allclose(got.features.numpy(), hidden[order], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.gradients.numpy(), (p - np.eye(K)[y])[order], rtol=1e-4, atol=1e-6)
    assert int(got.none.numpy()) == 0


def test_a_filter_that_declares_nothing_gets_none():
    loop = fit(FeatureFilter(needs=("losses",)))
    assert int(loop.selector.none.numpy()) == 1


def test_needs_of_checks_the_names():
    class Bad:
        needs = ("features", "hessians")

        def __call__(self, state):
            return [np.arange(state.num_samples)]

    with pytest.raises(ValueError, match=r"unknown per-sample quantities \['hessians'\].*'features'"):
        needs_of(Bad())
    assert needs_of(lambda state: None) == ("losses",)
    assert needs_of(Probe("features")) == ("losses", "features")
    with pytest.raises(ValueError, match="hessians"):
        fit(Bad())


def test_a_model_the_loop_cannot_split_is_refused_with_what_to_change():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(K, activation="softmax")

        def call(self, x):
            return self.dense(x)

    sub = Sub()
    sub(np.zeros((1, D), "float32"))
    with pytest.raises(ValueError, match="keras.Input"):
        split_last_layer(sub)
    keras.utils.set_random_seed(0)
    conv = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3), keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match="GlobalAveragePooling2D"):
        split_last_layer(conv)
    doubled = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K, activation="relu"), keras.layers.Softmax()])
    with pytest.raises(ValueError, match="relu"):
        split_last_layer(doubled)


def test_a_filter_that_needs_features_is_refused_under_a_strategy_with_why():
    from loop.selectors import DivBS

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = mlp()
    loop = Loop(model, loss="sparse_categorical_crossentropy", optimizer="sgd", selector=DivBS(), batch_size=24,
                seed=0, strategy=strategy)
    with pytest.raises(ValueError, match="DivBS.*needs features, last_layer_gradients of its candidates"):
        loop.fit(data(), epochs=1, verbose=0)


def test_the_usage_example_of_needs_trains():
    import os
    import re

    from loop.selectors import Selector

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "usage.md")
    with open(path) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    block = next(b for b in blocks if "class NearestToMean" in b)
    scope = {"np": np, "Selector": Selector}
    exec(compile(block, "docs/usage.md", "exec"), scope)
    loop = fit(scope["NearestToMean"](), epochs=2)
    assert loop.tables.counts()["samples_seen"] == 2 * N // 2
