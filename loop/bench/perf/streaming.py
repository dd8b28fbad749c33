"""Benchmarks of the streaming path (``loop.streaming``), run by ``python -m loop.bench throughput``.

* ``--streaming``: the Fashion-MNIST CNN trained by ``Loop`` + ``Shuffle`` from
  a memmap read by index (``resident_limit_bytes=0``) against the same data on
  the device, alternating A/B calls in one process after a warm-up call each.
  It prints each call's epoch time and the median of the per-pair throughput
  ratios streaming/resident (the goal is >= 0.85).
* ``--memory``: the memory a fit holds, on real data.  :func:`write_random_memmap`
  writes a ``.npy`` file of random float32 rows (64 KiB: 16384 features; random
  bytes written in 64 MiB blocks, so the file takes its disk blocks and every
  read returns data, unlike a sparse file).  Each run (:func:`memory_run`) is a
  fresh subprocess that builds a ``Dense`` model on those features, records its
  baseline (``RssAnon``, after TensorFlow has started and the model is built),
  then fits one epoch of ``Loop(...).fit((memmap, y))`` while a thread
  (:class:`RssSampler`) reads ``/proc/self/status`` every few milliseconds and
  keeps the peaks of ``RssAnon`` (private anonymous memory: the heap and
  TensorFlow's tensors, what the data costs), ``RssShmem`` (shared anonymous
  memory, which the loop does not use: a check that nothing hides there) and
  ``VmRSS`` (which adds the shared libraries and file pages mapped in).  ``ru_maxrss`` is not used: in a
  child process Linux carries the parent's high-water mark across fork and
  exec.  The streamed runs (memmap over ``resident_limit_bytes``) should peak
  at about the baseline plus ``staging_bytes`` whatever the data's size and the
  batch size; the resident run (under it) at the baseline plus about the
  data's bytes once (at most twice).
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

#: Features of each memory-test row: 16384 float32 values (64 KiB).
MEMORY_FEATURES = 16384


def read_status(fields=("RssAnon", "RssShmem", "VmRSS")):
    """``{field: bytes}`` of the process's ``/proc/self/status`` (Linux)."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in fields:
                values[name] = int(rest.split()[0]) * 1024
    return values


class RssSampler:
    """Peaks of ``RssAnon``, ``RssShmem`` and ``VmRSS`` over a ``with`` block, read by a thread every few ms.

    ``peak`` holds ``{"RssAnon": bytes, "RssShmem": bytes, "VmRSS": bytes}``; a fit's allocations
    last far longer than the interval (a staged piece, the data's tensor), so
    sampling finds the peak a step or a read leaves.
    """

    def __init__(self, interval_s=0.002):
        self.interval_s = interval_s
        self.peak = {"RssAnon": 0, "RssShmem": 0, "VmRSS": 0}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        for name, value in read_status(tuple(self.peak)).items():
            self.peak[name] = max(self.peak[name], value)

    def _run(self):
        while not self._done.is_set():
            self._sample()
            self._done.wait(self.interval_s)

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self._sample()
        return False


