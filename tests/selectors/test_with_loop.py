"""One short Loop.fit per selector on a tiny two-arm spiral: training must reduce the loss."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
loop_module = pytest.importorskip("loop.loop")

from loop.selectors import from_string  # noqa: E402

# online_batch at s_e = 10: the paper's 100 without its weights oscillates on 400 samples (see OnlineBatchSelection).
SPECS = ["homogeneous", "heterogeneous", "loss_sorted", "loss_sorted:per_class=True,refresh_every=2",
         "curriculum:ramp=0.3", "online_batch:s_e0=10,s_e_end=10,r_freq=1.0", "weighted_random",
         "dynamic:base='shuffle',k0=16,k1=64", "dybat:delta=0.5", "importance:score='gnorm',tau_th=1.0",
         "selective_backprop:beta=1.0",
         "stale_selective_backprop:beta=1.0", "infobatch", "ordered_sgd", "shuffle"]


def spiral(n=400, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.25, 1.75, n // 2) * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(scale=0.02, size=(n, 2))
    y = np.r_[np.zeros(n // 2), np.ones(n // 2)].astype(np.int32)
    return x.astype(np.float32), y


@pytest.mark.parametrize("spec", SPECS)
def test_fit_reduces_training_loss(spec):
    x, y = spiral()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(32, activation="tanh"),
                              keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(2, activation="softmax")])
    full_loss = lambda: float(np.mean(keras.losses.sparse_categorical_crossentropy(y, model(x))))  # noqa: E731
    before = full_loss()
    run = loop_module.Loop(model, optimizer=keras.optimizers.Adam(0.03), loss="sparse_categorical_crossentropy",
                           metrics=["accuracy"], selector=from_string(spec), batch_size=32, seed=0)
    run.fit((x, y), epochs=12, verbose=0)
    # The loss over the whole training set: the per-epoch train loss only covers the selected batches.
    after = full_loss()
    assert after < before - 0.01, (spec, before, after)
    assert len(run.history.frame) >= 1
    assert run.trained_counts.sum() > 0
