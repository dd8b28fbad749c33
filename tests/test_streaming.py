"""The streaming path: training data read by index from a random-access source (``loop.streaming``).

The same seed gives the same history as the device-resident path, for every
kind of selector (plans, weights, each in-step filter mode, ``state.score``,
``on_batch_end``, a companion model); the path is chosen by size; bad input is
refused by name.  Resume after SIGKILL and ``tf.distribute`` on this path are
tested in ``test_checkpoint.py`` and ``test_distribute.py``.  Memory is bounded
in bytes: a chunk staged in pieces that fit ``staging_bytes`` gives the same
history, and :func:`test_streamed_memory_stays_within_the_budget` and
:func:`test_resident_data_is_held_about_once` measure a fit's peak ``RssAnon`` on
a real (random, non-sparse) memmap, in a subprocess.
"""

import os
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import make_data, make_loop, make_model

from loop import RandomAccess, streaming
from loop.streaming import is_source, read_rows


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
               "records": RandomAccess(Records(x, y), decode=_decode), "pieces": (_memmap(tmp_path, x), y)}
    frames, losses = {}, {}
    for name, data in sources.items():
        # "pieces": 5 mini-batches of 16 rows x 24 bytes fit the budget, so a chunk of 3 is staged in pieces
        # (larger candidate batches one at a time, with a warning).
        staging = {"staging_bytes": 5 * 16 * 24} if name == "pieces" else {}
        loop = make_loop(selector, model=make_model(dropout=0.2), steps_per_execution=3,
                         resident_limit_bytes=None if name == "resident" else 0, **staging)
        validation = (vx, vy) if name != "records" else RandomAccess(Records(vx, vy), decode=_decode)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".* does not fit staging_bytes")
            history = loop.fit(data, epochs=3, validation_data=validation, verbose=0)
        assert loop.streaming == (name != "resident")
        frames[name], losses[name] = _frame(history), (loop.losses, loop.trained_counts)
    for name in ("memmap", "records", "pieces"):
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
    np.testing.assert_array_equal(read_rows(mm, indices), x[indices])
    np.testing.assert_array_equal(read_rows(mm[2:], np.array([0, 4])), x[[2, 6]])  # a view keeps its offset
    np.testing.assert_array_equal(read_rows(mm[:, ::2], np.array([1])), x[[1], ::2])  # strided: mapped read


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


class CountingFeeder(streaming.Feeder):
    """A feeder that records the pieces it stages and the largest buffer it reserves."""

    pieces_seen, capacity = [], 0

    def pieces(self, first, last):
        for piece in super().pieces(first, last):
            CountingFeeder.pieces_seen.append(piece)
            CountingFeeder.capacity = max(CountingFeeder.capacity, self.data.capacity)
            yield piece


def test_a_chunk_is_staged_in_pieces_that_fit_the_budget(tmp_path, monkeypatch):
    x, y = make_data(n=160)  # 10 mini-batches of 16 rows x 24 bytes (384 bytes)
    monkeypatch.setattr(streaming, "Feeder", CountingFeeder)
    CountingFeeder.pieces_seen, CountingFeeder.capacity = [], 0
    resident = make_loop(steps_per_execution=8).fit(x, y, epochs=1, verbose=0)
    # A budget of 9 mini-batches: 1 read in flight ((9 - 2) // 4), 1 prefetched, 1 being copied, 6 staged.
    loop = make_loop(steps_per_execution=8, resident_limit_bytes=0, staging_bytes=9 * 384)
    history = loop.fit(_memmap(tmp_path, x), y, epochs=1, verbose=0)
    assert CountingFeeder.pieces_seen == [(0, 6), (6, 8), (8, 10)]
    assert CountingFeeder.capacity == 6 * 16
    assert loop.data.staged.capacity == 0  # freed at the end of the fit
    pd.testing.assert_frame_equal(_frame(history), _frame(resident))


def test_read_ahead_splits_the_budget():
    mib = 2 ** 20
    # 64 KiB rows, batch 256: 16 MiB mini-batches, 32 in 512 MiB: 4 reads, 4 prefetched, 1 being copied, 23 staged.
    assert streaming.read_ahead(512 * mib, 16 * mib) == (4, 4, 23)
    assert streaming.read_ahead(512 * mib, 16 * mib, max_batches=8) == (4, 4, 8)
    assert streaming.read_ahead(512 * mib, 2 * mib, max_batches=32) == (4, 4, 32)
    assert streaming.read_ahead(10 * mib, mib) == (2, 2, 5)
    assert streaming.read_ahead(3 * mib, mib) == (1, 0, 1)
    assert streaming.read_ahead(5 * mib, mib, parallel_reads=1) == (1, 1, 2)