def write_random_memmap(path, rows, features=MEMORY_FEATURES, seed=0, block_bytes=64 * 2 ** 20):
    """Writes a ``.npy`` file of ``rows`` x ``features`` random float32 values in [0, 1), in blocks; returns path.

    The data are written with ordinary file writes (no mapping), so they take
    their disk blocks and the writer holds one block at a time.
    """
    header = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, features))
    offset = header.offset
    del header
    rng = np.random.default_rng(seed)
    per_block = max(1, block_bytes // (features * 4))
    with open(path, "r+b") as f:
        f.seek(offset)
        for start in range(0, rows, per_block):
            f.write(rng.random((min(per_block, rows - start), features), dtype=np.float32).tobytes())
    return path


def memory_run(path, batch_size=32, steps_per_execution=32, staging_bytes=None, resident_limit_bytes=None):
    """Fits one epoch of a Dense model over the ``.npy`` file at ``path`` (memmapped) and measures memory.

    Args:
        path: a file written by :func:`write_random_memmap`.
        batch_size, steps_per_execution: the ``Loop``'s.
        staging_bytes, resident_limit_bytes: the ``Loop``'s, or None for its defaults.

    Returns:
        ``{"baseline": {...}, "peak": {...}}`` (``RssAnon`` and ``VmRSS`` bytes: before the fit, after
        TensorFlow started and the model was built; the fit's peak), ``"data_bytes"``,
        ``"samples_seen"``, ``"streaming"``, ``"seconds"``.
    """
    import keras

    from loop import Loop
    from loop import streaming

    x = np.load(path, mmap_mode="r")
    y = (np.arange(len(x)) % 2).astype("int32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Dense(2, activation="softmax")])
    model(np.zeros((1, *x.shape[1:]), np.float32))
    loop = Loop(model, loss="sparse_categorical_crossentropy", batch_size=batch_size,
                steps_per_execution=steps_per_execution,
                staging_bytes=streaming.DEFAULT_STAGING_BYTES if staging_bytes is None else staging_bytes,
                resident_limit_bytes=(streaming.DEFAULT_RESIDENT_LIMIT_BYTES if resident_limit_bytes is None
                                      else resident_limit_bytes))
    baseline = read_status()
    start = time.perf_counter()
    with RssSampler() as sampler:
        history = loop.fit((x, y), epochs=1, verbose=0)
    return {"baseline": baseline, "peak": dict(sampler.peak), "data_bytes": int(x.nbytes),
            "samples_seen": int(history.frame["samples_seen"].iloc[-1]), "streaming": loop.streaming,
            "seconds": time.perf_counter() - start}


_MEMORY_CHILD = r"""
import json, sys
from loop.bench.perf.streaming import memory_run
print(json.dumps(memory_run(sys.argv[1], **json.loads(sys.argv[2]))))
"""


def memory_subprocess(path, **kwargs):
    """:func:`memory_run` in a fresh Python process (its own baseline); returns its result.

    Raises:
        RuntimeError: the run failed, with the end of its stderr.
    """
    # the checkout's root (loop/bench/perf/streaming.py is 4 levels below it): never loop/ itself, whose
    # selectors package would shadow the standard library's selectors module in the child
    cwd = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(
        [cwd] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, path, json.dumps(kwargs)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the memory run {kwargs} over {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def describe_memory(result, label):
    """One line of a memory run's figures (MiB and GB; the peak above the baseline, and per data byte)."""
    base, peak, data = result["baseline"]["RssAnon"], result["peak"]["RssAnon"], result["data_bytes"]
    shared = result["peak"]["RssShmem"] - result["baseline"]["RssShmem"]
    return (f"memory: {label}, {data / 2 ** 30:.2f} GiB of data, {'streamed' if result['streaming'] else 'resident'}, "
            f"{result['samples_seen']} rows in {result['seconds']:.1f} s: peak RssAnon {peak / 1e9:.2f} GB "
            f"(baseline {base / 1e9:.2f} GB, +{(peak - base) / 2 ** 20:.0f} MiB = {(peak - base) / data:.2f}x the "
            f"data; RssShmem +{shared / 2 ** 20:.0f} MiB), peak VmRSS {result['peak']['VmRSS'] / 1e9:.2f} GB")


def memory_test(streamed_gib=1.0, resident_gib=0.5, batch_sizes=(32, 256), steps_per_execution=32,
                staging_bytes=None, directory=None):
    """Measures peak memory on real data: streamed at each batch size, then resident; prints and returns the runs.

    The streamed file (``streamed_gib``) streams when it is over the default
    ``resident_limit_bytes`` (else the runs pass ``resident_limit_bytes=0``);
    the resident file (``resident_gib``, 0 to skip) is read onto the device.
    Files are written under ``directory`` (default: the system's temporary
    directory) and deleted afterwards.
    """
    from loop import streaming

    results = []
    row_bytes = MEMORY_FEATURES * 4
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = os.path.join(tmp, "streamed.npy")
        start = time.perf_counter()
        write_random_memmap(path, int(streamed_gib * 2 ** 30) // row_bytes)
        print(f"memory: wrote {streamed_gib:g} GiB of random float32 rows ({row_bytes} bytes each) in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        limit = None if streamed_gib * 2 ** 30 > streaming.DEFAULT_RESIDENT_LIMIT_BYTES else 0
        for batch_size in batch_sizes:
            result = memory_subprocess(path, batch_size=batch_size, steps_per_execution=steps_per_execution,
                                       staging_bytes=staging_bytes, resident_limit_bytes=limit)
            budget = streaming.DEFAULT_STAGING_BYTES if staging_bytes is None else staging_bytes
            print(describe_memory(result, f"batch {batch_size}, steps_per_execution {steps_per_execution}, "
                                          f"staging_bytes {budget / 2 ** 20:.0f} MiB"), flush=True)
            results.append(result)
        os.remove(path)
        if resident_gib:
            path = os.path.join(tmp, "resident.npy")
            write_random_memmap(path, int(resident_gib * 2 ** 30) // row_bytes)
            limit = max(streaming.DEFAULT_RESIDENT_LIMIT_BYTES, 2 * int(resident_gib * 2 ** 30))
            result = memory_subprocess(path, batch_size=batch_sizes[0], steps_per_execution=steps_per_execution,
                                       resident_limit_bytes=limit)
            print(describe_memory(result, f"batch {batch_sizes[0]}"), flush=True)
            results.append(result)
            os.remove(path)
    return results


def streaming_throughput(args, build):
    """Loop + Shuffle from a memmap (streamed) against the same data on the device; prints and returns the ratios.

    ``build`` makes the model (the throughput benchmark's ``--model``); the data
    are ``args.samples`` random rows of its input shape.
    """
    import keras

    from loop import Loop
    from loop.selectors import Shuffle

    rng = np.random.default_rng(args.seed)
    model = build()
    shape = tuple(model.input_shape[1:])
    x = rng.random((args.samples, *shape), dtype=np.float32)
    y = rng.integers(0, 10, args.samples).astype("int32")
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "x.npy"), x)
        mm = np.load(os.path.join(tmp, "x.npy"), mmap_mode="r")
        loops = {}
        for name, limit in (("resident", None), ("streaming", 0)):
            keras.utils.set_random_seed(args.seed)
            loops[name] = Loop(build(), optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                               metrics=["accuracy"], selector=Shuffle(), batch_size=args.batch_size, seed=args.seed,
                               steps_per_execution=args.steps_per_execution, resident_limit_bytes=limit)
        data = {"resident": (x, y), "streaming": (mm, y)}

        def call(name):
            history = loops[name].fit(*data[name], epochs=args.epochs_per_call, verbose=0)
            return float(history.frame["train_time_s"].iloc[-1]) / args.epochs_per_call

        print(f"streaming vs resident: {args.samples} samples of shape {shape}, batch {args.batch_size}, "
              f"{args.epochs_per_call} epoch(s) per call; warm-up: resident {call('resident'):.2f} s, "
              f"streaming {call('streaming'):.2f} s per epoch", flush=True)
        times = {"resident": [], "streaming": []}
        for pair in range(args.pairs):
            for name in ("resident", "streaming"):
                times[name].append(call(name))
            print(f"pair {pair}: epoch resident {times['resident'][-1]:.2f} s, streaming "
                  f"{times['streaming'][-1]:.2f} s, throughput streaming/resident "
                  f"{times['resident'][-1] / times['streaming'][-1]:.3f}", flush=True)
    ratios = np.array(times["resident"]) / np.array(times["streaming"])
    print(f"median throughput streaming/resident: {np.median(ratios):.3f} (goal >= 0.85); median epoch resident "
          f"{np.median(times['resident']):.2f} s, streaming {np.median(times['streaming']):.2f} s", flush=True)
    return {**times, "ratio": float(np.median(ratios))}
