"""Loop under tf.distribute: the same plan trains the same samples, metrics match one device.

Logical CPU devices must be configured before TensorFlow initializes its
devices, so every case runs in a subprocess (this file is also the worker).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

PLAN_SIZES = (5, 17, 1, 33, 8, 16)  # 1 and odd sizes force zero-weight padding on 2 replicas


def _data():
    from helpers import make_data

    return make_data(n=120)


def _plans():
    rng = np.random.default_rng(1)
    return [[rng.choice(120, size=s, replace=False) for s in PLAN_SIZES] for _ in range(2)]


class _CountingSource:
    """Rows of ``x`` by index, recording which rows were read (the streaming path reads through it)."""

    def __init__(self, x):
        self.x, self.read = x, set()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.read.add(int(i))
        return self.x[i]


def _fit(strategy, kind):
    """Trains a tiny model on the fixed plans, under ``strategy`` (or none); returns what to compare.

    ``kind``: "plain" or "filter" (a stateful in-step filter); "stream" and
    "stream_filter" read the training rows by index through a source instead
    of keeping them on the device (``resident_limit_bytes=0``).
    """
    import contextlib

    import keras
    import tensorflow as tf

    from loop import Loop, RandomAccess
    from loop.selectors import Selector

    plans = _plans()
    stream = kind.startswith("stream")
    kind = "filter" if kind.endswith("filter") else "plain"

    class Fixed(Selector):
        def __call__(self, state):
            return plans[state.epoch % len(plans)]

    class TopHalf(Fixed):
        """A stateful in-step filter: keeps the higher-loss half, counts its calls in a variable."""

        def on_train_begin(self, state):
            self.calls_ = tf.Variable(0, dtype=tf.int64, trainable=False)

        def keep(self, batch):
            self.calls_.assign_add(1)
            k = tf.maximum(tf.shape(batch.losses)[0] // 2, 1)
            threshold = tf.sort(batch.losses, direction="DESCENDING")[k - 1]
            return tf.where(batch.losses >= threshold, 2.0, 0.0)

    selector = TopHalf() if kind == "filter" else Fixed()
    x, y = _data()
    with strategy.scope() if strategy else contextlib.nullcontext():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
    loop = Loop(model, loss="sparse_categorical_crossentropy", metrics=["accuracy"], batch_size=16,
                optimizer="sgd" if kind == "filter" else "adam", selector=selector, steps_per_execution=4,
                strategy=strategy, deterministic=True, resident_limit_bytes=0 if stream else None)
    source = _CountingSource(x)
    hist = loop.fit(RandomAccess(source, y) if stream else (x, y), epochs=2, validation_data=(x[:40], y[:40]),
                    verbose=0)
    assert loop.streaming == stream
    frame = hist.frame
    out = {"trained": loop.trained_counts.tolist(), "loss_step": loop.loss_step.tolist(),
           "losses": np.nan_to_num(loop.losses, nan=-1.0).tolist(),
           "rows": frame[[c for c in frame.columns if not c.endswith("_time_s")]].to_dict("list"),
           "weights": [w.ravel().tolist() for w in model.get_weights()]}
    if kind == "filter":
        out["filter_calls"] = int(loop.selector.calls_.numpy())
    if stream:
        out["rows_read"] = sorted(source.read)
    return out


def mirrored_worker(kind):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    print(json.dumps({"single": _fit(None, kind.replace("stream_", "").replace("stream", "plain")),
                      "mirrored": _fit(strategy, kind)}))


def multi_worker(index, ports, out, kind="plain"):
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports.split(",")]},
                                          "task": {"type": "worker", "index": int(index)}})
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=60)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    assert strategy.num_replicas_in_sync == 2
    if kind == "diverge":
        result = _diverging_plans(strategy, int(index))
    else:
        result = _fit(strategy, kind)
    with open(out, "w") as f:
        json.dump(result, f)


def _diverging_plans(strategy, index):
    """A selector whose plan depends on the worker: the loop must refuse it on every worker, training nothing."""
    import keras

    from loop import Loop

    def per_worker(state):
        return [np.arange(16) + 16 * index]

    x, y = _data()
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    before = [w.copy() for w in model.get_weights()]
    loop = Loop(model, loss="sparse_categorical_crossentropy", batch_size=16, selector=per_worker,
                strategy=strategy)
    try:
        loop.fit((x, y), epochs=1, verbose=0)
    except ValueError as err:
        untouched = all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
        return {"error": str(err), "untouched": untouched, "trained": int(loop.trained_counts.sum())}
    return {"error": None}


def _env():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    env.pop("TF_CONFIG", None)
    return env


def _assert_same_training(single, distributed, train_metrics=True):
    """``train_metrics=False`` for an in-step filter: on one device its train metrics come from the training
    forward pass of the kept rows, under a strategy from the candidates' forward pass (see loop.distribute)."""
    # Selection stays global: the same samples were trained, at the same steps.
    assert distributed["trained"] == single["trained"]
    assert distributed["loss_step"] == single["loss_step"]
    np.testing.assert_allclose(distributed["losses"], single["losses"], rtol=1e-4, atol=1e-5)
    for a, b in zip(distributed["weights"], single["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    d, s = distributed["rows"], single["rows"]
    assert d.keys() == s.keys()
    for key in ("epoch", "step", "samples_seen", "samples_forwarded", "samples_backpropagated"):
        assert d[key] == s[key], key
    for key in ("loss", "accuracy", "val_loss", "val_accuracy") if train_metrics else ("val_loss", "val_accuracy"):
        np.testing.assert_allclose(d[key], s[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("kind", ["plain", "filter", "stream", "stream_filter"])
def test_mirrored_strategy_matches_one_device(kind):
    """Also streamed from a source under the strategy, against the device-resident path on one device."""
    proc = subprocess.run([sys.executable, __file__, "mirrored", kind], env=_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    single, mirrored = result["single"], result["mirrored"]
    _assert_same_training(single, mirrored, train_metrics=not kind.endswith("filter"))
    seen = sum(len(b) for plan in _plans() for b in plan)
    assert single["rows"]["samples_seen"][-1] == seen
    if kind.endswith("filter"):  # the filter ran once per global step, not once per replica
        assert mirrored["filter_calls"] == single["filter_calls"] == 2 * len(PLAN_SIZES)
        assert mirrored["rows"]["samples_backpropagated"][-1] < seen


def _free_ports(k):
    sockets = [socket.socket() for _ in range(k)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_strategy_over_tf_config(tmp_path):
    workers = _run_workers(tmp_path, "plain")
    single = json.loads(subprocess.run([sys.executable, __file__, "single"], env=_env(), capture_output=True,
                                       text=True, timeout=90, check=True).stdout.strip().splitlines()[-1])
    assert workers[0] == workers[1]  # both workers hold the same model, tables and history
    _assert_same_training(single, workers[0])


def test_multi_worker_streaming_reads_only_each_workers_rows(tmp_path):
    """Streamed under two workers: the same training as one device, and each worker read only its replica's rows."""
    workers = _run_workers(tmp_path, "stream")
    single = json.loads(subprocess.run([sys.executable, __file__, "single"], env=_env(), capture_output=True,
                                       text=True, timeout=90, check=True).stdout.strip().splitlines()[-1])
    reads = [set(w.pop("rows_read")) for w in workers]
    assert workers[0] == workers[1]
    _assert_same_training(single, workers[0])
    # Worker 0 reads the first half of every padded global batch, worker 1 the second half.
    expected = [set(), set()]
    for plan in _plans():
        for batch in plan:
            per = (len(batch) + 1) // 2
            padded = list(batch) + [0] * (2 * per - len(batch))
            expected[0] |= set(padded[:per])
            expected[1] |= set(padded[per:])
    head = set(range(8))  # fit reads the first rows once to check the data and build the model
    assert reads[0] - head == expected[0] - head and reads[1] - head == expected[1] - head
    assert reads[0] != reads[1]


def _run_workers(tmp_path, kind):
    ports = ",".join(map(str, _free_ports(2)))
    outs = [tmp_path / f"worker{i}.json" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, __file__, "multi", str(i), ports, str(outs[i]), kind], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        logs = [p.communicate(timeout=90)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return [json.loads(o.read_text()) for o in outs]


def test_multi_worker_refuses_plans_that_differ_between_workers(tmp_path):
    for result in _run_workers(tmp_path, "diverge"):  # both workers raise; neither hangs in a collective
        assert "gave the workers different plans for epoch 0" in result["error"]
        assert "state.rng" in result["error"]
        assert result["untouched"] and result["trained"] == 0


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "mirrored":
        mirrored_worker(sys.argv[2])
    elif mode == "multi":
        multi_worker(*sys.argv[2:])
    else:
        print(json.dumps(_fit(None, "plain")))
