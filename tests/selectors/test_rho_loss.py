"""RhoLoss: the reducible-loss top-k, the holdout, the irreducible-loss table and its timing."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import FakeState, StepBatch, make_data, make_loop, make_model

from loop.selectors import IrreducibleLosses, RhoLoss, from_string


def _filter(irreducible, batch_size, presample):
    selector = RhoLoss(presample=presample)
    selector._batch_size, selector._big = batch_size, selector.presample_size(batch_size)
    selector.irreducible_ = tf.Variable(np.asarray(irreducible, np.float32))
    return selector


def _batch(indices, losses, weights=None):
    indices = tf.constant(indices, tf.int32)
    n = len(losses)
    weights = tf.ones([n]) if weights is None else tf.constant(weights, tf.float32)
    return StepBatch(indices, tf.constant(losses, tf.float32), weights, tf.zeros([n], tf.int32),
                     tf.zeros([n, 3]), tf.constant(0, tf.int64))


def test_keep_picks_the_top_reducible_losses_with_mean_weights():
    rng = np.random.default_rng(0)
    irreducible = rng.uniform(0, 2, size=50)
    selector = _filter(irreducible, batch_size=3, presample=10)   # B = 30, k = 3 on a full batch
    indices = rng.permutation(50)[:30]
    losses = rng.uniform(0, 3, size=30)
    weights = selector.keep(_batch(indices, losses)).numpy()
    reducible = losses - irreducible[indices]
    top = np.argsort(-reducible)[:3]
    np.testing.assert_array_equal(np.flatnonzero(weights), np.sort(top))
    np.testing.assert_allclose(weights[top], 30 / 3)   # sum(w * loss) / n is the mean loss of the kept rows
    # high loss alone does not win: the highest-loss row has an even higher irreducible loss here
    losses2 = np.ones(30)
    losses2[0] = 100.0
    irreducible2 = np.zeros(50)
    irreducible2[indices[0]] = 1000.0
    selector.irreducible_.assign(irreducible2.astype(np.float32))
    assert selector.keep(_batch(indices, losses2)).numpy()[0] == 0


def test_partial_candidate_batch_keeps_its_share_and_plan_weights_scale():
    selector = _filter(np.zeros(20), batch_size=2, presample=10)   # B = 20
    weights = selector.keep(_batch(np.arange(5), [0.1, 0.5, 0.2, 0.9, 0.3])).numpy()
    np.testing.assert_allclose(weights, [0, 0, 0, 5, 0])       # k = max(1, 5 * 2 // 20) = 1
    weights = selector.keep(_batch(np.arange(10), np.arange(10.0), weights=np.full(10, 0.5))).numpy()
    np.testing.assert_allclose(weights, [0] * 9 + [0.5 * 10])  # k = 1 of 10


def _fit(selector, n=400, epochs=2, batch_size=8, **kwargs):
    x, y = make_data(n=n)
    loop = make_loop(selector, batch_size=batch_size, **kwargs)
    history = loop.fit(x, y, epochs=epochs, validation_data=(x[:50], y[:50]), verbose=0)
    return loop, history, (x, y)


def test_training_never_touches_the_holdout_and_every_step_trains_b_rows():
    loop, history, _ = _fit(RhoLoss(presample=5, holdout=0.5, irreducible_epochs=2), n=400, batch_size=8)
    selector = loop.selector
    holdout = selector.holdout_
    assert len(holdout) == 200 and len(np.unique(holdout)) == 200
    assert loop.trained_counts[holdout].sum() == 0
    table = selector.irreducible_.numpy()
    assert np.isnan(table[holdout]).all()
    assert np.isfinite(np.delete(table, holdout)).all()
    frame = history.frame
    # 200 training rows in candidate batches of B = 40: 5 steps per epoch, each on exactly b = 8 rows
    assert frame["step"].tolist() == [5, 10]
    assert frame["samples_seen"].tolist() == [200, 400]
    assert frame["samples_backpropagated"].tolist() == [40, 80]
    assert frame["samples_forwarded"].tolist() == [240, 480]   # the candidates, then the kept rows again
    assert np.isnan(loop.losses[holdout]).all()


def test_irreducible_time_counts_in_training_time_and_is_reported_alone():
    loop, history, _ = _fit(RhoLoss(presample=5, irreducible_epochs=2), epochs=1)
    frame = history.frame
    setup = frame["setup_time_s"].iloc[-1]
    assert setup >= loop.selector.irreducible_time_s_ > 0
    assert frame["selection_time_s"].iloc[-1] >= setup
    assert frame["train_time_s"].iloc[-1] >= setup
    assert history.time_to_target is None or history.time_to_target >= setup


def test_given_model_with_zero_epochs_is_used_as_is_and_never_changed():
    x, y = make_data(n=300)
    given = make_model(seed=7)
    given.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in given.get_weights()]
    loop = make_loop(RhoLoss(presample=4, irreducible_model=given, irreducible_epochs=0), batch_size=10)
    loop.fit(x, y, epochs=1, verbose=0)
    selector = loop.selector
    rest = np.setdiff1d(np.arange(300), selector.holdout_)
    expected = keras.losses.sparse_categorical_crossentropy(y[rest], given(x[rest], training=False)).numpy()
    np.testing.assert_allclose(selector.irreducible_.numpy()[rest], expected, rtol=1e-5, atol=1e-6)
    for a, b in zip(before, given.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert selector.irreducible_model is given   # the clone shares the given model; a copy of it is trained


def test_irreducible_model_is_fitted_on_the_holdout_only():
    # Labels on the holdout are a constant class; the rest is random.  An IL model trained on the holdout alone
    # predicts that constant class, so its loss is low exactly where the training rows carry that class.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 6)).astype("float32")
    # The split is seeded from state.rng: recover it with a first fit, then relabel and fit again.
    loop = make_loop(RhoLoss(holdout=0.5, irreducible_epochs=0), batch_size=10)
    loop.fit(x, rng.integers(0, 3, 600).astype("int32"), epochs=1, verbose=0)
    holdout = loop.selector.holdout_
    y = rng.integers(0, 3, 600).astype("int32")
    y[holdout] = 2
    loop = make_loop(RhoLoss(holdout=0.5, irreducible_epochs=30, irreducible_validation=0.0), batch_size=10,
                     optimizer=keras.optimizers.Adam(0.05))
    loop.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(loop.selector.holdout_, holdout)
    table = loop.selector.irreducible_.numpy()
    rest = np.setdiff1d(np.arange(600), holdout)
    assert table[rest][y[rest] == 2].mean() < 0.2 < 2.0 < table[rest][y[rest] != 2].mean()


def test_checkpoint_resume_keeps_the_irreducible_table(tmp_path):
    x, y = make_data(n=200)
    loop = make_loop(RhoLoss(presample=4, irreducible_epochs=1), batch_size=8)
    loop.fit(x, y, epochs=1, verbose=0, checkpoint_dir=str(tmp_path))
    saved = loop.selector.get_state()
    resumed = make_loop(RhoLoss(presample=4, irreducible_epochs=1), batch_size=8)
    history = resumed.fit(x, y, epochs=2, verbose=0, checkpoint_dir=str(tmp_path))
    np.testing.assert_array_equal(resumed.selector.holdout_, saved["holdout_"])
    np.testing.assert_array_equal(resumed.selector.irreducible_.numpy(), saved["irreducible_"])
    assert resumed.selector.irreducible_time_s_ == saved["irreducible_time_s_"]
    # the resumed fit did not fit the model again: its only new setup time is creating the table's variable
    assert history.frame["setup_time_s"].iloc[-1] - history.frame["setup_time_s"].iloc[0] < 0.5


def test_clone_is_fresh_and_epochs_for_budget_matches_baseline_steps():
    selector = RhoLoss(presample=10, holdout=0.5)
    selector.holdout_ = np.arange(3)
    clone = selector.clone()
    assert clone.holdout_ is None and repr(clone) == repr(selector)
    # N = 4000, b = 32: Shuffle makes 125 steps an epoch; RhoLoss ceil(2000 / 320) = 7
    assert selector.epochs_for_budget(5, 4000, 32) == int(np.ceil(5 * 125 / 7))
    assert selector.epochs_for_budget(0, 4000, 32) == 0


@pytest.mark.parametrize("kwargs, fragment", [
    ({"presample": 1}, "presample=1"),
    ({"holdout": 1.0}, "holdout=1.0"),
    ({"holdout": 0}, "holdout=0"),
    ({"irreducible_model": "resnet"}, "irreducible_model='resnet' is not a keras.Model"),
    ({"irreducible_epochs": -1}, "irreducible_epochs=-1"),
    ({"irreducible_batch_size": 0}, "irreducible_batch_size=0"),
    ({"irreducible_validation": 1.0}, "irreducible_validation=1.0"),
    ({"irreducible_patience": 0}, "irreducible_patience=0"),
    ({"irreducible": 5}, "irreducible=5 is neither an IrreducibleLosses nor the path"),
])
def test_bad_arguments_name_the_value(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        RhoLoss(**kwargs)


@pytest.mark.parametrize("epochs", [0, 1])
def test_an_incompatible_irreducible_model_is_named(epochs):
    x, y = make_data(n=100)
    wrong = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation="softmax")], name="wrong")
    loop = make_loop(RhoLoss(irreducible_model=wrong, irreducible_epochs=epochs), batch_size=8)
    with pytest.raises(ValueError, match="irreducible-loss model 'wrong'.*trained model's inputs and outputs"):
        loop.fit(x, y, epochs=1, verbose=0)


def test_runs_under_a_mirrored_strategy():
    x, y = make_data(n=200)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = make_model()
    loop = make_loop(RhoLoss(presample=4, irreducible_epochs=2), model=model, batch_size=8, strategy=strategy)
    frame = loop.fit(x, y, epochs=2, verbose=0).frame
    assert frame["samples_backpropagated"].tolist() == [25, 50]   # 100 training rows, B = 32: 4 steps of b = 8
    assert frame["samples_forwarded"].tolist() == [125, 250]
    assert loop.trained_counts[loop.selector.holdout_].sum() == 0


# ------------------------------------------------------------------ precomputed irreducible losses
IL = dict(presample=5, irreducible_epochs=3)


def _precompute(x, y, model, **kwargs):
    return RhoLoss(**IL, **kwargs).fit_irreducible(x, y, model=model, loss="sparse_categorical_crossentropy",
                                                   optimizer="adam", batch_size=8, seed=0)


def _weights(loop):
    return np.concatenate([w.ravel() for w in loop.model.get_weights()])


def test_a_fit_given_precomputed_losses_trains_bit_identically_to_one_that_fits_them():
    # Both start from keras.utils.set_random_seed(0) and the model build (make_model), the benchmark's order; the
    # IL model's initial weights come from Keras' global random state at the clone, here right after the build in
    # both runs.  The main fit draws nothing from that state (dropout layers seed themselves when built), and
    # on_train_begin draws its seed from state.rng in both, so the epoch-0 plan follows the same draws.
    x, y = make_data(n=400)
    runs = {}
    for precomputed in (False, True):
        model = make_model(seed=0, dropout=0.2)
        given = _precompute(x, y, model) if precomputed else None
        loop = make_loop(RhoLoss(**IL, irreducible=given), model=model, batch_size=8)
        runs[precomputed] = loop, loop.fit(x, y, epochs=2, verbose=0), given
    (fitted, own, _), (reused, history, given) = runs[False], runs[True]
    np.testing.assert_array_equal(reused.selector.holdout_, fitted.selector.holdout_)
    np.testing.assert_array_equal(reused.selector.irreducible_.numpy(), fitted.selector.irreducible_.numpy())
    np.testing.assert_array_equal(given.holdout, fitted.selector.holdout_)
    np.testing.assert_array_equal(given.table(), fitted.selector.irreducible_.numpy())
    assert reused.selector.seed_ == fitted.selector.seed_
    np.testing.assert_array_equal(_weights(reused), _weights(fitted))
    np.testing.assert_array_equal(reused.trained_counts, fitted.trained_counts)
    columns = ["step", "samples_seen", "samples_backpropagated", "loss", "accuracy"]
    assert history.frame[columns].equals(own.frame[columns])
    # the IL time is off the clock: reported by the result and the selector, not in setup_time_s
    assert own.frame["setup_time_s"].iloc[-1] >= fitted.selector.irreducible_time_s_ > 0
    assert history.frame["setup_time_s"].iloc[-1] < min(0.5, own.frame["setup_time_s"].iloc[-1])
    assert reused.selector.irreducible_time_s_ == given.seconds > 0
    assert repr(reused.selector) == repr(fitted.selector) == "RhoLoss(presample=5, irreducible_epochs=3)"


def test_the_precomputed_path_never_fits_the_irreducible_model(monkeypatch, tmp_path):
    x, y = make_data(n=200)
    given = _precompute(x, y, make_model(seed=0))
    path = given.save(tmp_path / "il.npz")

    def no_fit(*args, **kwargs):
        raise AssertionError("the irreducible-loss model was fitted")

    monkeypatch.setattr(RhoLoss, "_fit_table", no_fit)
    monkeypatch.setattr(RhoLoss, "_irreducible_losses", no_fit)
    monkeypatch.setattr(keras.Model, "fit", no_fit)
    for irreducible in (given, path, str(path)):
        loop = make_loop(RhoLoss(**IL, irreducible=irreducible), batch_size=8)
        frame = loop.fit(x, y, epochs=1, verbose=0).frame
        np.testing.assert_array_equal(loop.selector.holdout_, given.holdout)
        np.testing.assert_array_equal(loop.selector.irreducible_.numpy(), given.table())
        assert loop.trained_counts[given.holdout].sum() == 0 and frame["setup_time_s"].iloc[-1] < 0.5
    # no model or inputs needed either: a bare state will do
    selector = RhoLoss(**IL, irreducible=given)
    selector.on_train_begin(FakeState(num_samples=200, batch_size=8))
    assert np.isin(np.concatenate(selector(FakeState(num_samples=200, batch_size=8))), given.holdout).sum() == 0
    state = FakeState(num_samples=200, batch_size=8)
    state.inputs, state.model = x, make_model()
    with pytest.raises(AssertionError, match="was fitted"):   # the patch holds: without irreducible= it fits
        RhoLoss(**IL).on_train_begin(state)


def test_fit_irreducible_leaves_the_selector_alone_and_repeats():
    x, y = make_data(n=200)
    selector = RhoLoss(**IL)
    first = selector.fit_irreducible(x, y, model=make_model(seed=0), loss="sparse_categorical_crossentropy",
                                     batch_size=8, seed=3)
    assert selector.holdout_ is None and selector.irreducible_ is None and selector.seed_ is None
    again = selector.fit_irreducible((x, y), model=make_model(seed=0), loss="sparse_categorical_crossentropy",
                                     batch_size=8, seed=3)
    np.testing.assert_array_equal(first.holdout, again.holdout)
    np.testing.assert_array_equal(first.losses, again.losses)
    assert first.fingerprint() == again.fingerprint() and first.seed == 3
    assert len(first.holdout) == 100 and len(first.losses) == 100 and np.isfinite(first.losses).all()
    assert np.array_equal(first.rest, np.setdiff1d(np.arange(200), first.holdout))
    other = selector.fit_irreducible(x, y, model=make_model(seed=0), loss="sparse_categorical_crossentropy",
                                     batch_size=8, seed=4)
    assert not np.array_equal(other.holdout, first.holdout)   # the holdout follows the loop's seed
    with pytest.raises(ValueError, match="pass model="):
        selector.fit_irreducible(x, y, loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="y is None"):
        selector.fit_irreducible(x, model=make_model())


def test_save_load_round_trip_and_a_stable_short_repr(tmp_path):
    rng = np.random.default_rng(0)
    holdout = np.sort(rng.permutation(10)[:4])
    result = IrreducibleLosses(holdout, rng.random(6).astype(np.float32), 1.25, seed=7)
    path = result.save(tmp_path / "il.npz")
    assert path == str(tmp_path / "il.npz") and sorted(p.name for p in tmp_path.iterdir()) == ["il.npz"]
    loaded = IrreducibleLosses.load(path)
    np.testing.assert_array_equal(loaded.holdout, result.holdout)
    np.testing.assert_array_equal(loaded.losses, result.losses)
    assert (loaded.seconds, loaded.seed, loaded.num_samples) == (1.25, 7, 10)
    assert repr(loaded) == repr(result) == (f"IrreducibleLosses(num_samples=10, holdout=4, seconds=1.25, seed=7, "
                                            f"fingerprint={result.fingerprint()!r})")
    table = result.table()
    assert np.isnan(table[holdout]).all() and np.array_equal(table[result.rest], result.losses)
    assert IrreducibleLosses.from_table(holdout, table, 1.25).fingerprint() == result.fingerprint()
    assert IrreducibleLosses(holdout, result.losses, 0).seed is None
    IrreducibleLosses(holdout, result.losses, 0).save(path)
    assert IrreducibleLosses.load(path).seed is None
    with pytest.raises(ValueError):
        result.losses[0] = 1.0   # read-only
    # the selector's repr leaves the precomputed losses out (a path too), and its clone shares them
    selector = RhoLoss(presample=4, irreducible=result)
    assert repr(selector) == "RhoLoss(presample=4)" and selector.clone().irreducible is result
    assert repr(from_string(f"rho_loss:irreducible={str(path)!r}")) == "RhoLoss()"
    assert from_string(f"rho_loss:irreducible={str(path)!r}").irreducible == str(path)


@pytest.mark.parametrize("args, match", [
    ((np.array([3, 1]), np.zeros(3, np.float32), 0.0), "sorted, distinct indices in \\[0, 5\\)"),
    ((np.array([1, 9]), np.zeros(3, np.float32), 0.0), "sorted, distinct indices"),
    ((np.array([0.5]), np.zeros(3, np.float32), 0.0), "1-D integer index array"),
    ((np.array([1]), np.zeros((3, 1), np.float32), 0.0), "1-D float array"),
    ((np.array([1]), np.zeros(3, np.float32), -1.0), "seconds must be"),
])
def test_bad_irreducible_losses_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        IrreducibleLosses(*args)


def test_precomputed_losses_for_other_data_are_refused_naming_both_sizes(tmp_path):
    result = IrreducibleLosses(np.arange(0, 400, 2), np.zeros(200, np.float32), 1.0)
    with pytest.raises(ValueError, match="are for 400 training samples, but this fit's training set has 300"):
        RhoLoss(irreducible=result).on_train_begin(FakeState(num_samples=300))
    with pytest.raises(ValueError, match="holdout of 200 of the 400 training samples, but holdout=0.3 sets aside "
                                         "120"):
        RhoLoss(holdout=0.3, irreducible=result).on_train_begin(FakeState(num_samples=400))
    path = str(tmp_path / "il.npz")
    result.save(path)
    with pytest.raises(ValueError, match=r"losses \('.*il.npz'\) are for 400 .* has 300"):
        RhoLoss(irreducible=path).on_train_begin(FakeState(num_samples=300))
    with pytest.raises(ValueError, match="no such file"):
        RhoLoss(irreducible=str(tmp_path / "missing.npz")).on_train_begin(FakeState(num_samples=400))
    np.save(tmp_path / "other.npy", np.zeros(3))
    with pytest.raises(ValueError, match="is not a file IrreducibleLosses.save wrote"):
        IrreducibleLosses.load(tmp_path / "other.npy")
    x, y = make_data(n=300)   # through a fit, the loop's message names the selector and the hook
    with pytest.raises(ValueError, match="are for 400 training samples, but this fit's training set has 300"):
        make_loop(RhoLoss(irreducible=result), batch_size=8).fit(x, y, epochs=1, verbose=0)
