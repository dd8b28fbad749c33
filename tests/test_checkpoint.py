"""Checkpoint and resume: a killed fit resumes to the same weights and history, bit for bit.

The training runs in subprocesses (this file is also the worker script), so
op determinism and the kills stay out of the test process.  A Keras callback
makes the kill deterministic: after a given chunk it writes a marker file and
waits; the parent then sends the signal.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

EPOCHS, KILL_EPOCH, KILL_BATCH = 4, 2, 1


def _selector(name):
    import tensorflow as tf

    from loop.selectors import DyBAT, DynamicBatchSize, Selector, SelectiveBackprop, Shuffle

    class TopHalf(Selector):
        """A stateless in-step filter (used when SelectiveBackprop is not importable)."""

        def __call__(self, state):
            return Shuffle()(state)

        def keep(self, batch):
            k = tf.shape(batch.losses)[0] // 2
            threshold = tf.sort(batch.losses, direction="DESCENDING")[tf.maximum(k - 1, 0)]
            return tf.where(batch.losses >= threshold, 2.0, 0.0)

    return {"shuffle": Shuffle, "dybat": lambda: DyBAT(delta=0.5),
            "selective_backprop": lambda: SelectiveBackprop(beta=1.0, history=64), "tophalf": TopHalf,
            # A wrapper whose base has learned state: the state nests, and the batch size changes every epoch.
            "dynamic_dybat": lambda: DynamicBatchSize(DyBAT(delta=0.5), k0=8, k1=16)}[name]()


def worker(selector, checkpoint_dir, out, marker=None, go=None, stream="0"):
    """Trains a tiny Dropout model; with ``marker`` it stops at (KILL_EPOCH, KILL_BATCH) and waits.

    With ``stream="1"`` the inputs are a memmap read by index (the streaming path, ``resident_limit_bytes=0``).
    """
    import keras

    from loop import Loop

    class Pause(keras.callbacks.Callback):
        epoch = -1

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == KILL_EPOCH and batch == KILL_BATCH:
                open(marker, "w").close()
                deadline = time.time() + 150
                while time.time() < deadline and not (go and os.path.exists(go)):
                    time.sleep(0.01)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype("float32")
    y = np.argmax(x[:, :3], axis=1).astype("int32")
    if stream == "1":
        np.save(f"{checkpoint_dir}.x.npy", x)
        x = np.load(f"{checkpoint_dir}.x.npy", mmap_mode="r")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dropout(0.3), keras.layers.Dense(3, activation="softmax")])
    loop = Loop(model, loss="sparse_categorical_crossentropy", metrics=["accuracy"], batch_size=16,
                selector=_selector(selector), steps_per_execution=2, deterministic=True, seed=3,
                resident_limit_bytes=0 if stream == "1" else None)
    hist = loop.fit(x, y, epochs=EPOCHS, validation_data=(x[:32], y[:32]), verbose=0,
                    checkpoint_dir=checkpoint_dir, callbacks=[Pause()] if marker else None)
    frame = hist.frame
    frame = frame[[c for c in frame.columns if not c.endswith("_time_s")]]
    np.savez(out, *model.get_weights(), trained=loop.trained_counts, losses=loop.losses,
             loss_step=loop.loss_step, history=json.dumps(frame.to_dict("list")),
             train_time=hist.frame["train_time_s"].to_numpy())


def _run(jobs):
    """Starts one worker process running ``jobs`` (dicts of :func:`worker` arguments) one after another."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    jobs = [{k: str(v) for k, v in job.items()} for job in jobs]
    return subprocess.Popen([sys.executable, __file__, json.dumps(jobs)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait(proc, timeout=150):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out[-3000:]


CASES = {  # case: (selector, signal)
    "shuffle": ("shuffle", signal.SIGKILL),
    "dybat": ("dybat", signal.SIGKILL),
    "dynamic_dybat": ("dynamic_dybat", signal.SIGKILL),
    "in_step_filter": (None, signal.SIGKILL),
    "sigterm": ("dybat", signal.SIGTERM),
    # The streaming path, against the device-resident reference run.
    "stream_shuffle": ("shuffle", signal.SIGKILL),
    "stream_in_step_filter": (None, signal.SIGKILL),
}


def _filter_name():
    try:
        from loop.selectors import SelectiveBackprop  # noqa: F401
        return "selective_backprop"
    except ImportError:
        return "tophalf"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs every case once: an uninterrupted reference, an interrupted run and its resumption.

    Returns ``{case: (reference.npz, resumed.npz, interrupted exit code, checkpoint dir)}``.
    """
    tmp = tmp_path_factory.mktemp("ckpt")
    selectors = {case: sel or _filter_name() for case, (sel, _) in CASES.items()}
    refs = {sel: tmp / f"ref-{sel}.npz" for sel in set(selectors.values())}
    reference = _run([dict(selector=sel, checkpoint_dir=tmp / f"ref-{sel}", out=out) for sel, out in refs.items()])
    stream = {case: int(case.startswith("stream_")) for case in CASES}
    killed = {case: _run([dict(selector=selectors[case], checkpoint_dir=tmp / case, out=tmp / f"{case}-never.npz",
                               marker=tmp / f"{case}.marker", go=tmp / f"{case}.go", stream=stream[case])])
              for case in CASES}
    codes, progress = {}, {}
    deadline = time.time() + 150
    for case, proc in killed.items():
        marker = tmp / f"{case}.marker"
        while not marker.exists():
            assert proc.poll() is None, _wait(proc)[1]
            assert time.time() < deadline, f"{case}: the worker never reached the pause"
            time.sleep(0.02)
        os.kill(proc.pid, CASES[case][1])
        (tmp / f"{case}.go").touch()
        codes[case], out = _wait(proc)
        assert (tmp / case / "checkpoint").exists(), out
        progress[case] = _progress(tmp / case)
    resumed = _run([dict(selector=selectors[case], checkpoint_dir=tmp / case, out=tmp / f"{case}.npz",
                         stream=stream[case]) for case in CASES])
    for proc in (reference, resumed):
        code, out = _wait(proc)
        assert code == 0, out
    return {case: (refs[selectors[case]], tmp / f"{case}.npz", codes[case], progress[case]) for case in CASES}


def _progress(checkpoint_dir):
    """``(epoch, batch)`` of the latest checkpoint in ``checkpoint_dir``."""
    import tensorflow as tf

    from loop.checkpoint import unpack

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(checkpoint_dir)))
    key = [k for k in reader.get_variable_to_shape_map() if k.startswith("python/")][0]
    progress = json.loads(unpack(reader.get_tensor(key))["progress"])
    return progress["epoch"], progress["batch"]


def _load(path):
    data = np.load(path)
    weights = [data[f"arr_{i}"] for i in range(len([k for k in data.files if k.startswith("arr_")]))]
    return data, weights


def _assert_same(ref_path, got_path):
    (ref, ref_w), (got, got_w) = _load(ref_path), _load(got_path)
    assert len(ref_w) == len(got_w) > 0
    for a, b in zip(ref_w, got_w):
        np.testing.assert_array_equal(a, b)
    for key in ("trained", "losses", "loss_step"):
        np.testing.assert_array_equal(ref[key], got[key])
    assert json.loads(str(ref["history"])) == json.loads(str(got["history"]))


@pytest.mark.parametrize("case", ["shuffle", "dybat", "dynamic_dybat", "in_step_filter", "stream_shuffle",
                                  "stream_in_step_filter"])
def test_sigkill_mid_epoch_then_resume_is_bit_exact(runs, case):
    ref, resumed, code, progress = runs[case]
    assert code == -signal.SIGKILL
    assert progress == (KILL_EPOCH, 0)  # killed without warning: resumes after the last completed epoch
    _assert_same(ref, resumed)
    # The resumed run carried on the killed run's timing counters.
    assert np.all(np.diff(np.load(resumed)["train_time"]) > 0)


def test_sigterm_saves_mid_epoch_and_resumes_exactly(runs):
    ref, resumed, code, progress = runs["sigterm"]
    assert code == 128 + signal.SIGTERM
    assert progress == (KILL_EPOCH, KILL_BATCH + 1)  # saved at the chunk boundary, with the epoch's plan
    _assert_same(ref, resumed)


# ------------------------------------------------------------------ in-process behaviour
def _tiny_loop(**kwargs):
    from helpers import make_loop, make_model

    return make_loop(model=make_model(d=4, hidden=0), batch_size=8, steps_per_execution=1, **kwargs)


def _tiny_data():
    from helpers import make_data

    return make_data(n=48, d=4)


def test_pack_round_trips_nested_selector_state():
    from loop.checkpoint import pack, unpack

    state = {"round_": 2, "base": {"batches_": np.arange(6).reshape(2, 3), "loss_": np.float32(0.5),
                                   "inner": {"seen_": np.arange(3)}, "plain": {"k": 1}}, "empty": {}}
    out = unpack(pack(state))
    assert out["round_"] == 2 and out["empty"] == {} and out["base"]["plain"] == {"k": 1}
    np.testing.assert_array_equal(out["base"]["batches_"], state["base"]["batches_"])
    np.testing.assert_array_equal(out["base"]["inner"]["seen_"], np.arange(3))
    assert out["base"]["loss_"] == np.float32(0.5) and isinstance(out["base"]["loss_"], np.float32)


def test_pack_round_trips_arrays_scalars_and_json():
    from loop.checkpoint import pack, unpack

    state = {"a": np.arange(5), "s": np.float32(2.5), "i": 3, "none": None, "nested": {"k": [1, 2]},
             "ragged_free": [0.5, 1.5]}
    back = unpack(pack(state))
    np.testing.assert_array_equal(back["a"], state["a"])
    assert back["s"] == np.float32(2.5) and back["s"].dtype == np.float32
    assert back["i"] == 3 and back["none"] is None and back["nested"] == {"k": [1, 2]}
    with pytest.raises(TypeError, match="state\\['obj'\\]"):
        pack({"obj": object()})


@pytest.mark.parametrize("signum,raised", [(signal.SIGTERM, SystemExit), (signal.SIGINT, KeyboardInterrupt)])
def test_signal_saves_at_chunk_boundary_and_handlers_are_restored(tmp_path, signum, raised):
    import keras

    class Send(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                os.kill(os.getpid(), signum)

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    loop = _tiny_loop()
    with pytest.raises(raised) as err:
        loop.fit(_tiny_data(), epochs=2, verbose=0, checkpoint_dir=tmp_path, callbacks=[Send()])
    if raised is SystemExit:
        assert err.value.code == 128 + signal.SIGTERM
    assert {s: signal.getsignal(s) for s in before} == before
    assert _progress(tmp_path) == (0, 3)
    # Resuming finishes the run; a third fit finds it finished and trains nothing.
    resumed = _tiny_loop()
    hist = resumed.fit(_tiny_data(), epochs=2, verbose=0, checkpoint_dir=tmp_path)
    assert len(hist.rows) == 2 and hist.rows[-1]["step"] == 12
    again = _tiny_loop()
    assert again.fit(_tiny_data(), epochs=2, verbose=0, checkpoint_dir=tmp_path).rows == hist.rows
    assert int(again.tables.steps.numpy()) == 12 and again.trained_counts.sum() == 96
    assert {s: signal.getsignal(s) for s in before} == before


def test_handlers_restored_after_an_error(tmp_path):
    before = signal.getsignal(signal.SIGTERM)

    def broken(state):
        raise KeyError("x")

    with pytest.raises(KeyError):
        _tiny_loop(selector=broken).fit(_tiny_data(), epochs=1, verbose=0, checkpoint_dir=tmp_path)
    assert signal.getsignal(signal.SIGTERM) is before


def test_checkpoint_without_the_candidate_counter_restores_past_its_steps(tmp_path):
    """A checkpoint written before ``Tables.candidates`` existed restores; the counter starts at steps + 1."""
    import keras
    import tensorflow as tf

    from loop.checkpoint import Checkpointer
    from loop.tables import Tables

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    identity = {"selector": "SelectiveBackprop()", "seed": 0, "batch_size": 2, "num_samples": 4, "loss": "mse",
                "replicas": 1, "sample_weight": None}

    def checkpointer(directory, tables):
        return Checkpointer(directory, model=model, optimizer=optimizer, metrics=[], tables=tables,
                            selector=lambda: None, identity=identity)

    def save(directory, tables):
        checkpointer(directory, tables).save(epoch=1, batch=0, rows=[], timer={}, logs={}, last_val={})

    current = Tables(4)
    current.account(tf.constant([0, 1]), tf.constant([0, 1]), tf.constant([1.0, 2.0]))
    old = tf.Module(name="tables")  # the variables of Tables as they were, without the candidate counter
    for name, value in vars(current).items():
        if isinstance(value, tf.Variable) and name != "candidates":
            setattr(old, name, value)
    save(tmp_path / "old", old)
    restored = Tables(4)
    assert checkpointer(tmp_path / "old", restored).restore() is not None
    assert int(restored.steps.numpy()) == 1 and int(restored.candidates.numpy()) == 2

    for _ in range(5):
        current.next_candidate()
    save(tmp_path / "new", current)
    restored = Tables(4)
    checkpointer(tmp_path / "new", restored).restore()
    assert int(restored.candidates.numpy()) == 5


if __name__ == "__main__":
    for job in json.loads(sys.argv[1]):
        worker(**job)
