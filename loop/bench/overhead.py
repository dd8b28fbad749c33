"""``python -m loop.bench overhead``: what each selector's own work costs per epoch.

Trains a small MLP on generated spirals with every selector for a few epochs
and reports, per selector, the selection seconds per epoch (the plan and the
``on_batch_end`` hook; ``score`` passes count as training), the training
seconds per epoch after the first (traced) epoch, and the selection share of
training plus selection.
"""

import argparse
import sys

import numpy as np


def measure(selectors, *, n_samples=20_000, epochs=4, batch_size=64, seed=0):
    """Returns a ``pandas.DataFrame``: one row per selector with its per-epoch costs."""
    import keras
    import pandas as pd

    from loop import Loop
    from loop.bench.runner import selector_key
    from loop.datasets import make_spirals
    from loop.datasets.models import mlp

    x, y = make_spirals(n_samples=n_samples, seed=seed)
    rows = []
    for spec in selectors:
        label, factory = selector_key(spec)
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        loop = Loop(mlp((2,), 2), optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                    selector=factory(), batch_size=batch_size, seed=seed)
        frame = loop.fit((x, y), epochs=epochs, verbose=0).frame
        train = np.diff(frame["train_time_s"].to_numpy())
        selection = np.diff(frame["selection_time_s"].to_numpy())
        rows.append({"selector": label,
                     "selection_ms_per_epoch": 1000 * float(np.median(selection)),
                     "train_ms_per_epoch": 1000 * float(np.median(train)),
                     "selection_share": float(frame["selection_time_s"].iloc[-1] / frame["train_time_s"].iloc[-1]),
                     "samples_backpropagated_per_epoch": float(frame["samples_backpropagated"].iloc[-1] / epochs)})
    return pd.DataFrame(rows)


def main(argv=None):
    """Command-line entry point; returns the exit code."""
    from loop.bench.suites import DEFAULT_SELECTORS
    from loop.bench.tables import to_markdown

    parser = argparse.ArgumentParser(prog="python -m loop.bench overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--selectors", default=",".join(DEFAULT_SELECTORS), help="comma-separated selector specs")
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=4, help="at least 2: the first (traced) epoch is not counted")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2")
    specs = [s for s in args.selectors.split(",") if s.strip()]
    try:
        table = measure(specs, n_samples=args.n_samples, epochs=args.epochs, batch_size=args.batch_size)
    except ValueError as err:
        print(f"python -m loop.bench overhead: error: {err}", file=sys.stderr)
        return 2
    print(to_markdown(table))
    return 0
