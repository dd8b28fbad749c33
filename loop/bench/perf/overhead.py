"""``python -m loop.bench overhead``: each selector's epoch time divided by Shuffle's.

Every selector trains the seeds' Fashion-MNIST CNN on random 28x28x1 data (the
costs do not depend on the pixels) from the same initial weights, with the same
batch size, for ``--epochs`` epochs.  The first epoch is not counted, because
its first call pays for the graph's instantiation; of the others, the fastest
is taken, which is robust to a shared machine's noise.  Shuffle is measured
first and again last (``Shuffle() again``): the gap between the two is the
noise floor of the table.  Per selector it reports:

* ``epoch_ratio``: the median training + selection seconds per epoch,
  divided by Shuffle's.  This is what an epoch costs.
* ``step_ratio``: the same per optimizer step.  DyBAT's rounds and InfoBatch's
  pruned epochs take fewer steps, so this is the fair measure of what the
  selector adds to each step.
* ``selection_share``: selection seconds (the plan, ``on_batch_end``, and
  ``state.score`` passes) as a share of training + selection.
* ``candidate_ratio``: the same per candidate sample forwarded in training
  (``samples_seen``).  Selective backprop and its RandomDrop control forward
  every candidate but step only once a full batch is kept, so their fair cost
  is per candidate.
* ``backprop_per_epoch``: samples that contributed to a gradient, per epoch.

Goals: ``step_ratio`` at most 1.05 for the stale-loss selectors, and
``candidate_ratio`` at most 1.35 for the ones that score candidates with an
extra forward pass (importance sampling, selective backprop, RandomDrop,
RHO-LOSS).  RhoLoss runs with ``irreducible_epochs=1``: fitting its
irreducible-loss model happens before the first epoch, which is not counted,
and its per-step cost does not depend on it.
The re-scoring selectors (online batch selection, the curriculum, StaleSB)
report what their scheduled full passes cost, as ``selection_share``.
"""

import argparse
import sys

import numpy as np

#: The selectors that read last-seen losses only, the ones that re-score samples with ``state.score`` on a
#: schedule of their own, and the ones that score candidates in the step.
STALE = ("loss_sorted", "weighted_random", "dybat", "infobatch")
RESCORING = ("online_batch", "curriculum", "stale_selective_backprop")
SCORING = ("importance", "selective_backprop", "random_drop", "rho_loss:irreducible_epochs=1")
ALL = ("shuffle", "freeze", "homogeneous", "heterogeneous") + STALE + RESCORING + ("ordered_sgd", "dynamic") + SCORING


def measure(selectors, *, n_samples=10_000, epochs=4, batch_size=64, seed=0, model="fashion_cnn"):
    """Returns a ``pandas.DataFrame``: one row per selector with its per-epoch costs against Shuffle."""
    import keras
    import pandas as pd

    from loop import Loop
    from loop.bench.labels import selector_key
    from loop.bench.perf.throughput import fashion_cnn
    from loop.datasets import make_spirals
    from loop.datasets.models import mlp

    rng = np.random.default_rng(seed)
    if model == "fashion_cnn":
        x = rng.random((n_samples, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, 10, n_samples).astype("int32")
        build = fashion_cnn
    else:  # a tiny problem, for tests
        x, y = make_spirals(n_samples=n_samples, seed=seed)
        build = lambda: mlp((2,), 2)  # noqa: E731
    specs = [s for s in selectors if s.strip().lower() != "shuffle"]
    specs = ["shuffle"] + specs + ["shuffle"]
    rows = []
    for position, spec in enumerate(specs):
        label, factory = selector_key(spec)
        if position and spec == "shuffle":
            label += " again"
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        loop = Loop(build(), optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                    selector=factory(), batch_size=batch_size, seed=seed)
        frame = loop.fit((x, y), epochs=epochs, verbose=0).frame
        train = np.diff(frame["train_time_s"].to_numpy())
        steps = np.diff(frame["step"].to_numpy())
        seen = np.diff(frame["samples_seen"].to_numpy())
        rows.append({"selector": label,
                     "epoch_s": float(np.min(train)),
                     "step_ms": 1000 * float(np.min(train / np.maximum(steps, 1))),
                     "candidate_us": 1e6 * float(np.min(train / np.maximum(seen, 1))),
                     "selection_share": float(frame["selection_time_s"].iloc[-1] / frame["train_time_s"].iloc[-1]),
                     "backprop_per_epoch": float(np.median(np.diff(frame["samples_backpropagated"].to_numpy())))})
    table = pd.DataFrame(rows)
    reference = table.iloc[[0, -1]]  # the two Shuffle runs
    table.insert(1, "epoch_ratio", table["epoch_s"] / reference["epoch_s"].mean())
    table.insert(2, "step_ratio", table["step_ms"] / reference["step_ms"].mean())
    table.insert(3, "candidate_ratio", table["candidate_us"] / reference["candidate_us"].mean())
    return table.round(4)


def main(argv=None):
    """Command-line entry point; returns the exit code."""
    from loop.bench.reporting.formatting import to_markdown

    parser = argparse.ArgumentParser(prog="python -m loop.bench overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--selectors", default=",".join(ALL), help="comma-separated selector specs")
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=4, help="at least 2: the first epoch is not counted")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", choices=("fashion_cnn", "spirals_mlp"), default="fashion_cnn")
    try:
        args = _check(parser, parser.parse_args(argv))
    except SystemExit as exit_:  # argparse has printed the usage and the message
        return exit_.code
    specs = [s for s in args.selectors.split(",") if s.strip()]
    try:
        table = measure(specs, n_samples=args.n_samples, epochs=args.epochs, batch_size=args.batch_size,
                        model=args.model)
    except ValueError as err:
        print(f"python -m loop.bench overhead: error: {err}", file=sys.stderr)
        return 2
    print(to_markdown(table))
    return 0


def _check(parser, args):
    """Exits through ``parser.error`` for a bad argument, naming the flag; returns ``args``."""
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2 (the first epoch is not counted), got {args.epochs}")
    for name in ("n_samples", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.batch_size > args.n_samples:
        parser.error(f"--batch-size ({args.batch_size}) must be at most --n-samples ({args.n_samples})")
    specs = [s for s in args.selectors.split(",") if s.strip()]
    if not specs:
        parser.error(f"--selectors {args.selectors!r} names no selector; give specs such as shuffle,dybat:delta=0.5")
    return args


if __name__ == "__main__":
    sys.exit(main())
