"""``python -m loop.bench throughput``: Loop + Shuffle against ``model.fit``.

Both train the same model (same initial weights, optimizer, batch size and
data), alternating A/B in one process after a warm-up call each.  Each call
trains ``--epochs-per-call`` epochs (default 3), so fit's own per-epoch work (a
new ``tf.data`` iterator each epoch) shows inside one call, as a user's
``model.fit(epochs=E)`` sees it; ``--epochs-per-call 1`` times single epochs.
It prints every call's times, the median of the per-pair ratios Loop/fit
(below 1 means the loop is faster), and the train step's achieved GFLOP/s
against a matmul peak measured on this machine in the compute dtype of the
precision (``--precision``: float32; ``mixed_bfloat16`` and ``mixed_float16``
build both models under that ``keras.mixed_precision`` policy, compute in
bfloat16 or float16, and are measured against a bfloat16 or float16 matmul
peak; under ``mixed_float16`` both the loop and ``model.fit`` train with a
``LossScaleOptimizer``).

Each call is timed two ways, both divided by the epochs it trained:

- ``call``: the whole ``fit`` call, what a user waits for.  This is the figure
  the goal is set on.
- ``epoch``: the sum of ``on_epoch_begin`` to ``on_epoch_end`` spans (for the
  loop, its ``train_time_s``), i.e. the epochs alone.

``model.fit`` makes a ``tf.data`` iterator every epoch, and with TensorFlow
2.21 destroying one waits for the autotuning thread's current timed sleep to
end, which can take many seconds of idle time.  The last epoch's wait falls
after ``on_epoch_end`` (printed as ``fit outside epoch``); the others fall into
the next epoch, so with several epochs per call fit's ``epoch`` time holds them
too.  The loop has no ``tf.data`` pipeline, so it never waits.

``--intra-op-threads N`` and ``--inter-op-threads N`` set TensorFlow's thread
pools (``tf.config.threading``) before anything runs; without them TensorFlow
picks its defaults (printed as 0 in the ``threads:`` line).

``--streaming`` times the streaming path instead (``loop.streaming``): the
same Loop + Shuffle from a memmap read by index against the data on the
device; ``--memory`` runs the memory test (one epoch over real, random memmaps,
streamed at two batch sizes and resident, each in a subprocess whose sampled
``RssAnon`` and ``VmRSS`` peaks it prints; ``--memory-gib``, ``--resident-gib``,
``--memory-batch-sizes``, ``--staging-mib``).  Both are in :mod:`loop.bench.perf.streaming`.

FLOPs are counted analytically from the layers (2 multiply-adds per weight use
in Conv2D and Dense), and a train step is taken as 3x the forward pass
(forward, plus gradients with respect to inputs and weights).
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf


def fashion_cnn(input_shape=(28, 28, 1), num_classes=10):
    """The seeds' Fashion-MNIST CNN (three 2x2 conv layers of 64, 128, 64 filters, PReLU, max-pooling)."""
    from loop.datasets import models

    return models.fashion_mnist_cnn(input_shape=input_shape, num_classes=num_classes)


def resnet20(input_shape=(32, 32, 3), num_classes=10):
    """The CIFAR ResNet-20 (He et al. 2016; batch norm, 16-32-64 filters): a convolution-heavy step."""
    from loop.datasets import models

    return models.resnet20(input_shape=input_shape, num_classes=num_classes)


#: ``--model``: the builder and the input shape of each throughput model.
MODELS = {"fashion_cnn": (fashion_cnn, (28, 28, 1)), "resnet20": (resnet20, (32, 32, 3))}