def test_a_mini_batch_over_the_budget_trains_one_at_a_time_with_a_warning(tmp_path):
    x, y = make_data(n=64)
    resident = make_loop(steps_per_execution=4).fit(x, y, epochs=1, verbose=0)
    loop = make_loop(steps_per_execution=4, resident_limit_bytes=0, staging_bytes=500)
    with pytest.warns(UserWarning, match=r"a mini-batch \(16 rows x 24 bytes\) of 0.0 MiB does not fit "
                                         r"staging_bytes=500 .* raise Loop\(staging_bytes=...\) to at least 1152 or "
                                         r"lower batch_size"):
        history = loop.fit(_memmap(tmp_path, x), y, epochs=1, verbose=0)
    pd.testing.assert_frame_equal(_frame(history), _frame(resident))


def test_staging_bytes_must_be_a_positive_integer():
    for bad in (0, -1, 1.5, "512MB", True):
        with pytest.raises(ValueError, match=rf"staging_bytes must be a positive integer, got {bad!r}"):
            make_loop(staging_bytes=bad)


def test_read_all_reads_every_row_into_aligned_arrays(tmp_path):
    x, y = make_data(n=50)
    for source in (RandomAccess(_memmap(tmp_path, x), y), RandomAccess(Records(x, y), decode=_decode),
                   RandomAccess({"a": _memmap(tmp_path, x[:, :2], "a.npy"), "b": x[:, 2:]}, y)):
        inputs, targets = streaming.read_all(source, block_bytes=7 * 24)  # slices of 7 rows
        expected = {"a": x[:, :2], "b": x[:, 2:]} if isinstance(inputs, dict) else x
        for leaf, want in zip(tf.nest.flatten(inputs), tf.nest.flatten(expected)):
            np.testing.assert_array_equal(leaf, want)
            assert leaf.ctypes.data % streaming.ALIGNMENT == 0
        np.testing.assert_array_equal(targets, y)


def test_host_tensor_shares_only_what_it_is_handed():
    array = streaming.aligned_empty((4, 3), np.float32)
    array[:] = np.arange(12).reshape(4, 3)
    shared, copied = streaming.host_tensor(array, copy=False), streaming.host_tensor(array)
    array[0, 0] = 100.0
    assert shared.numpy()[0, 0] == 100.0 and copied.numpy()[0, 0] == 0.0
    np.testing.assert_array_equal(copied.numpy()[1:], np.arange(3, 12).reshape(3, 3))
    user = np.arange(5, dtype=np.int64)[1:]  # not aligned: copied even with copy=False
    tensor = streaming.host_tensor(user, copy=False)
    user[0] = -1
    assert tensor.dtype == tf.int64 and tensor.numpy().tolist() == [1, 2, 3, 4]
    assert streaming.host_tensor(np.array(["a"])).dtype == tf.string  # not DLPack: converted


def test_memmap_runs_of_rows_are_read_in_order(tmp_path):
    x = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    mm = _memmap(tmp_path, x)
    for indices in (np.arange(40), np.array([5, 6, 7, 1, 2, 9, 9, 10, 39]), np.array([3, 2, 1, 0])):
        out = read_rows(mm, indices)
        np.testing.assert_array_equal(out, x[indices])
        assert out.ctypes.data % streaming.ALIGNMENT == 0


@pytest.fixture(scope="module")
def random_memmap(tmp_path_factory):
    from loop.bench.perf.streaming import write_random_memmap

    path = write_random_memmap(str(tmp_path_factory.mktemp("memory") / "x.npy"), rows=4096)  # 256 MiB, 64-KiB rows
    yield path
    os.remove(path)


def _memory_run(path, **kwargs):
    from loop.bench.perf.streaming import memory_subprocess

    result = memory_subprocess(path, **kwargs)
    assert result["samples_seen"] == 4096 and result["data_bytes"] == 2 ** 28
    assert result["peak"]["RssShmem"] - result["baseline"]["RssShmem"] < 16 * 2 ** 20  # anonymous memory is private
    return result, result["peak"]["RssAnon"] - result["baseline"]["RssAnon"]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_streamed_memory_stays_within_the_budget(random_memmap):
    """A fit's peak RssAnon above its baseline: the budget plus a margin, though a chunk holds 256 MiB."""
    budget = 64 * 2 ** 20
    # Batch 128 of 64-KiB rows: 8 MiB mini-batches; a chunk of 32 is all 256 MiB of the data.
    result, held = _memory_run(random_memmap, batch_size=128, steps_per_execution=32, staging_bytes=budget,
                               resident_limit_bytes=0)
    assert result["streaming"]
    # The margin (the step's own tensors, TensorFlow's allocations during the first steps) measured 40-70 MiB.
    assert held < budget + 128 * 2 ** 20, held / 2 ** 20


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_resident_data_is_held_about_once(random_memmap):
    """The resident path reads a memmap into one array the device tensor shares: ~1.25x measured, not 3x."""
    result, held = _memory_run(random_memmap, batch_size=128, steps_per_execution=32)
    assert not result["streaming"]
    assert held < 2 * result["data_bytes"], held / result["data_bytes"]
