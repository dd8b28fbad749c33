"""``python -m loop.bench throughput``: Loop + Shuffle against ``model.fit``.

Both train the same model (same initial weights, optimizer, batch size and
data) for one epoch at a time, alternating A/B in one process after a warm-up
epoch each.  It prints every epoch time, the median of the per-pair ratios
Loop/fit (below 1 means the loop is faster), and the train step's achieved
GFLOP/s against a measured float32 matmul peak on this machine.

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


def matmul_peak_gflops(size=2048, repeats=10):
    """Measured float32 matmul throughput of this machine, in GFLOP/s."""
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])

    @tf.function
    def run():
        c = a
        for _ in range(repeats):
            c = tf.matmul(c, b) * 1e-3
        return tf.reduce_sum(c)

    run().numpy()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        run().numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 * repeats / best / 1e9


def main(argv=None):
    from loop import Loop
    from loop.selectors import Shuffle

    parser = argparse.ArgumentParser(prog="python -m loop.bench throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=3, help="timed A/B pairs after the warm-up")
    parser.add_argument("--steps-per-execution", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x = rng.random((args.samples, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.samples).astype("int32")
    keras.utils.set_random_seed(args.seed)
    loop_model = fashion_cnn()
    fit_model = keras.models.clone_model(loop_model)
    fit_model.set_weights(loop_model.get_weights())
    loop = Loop(loop_model, optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"], selector=Shuffle(), batch_size=args.batch_size, seed=args.seed,
                steps_per_execution=args.steps_per_execution)
    fit_model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])

    def loop_epoch():
        t0 = time.perf_counter()
        loop.fit((x, y), epochs=1, verbose=0)
        return time.perf_counter() - t0

    def fit_epoch():
        t0 = time.perf_counter()
        fit_model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=True, verbose=0)
        return time.perf_counter() - t0

    print(f"threads: intra={tf.config.threading.get_intra_op_parallelism_threads()} "
          f"inter={tf.config.threading.get_inter_op_parallelism_threads()}, devices: "
          f"{[d.name for d in tf.config.list_logical_devices()]}", flush=True)
    print(f"warm-up: loop {loop_epoch():.2f} s, fit {fit_epoch():.2f} s", flush=True)
    loop_times, fit_times = [], []
    for pair in range(args.pairs):
        a, b = loop_epoch(), fit_epoch()
        loop_times.append(a)
        fit_times.append(b)
        print(f"pair {pair}: loop {a:.2f} s, fit {b:.2f} s, ratio {a / b:.3f}", flush=True)
    ratio = float(np.median(np.array(loop_times) / np.array(fit_times)))
    flops = 3 * forward_flops(loop_model) * args.samples
    peak = matmul_peak_gflops()
    achieved = flops / np.median(loop_times) / 1e9
    fit_achieved = flops / np.median(fit_times) / 1e9
    print(f"median epoch: loop {np.median(loop_times):.2f} s, model.fit {np.median(fit_times):.2f} s "
          f"({args.samples} samples, batch {args.batch_size})")
    print(f"median ratio loop/fit: {ratio:.3f} (goal <= 0.90)")
    print(f"train step: {achieved:.1f} GFLOP/s (model.fit {fit_achieved:.1f}) against a measured float32 "
          f"matmul peak of {peak:.1f} GFLOP/s ({100 * achieved / peak:.1f}% of peak)")
    return ratio


if __name__ == "__main__":
    main()
