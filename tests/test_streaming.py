"""The streaming path: training data read by index from a random-access source (``loop.streaming``).

The same seed gives the same history as the device-resident path, for every
kind of selector (plans, weights, each in-step filter mode, ``state.score``,
``on_batch_end``, a companion model); the path is chosen by size; bad input is
refused by name.  Resume after SIGKILL and ``tf.distribute`` on this path are
tested in ``test_checkpoint.py`` and ``test_distribute.py``; the memory bound in
:func:`test_peak_memory_does_not_grow_with_the_dataset`.
"""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import make_data, make_loop, make_model

from loop import RandomAccess
from loop.streaming import _read_rows, is_source


def _frame(history):
    frame = history.frame
    return frame[[c for c in frame.columns if not c.endswith("_time_s")]]


def _memmap(tmp_path, x, name="x.npy"):
    np.save(tmp_path / name, x)
    return np.load(tmp_path / name, mmap_mode="r")


class Records:
    """A source of ``{"features": ..., "label": ...}`` records with ``__len__`` and ``__getitem__`` only."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"features": self.x[i], "label": self.y[i]}


def _decode(record):
    return record["features"], record["label"]


SELECTORS = ["shuffle", "weighted_random", "dybat", "online_batch", "infobatch", "selective_backprop",
             "ordered_sgd", "importance", "random_drop", "rho_loss:irreducible_epochs=2,holdout=0.25",
             "dynamic:base=shuffle"]


@pytest.mark.parametrize("selector", SELECTORS)
def test_streamed_history_equals_resident(tmp_path, selector):
    """Plans with repeats, each filter mode, state.score, on_batch_end and RhoLoss: the same numbers."""
    x, y = make_data(n=200)
    vx, vy = make_data(n=60, seed=1)
    sources = {"resident": (x, y), "memmap": (_memmap(tmp_path, x), y),
               "records": RandomAccess(Records(x, y), decode=_decode)}
    frames, losses = {}, {}
    for name, data in sources.items():
        loop = make_loop(selector, model=make_model(dropout=0.2), steps_per_execution=3,
                         resident_limit_bytes=None if name == "resident" else 0)
        validation = (vx, vy) if name != "records" else RandomAccess(Records(vx, vy), decode=_decode)
        history = loop.fit(data, epochs=3, validation_data=validation, verbose=0)
        assert loop.streaming == (name != "resident")
        frames[name], losses[name] = _frame(history), (loop.losses, loop.trained_counts)
    for name in ("memmap", "records"):
        pd.testing.assert_frame_equal(frames[name], frames["resident"])
        np.testing.assert_array_equal(losses[name][0], losses["resident"][0])
        np.testing.assert_array_equal(losses[name][1], losses["resident"][1])


def test_dict_inputs_stream(tmp_path):
    import keras

    x, y = make_data(n=120)
    inputs = {"a": x[:, :3], "b": x[:, 3:]}
    streamed = {"a": _memmap(tmp_path, inputs["a"], "a.npy"), "b": _memmap(tmp_path, inputs["b"], "b.npy")}

    def model():
        keras.utils.set_random_seed(0)
        a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
        out = keras.layers.Dense(3, activation="softmax")(keras.layers.Concatenate()([a, b]))
        return keras.Model({"a": a, "b": b}, out)

    frames = []
    for data, limit in ((inputs, None), (streamed, 0)):
        loop = make_loop("selective_backprop", model=model(), resident_limit_bytes=limit)
        frames.append(_frame(loop.fit(data, y, epochs=2, verbose=0)))
        assert loop.streaming == (limit == 0)
        assert loop.evaluate(inputs, y).keys() == {"loss", "accuracy"}
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_score_and_evaluate_read_through_the_source(tmp_path):
    x, y = make_data(n=150)
    resident = make_loop()
    resident.fit(x, y, epochs=1, verbose=0)
    streamed = make_loop(resident_limit_bytes=0)
    streamed.fit(_memmap(tmp_path, x), y, epochs=1, verbose=0)
    indices = np.array([149, 3, 3, 77, 0])
    np.testing.assert_array_equal(streamed.score(indices), resident.score(indices))
    assert streamed.score(np.array([], np.int64)).shape == (0,)
    source = RandomAccess(Records(x, y), decode=_decode)
    assert streamed.evaluate(source) == resident.evaluate(x, y) == streamed.evaluate((x, y))


def test_path_is_chosen_by_size(tmp_path):
    x, y = make_data(n=100)  # 100 * (6 * 4 + 4) = 2,800 bytes
    mm = _memmap(tmp_path, x)
    for data, limit, streams in (((x, y), 2_800, False), ((x, y), 2_799, True), ((mm, y), 10**6, False),
                                 ((mm, y), 0, True), ((mm, y), None, False),
                                 (RandomAccess(Records(x, y), decode=_decode), 2_800, False),
                                 (RandomAccess(Records(x, y), decode=_decode), 1_000, True)):
        loop = make_loop(resident_limit_bytes=limit)
        loop.fit(data, epochs=1, verbose=0)
        assert loop.streaming is streams, (type(data), limit)


def test_default_limit_keeps_small_data_resident(tmp_path):
    x, y = make_data(n=50)
    loop = make_loop()
    loop.fit(_memmap(tmp_path, x), y, epochs=1, verbose=0)
    assert not loop.streaming


class Pairs(Records):
    """A source whose records are ``(inputs, target)`` pairs."""

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_a_raw_source_of_pairs_needs_no_wrapper():
    x, y = make_data(n=64)
    loop = make_loop(resident_limit_bytes=0)
    history = loop.fit(Pairs(x, y), epochs=1, verbose=0)
    assert loop.streaming and history.frame["samples_seen"].iloc[-1] == 64


def test_selector_sees_the_source_as_state_inputs(tmp_path):
    x, y = make_data(n=80)
    seen = {}

    def selector(state):
        seen["rows"] = state.inputs[np.array([5, 1])]
        return [np.arange(state.num_samples)]

    make_loop(selector, resident_limit_bytes=0).fit(_memmap(tmp_path, x), y, epochs=1, verbose=0)
    np.testing.assert_array_equal(seen["rows"], x[[5, 1]])


def test_memmap_rows_are_read_without_mapping_and_match(tmp_path):
    x = np.arange(7 * 5 * 2, dtype=np.float32).reshape(7, 5, 2)
    path = tmp_path / "raw.bin"
    with open(path, "wb") as f:
        f.write(b"\0" * 12)  # a header: the memmap starts at an offset
        f.write(x.tobytes())
    mm = np.memmap(path, dtype=np.float32, mode="r", offset=12, shape=x.shape)
    indices = np.array([6, 0, 3, 3])
    np.testing.assert_array_equal(_read_rows(mm, indices), x[indices])
    np.testing.assert_array_equal(_read_rows(mm[2:], np.array([0, 4])), x[[2, 6]])  # a view keeps its offset
    np.testing.assert_array_equal(_read_rows(mm[:, ::2], np.array([1])), x[[1], ::2])  # strided: mapped read


def test_random_access_reads_and_labels():
    x, y = make_data(n=30)
    source = RandomAccess(Records(x, y), decode=_decode)
    assert len(source) == 30 and source.nbytes == 30 * (6 * 4 + 4)
    rows, labels = source.take([4, 2])
    np.testing.assert_array_equal(rows, x[[4, 2]])
    np.testing.assert_array_equal(labels, y[[4, 2]])
    np.testing.assert_array_equal(source.labels, y)
    assert is_source(source) and not is_source(x) and not is_source([1, 2])


@pytest.mark.parametrize("make, message", [
    (lambda x, y: RandomAccess(x, y[:-1]), "x has 30 records but y has 29"),
    (lambda x, y: RandomAccess(x[:0], y[:0]), "the source is empty"),
    (lambda x, y: RandomAccess(Records(x, y)), "must be an (inputs, target) pair"),
    (lambda x, y: RandomAccess(x, y, decode=3), "decode must be a function"),
    (lambda x, y: RandomAccess(x, y, parallel_reads=0), "parallel_reads must be a positive integer"),
    (lambda x, y: RandomAccess(tf.data.Dataset.from_tensor_slices(x)), "cannot be read by index"),
    (lambda x, y: RandomAccess([np.zeros(2), np.zeros(3)], [0, 1]).take([0, 1]), "different shapes"),
])
def test_random_access_refuses_bad_input(make, message):
    x, y = make_data(n=30)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make(x, y)


def test_random_access_take_refuses_out_of_range_indices():
    x, y = make_data(n=30)
    with pytest.raises(IndexError, match=r"\[0, 30\)"):
        RandomAccess(x, y).take([30])


def test_fit_refuses_bad_streaming_input():
    x, y = make_data(n=30)
    with pytest.raises(ValueError, match="tf.data.Dataset.*memmap.*tfds.data_source.*RandomAccess"):
        make_loop().fit(tf.data.Dataset.from_tensor_slices((x, y)), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="carries its targets"):
        make_loop().fit(RandomAccess(x, y), y, epochs=1, verbose=0)
    for bad in (-1, 1.5, True, "2GB"):
        with pytest.raises(ValueError, match=f"resident_limit_bytes must be .*got {bad!r}"):
            make_loop(resident_limit_bytes=bad)


def test_streamed_labels_are_checked():
    x, y = make_data(n=30)
    y = y.copy()
    y[7] = 5
    with pytest.raises(ValueError, match=r"label \[5\] at sample 7 is outside \[0, 3\)"):
        make_loop(resident_limit_bytes=0).fit(RandomAccess(Records(x, y), decode=_decode), epochs=1, verbose=0)


MEMORY_SCRIPT = r"""
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
from loop.bench.streaming import memory_run
result = memory_run(sys.argv[2], rows=int(sys.argv[3]))
print(result["peak_rss_bytes"], result["samples_seen"], result["streaming"])
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_DATA and sparse files: Linux")
def test_peak_memory_does_not_grow_with_the_dataset(tmp_path):
    """One epoch over a sparse memmap 4x larger than the process may allocate (RLIMIT_DATA, in a subprocess)."""
    limit = 2 ** 30
    peaks = {}
    for rows in (1024, 4 * 4096):  # 256 KiB rows: 0.25 GiB and 4 GiB
        proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(limit), str(tmp_path / f"x{rows}.bin"),
                               str(rows)], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert proc.returncode == 0, proc.stderr[-3000:]
        peak, seen, streaming = proc.stdout.split()[-3:]
        assert int(seen) == rows and streaming == "True"
        peaks[rows] = int(peak)
    assert 4 * 4096 * 2 ** 18 >= 4 * limit
    assert peaks[4 * 4096] < peaks[1024] + 64 * 2 ** 20  # 16x the data, within 64 MiB of the same peak
