"""Benchmarks of the streaming path (``loop.streaming``), run by ``python -m loop.bench throughput``.

* ``--streaming``: the Fashion-MNIST CNN trained by ``Loop`` + ``Shuffle`` from
  a memmap read by index (``resident_limit_bytes=0``) against the same data on
  the device, alternating A/B calls in one process after a warm-up call each.
  It prints each call's epoch time and the median of the per-pair throughput
  ratios streaming/resident (the goal is >= 0.85).
* ``--memory``: one epoch over a memmap at least 4x larger than the process
  may allocate, at two sizes, each in a subprocess whose private writable
  memory (heap, anonymous mappings: what ``malloc`` and TensorFlow's allocator
  use) is capped with ``RLIMIT_DATA``.  A file-backed read-only mapping such
  as the memmap is not counted by that limit, and the streaming path reads
  memmap rows with ``pread`` so they do not stay in the process's resident
  set either.  It prints each run's peak resident set size (``ru_maxrss``,
  which also counts TensorFlow's shared libraries); the goal is a peak that
  does not depend on the dataset's size.  The files are sparse (all zeros, no
  disk blocks).
"""

import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

#: Each memory-test row: 64 x 1024 float32 values (256 KiB).
MEMORY_ROW = (64, 1024)


def memory_run(path, rows, batch_size=32, steps_per_execution=4):
    """Trains one epoch over a sparse memmap of ``rows`` 256-KiB rows at ``path`` (made if missing).

    Returns ``{"peak_rss_bytes", "data_bytes", "samples_seen", "streaming", "seconds"}``.
    """
    import keras

    from loop import Loop

    row_bytes = int(np.prod(MEMORY_ROW)) * 4
    if not os.path.exists(path) or os.path.getsize(path) != rows * row_bytes:
        with open(path, "wb") as f:
            f.truncate(rows * row_bytes)  # sparse: reads as zeros, takes no disk blocks
    x = np.memmap(path, dtype=np.float32, mode="r", shape=(rows, *MEMORY_ROW))
    y = (np.arange(rows) % 2).astype("int32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(MEMORY_ROW), keras.layers.Reshape((*MEMORY_ROW, 1)),
                              keras.layers.AveragePooling2D((16, 64)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    loop = Loop(model, loss="sparse_categorical_crossentropy", batch_size=batch_size,
                steps_per_execution=steps_per_execution, resident_limit_bytes=0)
    start = time.perf_counter()
    history = loop.fit(x, y, epochs=1, verbose=0)
    return {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "data_bytes": int(x.nbytes), "samples_seen": int(history.frame["samples_seen"].iloc[-1]),
            "streaming": loop.streaming, "seconds": time.perf_counter() - start}


_MEMORY_CHILD = r"""
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
from loop.bench.streaming import memory_run
print(json.dumps(memory_run(sys.argv[2], int(sys.argv[3]))))
"""


def memory_test(limit_bytes=2 ** 30, multiples=(1, 4), directory=None):
    """Runs :func:`memory_run` under ``RLIMIT_DATA = limit_bytes`` for data of ``multiples`` x the limit.

    Prints one line per run and returns the runs' results.
    """
    import json

    row_bytes = int(np.prod(MEMORY_ROW)) * 4
    results = []
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        for multiple in multiples:
            rows = int(multiple * limit_bytes // row_bytes)
            path = os.path.join(tmp, f"memmap-{multiple}x.bin")
            proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(limit_bytes), path, str(rows)],
                                  capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            if proc.returncode != 0:
                raise RuntimeError(f"the memory run of {multiple}x the limit failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            os.remove(path)
            results.append(result)
            print(f"memory: RLIMIT_DATA {limit_bytes / 2 ** 30:.2f} GiB, memmap {result['data_bytes'] / 2 ** 30:.2f} "
                  f"GiB ({multiple}x), one epoch of {result['samples_seen']} rows in {result['seconds']:.1f} s, "
                  f"peak RSS {result['peak_rss_bytes'] / 2 ** 20:.0f} MiB", flush=True)
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