def forward_flops(model):
    """Multiply-add FLOPs of one sample's forward pass through Conv2D and Dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = layer.kernel.shape[2]
            h, w, cout = layer.output.shape[1:]
            total += 2 * h * w * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * int(np.prod(layer.kernel.shape))
    return total


#: The dtype of the matmul peak for each ``--precision``: the policy's compute dtype.
PEAK_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def matmul_peak_gflops(size=2048, repeats=10, dtype="float32"):
    """Measured matmul throughput of this machine in ``dtype`` (float32, bfloat16 or float16), in GFLOP/s.

    The product is rescaled by ``1/sqrt(size)`` after every multiplication, so
    the values stay near 1 (no overflow or subnormals in the 16-bit types).
    """
    dtype = tf.as_dtype(dtype)
    a = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size]), dtype)
    scale = tf.cast(1.0 / np.sqrt(size), dtype)

    @tf.function
    def run():
        c = a
        for _ in range(repeats):
            c = tf.matmul(c, b) * scale
        return tf.reduce_sum(tf.cast(c, tf.float32))

    run().numpy()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        run().numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 * repeats / best / 1e9


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m loop.bench throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=2, help="timed A/B pairs after the warm-up (default 2)")
    parser.add_argument("--epochs-per-call", type=int, default=3,
                        help="epochs in each Loop.fit / model.fit call (default 3)")
    parser.add_argument("--steps-per-execution", type=int, default=32)
    parser.add_argument("--matmul-size", type=int, default=2048, help="matrix size of the peak measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jit-compile", action="store_true",
                        help="compile both train steps with XLA (Loop(jit_compile=True), compile(jit_compile=True))")
    parser.add_argument("--input-dtype", choices=("float32", "uint8"), default="float32",
                        help="the training inputs' dtype on the device; uint8 (as images are stored) is cast to "
                             "the model's float dtype inside the step by its Input layer")
    parser.add_argument("--intra-op-threads", type=int, default=None, metavar="N",
                        help="threads of TensorFlow's intra-op pool (tf.config.threading, set before anything "
                             "runs; default: TensorFlow's default)")
    parser.add_argument("--inter-op-threads", type=int, default=None, metavar="N",
                        help="threads of TensorFlow's inter-op pool (tf.config.threading, set before anything "
                             "runs; default: TensorFlow's default)")
    parser.add_argument("--streaming", action="store_true",
                        help="time Loop streaming from a memmap against the same data on the device, instead of "
                             "Loop against model.fit")
    parser.add_argument("--memory", action="store_true",
                        help="run the memory test on real (random, non-sparse) memmaps: one epoch streamed at each "
                             "--memory-batch-sizes, then one resident, each in a subprocess whose RssAnon and VmRSS "
                             "a thread samples; prints each run's peak and baseline")
    parser.add_argument("--memory-gib", type=float, default=1.0,
                        help="the memory test's streamed memmap in GiB (default 1; streamed at any size)")
    parser.add_argument("--resident-gib", type=float, default=0.5,
                        help="the memory test's resident memmap in GiB (default 0.5; 0 skips the resident run)")
    parser.add_argument("--memory-batch-sizes", default="32,256",
                        help="the memory test's batch sizes, comma-separated (default 32,256)")
    parser.add_argument("--staging-mib", type=float, default=None,
                        help="Loop(staging_bytes=...) in MiB for the memory test (default: Loop's, 512)")
    parser.add_argument("--model", choices=sorted(MODELS), default="fashion_cnn",
                        help="the Fashion-MNIST CNN (default) or the CIFAR ResNet-20, on random data of its shape")
    from loop.bench.precision import add_precision_argument, parse_precision

    add_precision_argument(parser)
    args = parser.parse_args(argv)
    parse_precision(parser, args)
    for name in ("pairs", "batch_size", "epochs_per_call", "steps_per_execution", "matmul_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for name in ("intra_op_threads", "inter_op_threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.streaming and args.memory:
        parser.error("--streaming and --memory are two separate runs; pass one of them")
    if args.memory_gib <= 0:
        parser.error(f"--memory-gib must be positive, got {args.memory_gib}")
    if args.resident_gib < 0:
        parser.error(f"--resident-gib must be 0 (skip) or positive, got {args.resident_gib}")
    if args.staging_mib is not None and args.staging_mib <= 0:
        parser.error(f"--staging-mib must be positive, got {args.staging_mib}")
    try:
        args.memory_batch_sizes = [int(b) for b in str(args.memory_batch_sizes).split(",")]
    except ValueError:
        args.memory_batch_sizes = []
    if not args.memory_batch_sizes or min(args.memory_batch_sizes) < 1:
        parser.error(f"--memory-batch-sizes must be positive integers separated by commas, e.g. 32,256; got "
                     f"{args.memory_batch_sizes!r}")
    if args.samples < args.batch_size:
        parser.error(f"--samples ({args.samples}) must be at least --batch-size ({args.batch_size})")
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative integer, got {args.seed}")
    return args


def apply_threads(args):
    """Sets ``--intra-op-threads`` / ``--inter-op-threads`` (those given) with ``tf.config.threading``.

    TensorFlow accepts them only before it has run anything; a value that is
    already in force is not set again.  Raises ``RuntimeError`` naming the flag
    when TensorFlow has started with other values.
    """
    setters = {"intra_op_threads": (tf.config.threading.get_intra_op_parallelism_threads,
                                    tf.config.threading.set_intra_op_parallelism_threads),
               "inter_op_threads": (tf.config.threading.get_inter_op_parallelism_threads,
                                    tf.config.threading.set_inter_op_parallelism_threads)}
    for name, (get, set_) in setters.items():
        value = getattr(args, name, None)
        if value is None or get() == value:
            continue
        try:
            set_(value)
        except RuntimeError as error:
            raise RuntimeError(f"--{name.replace('_', '-')} {value}: TensorFlow has already started ({error}); "
                               "set the threads before it runs anything") from error


def measure(args):
    """Runs the A/B comparison and prints it; returns the per-pair times (seconds per epoch) and ratios.

    The thread settings (``apply_threads``) come first.  Both models are built
    and trained under the global policy ``args.precision`` (the previous policy
    is put back afterwards); the result records it.
    """
    from loop.bench.precision import global_policy

    apply_threads(args)

    with global_policy(getattr(args, "precision", "float32")):
        return _measure(args)


def _measure(args):
    from loop import Loop
    from loop.selectors import Shuffle

    epochs = args.epochs_per_call
    rng = np.random.default_rng(args.seed)
    build, shape = MODELS[getattr(args, "model", "fashion_cnn")]
    x = rng.random((args.samples, *shape), dtype=np.float32)
    if getattr(args, "input_dtype", "float32") == "uint8":
        x = (255 * x).astype(np.uint8)
    y = rng.integers(0, 10, args.samples).astype("int32")
    keras.utils.set_random_seed(args.seed)
    loop_model = build()
    fit_model = keras.models.clone_model(loop_model)
    fit_model.set_weights(loop_model.get_weights())
    loop = Loop(loop_model, optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"], selector=Shuffle(), batch_size=args.batch_size, seed=args.seed,
                steps_per_execution=args.steps_per_execution, jit_compile=getattr(args, "jit_compile", False))
    fit_model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], jit_compile=getattr(args, "jit_compile", False))
    epoch_timer = _EpochTimer()

    def loop_call():
        t0 = time.perf_counter()
        history = loop.fit((x, y), epochs=epochs, verbose=0)
        return (time.perf_counter() - t0) / epochs, float(history.frame["train_time_s"].iloc[-1]) / epochs

    def fit_call():
        epoch_timer.seconds = 0.0
        t0 = time.perf_counter()
        fit_model.fit(x, y, batch_size=args.batch_size, epochs=epochs, shuffle=True, verbose=0,
                      callbacks=[epoch_timer])
        return (time.perf_counter() - t0) / epochs, epoch_timer.seconds / epochs

    precision = keras.mixed_precision.global_policy().name
    peak_dtype = PEAK_DTYPES[precision]
    given = [f"--{n.replace('_', '-')}" for n in ("intra_op_threads", "inter_op_threads")
             if getattr(args, n, None) is not None]
    print(f"threads: intra={tf.config.threading.get_intra_op_parallelism_threads()} "
          f"inter={tf.config.threading.get_inter_op_parallelism_threads()} "
          f"({'set by ' + ' and '.join(given) + '; ' if given else ''}0: TensorFlow's default), devices: "
          f"{[d.name for d in tf.config.list_logical_devices()]}; {epochs} epoch(s) per call, times per epoch",
          flush=True)
    print(f"model: {loop_model.name}, {forward_flops(loop_model) / 1e6:.1f} MFLOP per forward sample; XLA "
          f"{'on' if getattr(args, 'jit_compile', False) else 'off'}; inputs {x.dtype}; "
          f"precision: {precision} (compute {loop_model.compute_dtype}, variables {loop_model.variable_dtype}); "
          f"optimizers: loop {type(loop.optimizer).__name__}, model.fit {type(fit_model.optimizer).__name__}",
          flush=True)
    print(f"warm-up: loop {loop_call()[0]:.2f} s, fit {fit_call()[0]:.2f} s", flush=True)
    times = {"loop_call_s": [], "loop_epoch_s": [], "fit_call_s": [], "fit_epoch_s": []}
    for pair in range(args.pairs):
        (a, a_epoch), (b, b_epoch) = loop_call(), fit_call()
        for key, value in zip(times, (a, a_epoch, b, b_epoch)):
            times[key].append(value)
        print(f"pair {pair}: call loop {a:.2f} s, fit {b:.2f} s, ratio {a / b:.3f} | epoch loop {a_epoch:.2f} s, "
              f"fit {b_epoch:.2f} s, ratio {a_epoch / b_epoch:.3f} | fit outside epoch {b - b_epoch:.2f} s",
              flush=True)
    loop_calls, loop_epochs, fit_calls, fit_epochs = (np.array(times[k]) for k in times)
    ratio = float(np.median(loop_calls / fit_calls))
    epoch_ratio = float(np.median(loop_epochs / fit_epochs))
    flops = 3 * forward_flops(loop_model) * args.samples
    peak = matmul_peak_gflops(args.matmul_size, dtype=peak_dtype)
    achieved = flops / np.median(loop_epochs) / 1e9
    fit_achieved = flops / np.median(fit_epochs) / 1e9
    print(f"median call: loop {np.median(loop_calls):.2f} s, model.fit {np.median(fit_calls):.2f} s; "
          f"median epoch: loop {np.median(loop_epochs):.2f} s, model.fit {np.median(fit_epochs):.2f} s "
          f"({args.samples} samples, batch {args.batch_size})")
    print(f"total over {args.pairs} pairs: loop {loop_calls.sum() * epochs:.1f} s, "
          f"model.fit {fit_calls.sum() * epochs:.1f} s (ratio {loop_calls.sum() / fit_calls.sum():.3f})")
    print(f"median ratio loop/fit: {ratio:.3f} (goal <= 0.90); epoch only: {epoch_ratio:.3f}")
    print(f"train step: {achieved:.1f} GFLOP/s (model.fit {fit_achieved:.1f}) against a measured {peak_dtype} "
          f"matmul peak of {peak:.1f} GFLOP/s ({100 * achieved / peak:.1f}% of peak)", flush=True)
    forward_us = forward_cost_us(loop, args.samples, args.batch_size)
    train_us = 1e6 * np.median(loop_epochs) / args.samples
    backward_ratio = train_us / forward_us - 1.0
    print(f"per sample: forward {forward_us:.1f} us (training=False, batch {args.batch_size}), train step "
          f"{train_us:.1f} us; backward:forward cost ratio r = {backward_ratio:.2f} (docs/performance.md uses it to "
          "predict speedups from sample counts)", flush=True)
    return dict(times, forward_us=forward_us, train_us=train_us, backward_ratio=backward_ratio, ratio=ratio,
                epoch_ratio=epoch_ratio, total_ratio=float(loop_calls.sum() / fit_calls.sum()),
                gflops=achieved, fit_gflops=fit_achieved, peak_gflops=peak, precision=precision,
                peak_dtype=peak_dtype)


def forward_cost_us(loop, samples, batch_size, repeats=2):
    """Microseconds per sample of the loop's compiled forward pass (``training=False``) at ``batch_size`` rows.

    Times ``loop.score`` over every training row, ``repeats`` times after a
    warm-up, and keeps the fastest.
    """
    saved, loop.eval_batch_size = loop.eval_batch_size, batch_size
    try:
        indices = np.arange(samples)
        loop.score(indices[:batch_size])  # warm-up: traces the score function
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            loop.score(indices)
            best = min(best, time.perf_counter() - start)
    finally:
        loop.eval_batch_size = saved
    return 1e6 * best / samples


def main(argv=None):
    """Command-line entry point; returns the exit code (2 for bad arguments)."""
    try:
        args = parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the message
        return exit_.code
    if args.memory:
        from loop.bench.perf.streaming import memory_test

        memory_test(args.memory_gib, args.resident_gib, args.memory_batch_sizes, args.steps_per_execution,
                    None if args.staging_mib is None else int(args.staging_mib * 2 ** 20))
    elif args.streaming:
        from loop.bench.perf.streaming import streaming_throughput

        apply_threads(args)
        streaming_throughput(args, MODELS[args.model][0])
    else:
        measure(args)
    return 0


class _EpochTimer(keras.callbacks.Callback):
    """Sums ``model.fit``'s epoch spans, from ``on_epoch_begin`` to ``on_epoch_end``."""

    seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self._start


if __name__ == "__main__":
    raise SystemExit(main())
