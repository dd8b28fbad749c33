"""``python -m loop.bench``: the time-to-accuracy benchmark's command line.

    python -m loop.bench                        # the default suite, offline, a few minutes
    python -m loop.bench --suite seeds --data-dir /path/to/data
    python -m loop.bench --datasets boston --target val_mae=3.0
    python -m loop.bench report --out results/x  # tables and plots of stored runs
    python -m loop.bench throughput | overhead   # performance benchmarks
"""

import argparse
import os
import re
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROTOCOL = """\
protocol:
  For each dataset x selector x seed, the dataset's reference model is built
  after keras.utils.set_random_seed(seed), so every selector of a seed starts
  from the same weights (runs are paired by seed), and trained with
  Loop(selector=..., seed=seed) for the dataset's fixed epoch budget,
  evaluating on the (subset of the) test set after every epoch, never stopping
  early.  Time counts training + selection; evaluation time is reported
  separately.  Time- and epochs-to-target come from loop.history.first_reached.
  Default target per dataset: 99% of the median best validation accuracy that
  Shuffle reaches within the budget (lower-is-better metrics such as val_mae:
  101% of the median best); --target overrides it.  Speedup = median over seeds
  of (Shuffle time / selector time) for the same seed, with a seeded 95%
  percentile-bootstrap CI; a selector run that misses the target (or failed)
  scores 0, one that reaches it where Shuffle's run missed scores inf.  Failed
  runs (NaN loss, selector error) are stored with their error and count as not
  reached; they are never dropped.
  Each run is written atomically to <out>/runs/<dataset>/<selector>/seed_<k>.json;
  re-running with the same --out skips the runs already there.
"""


def split_specs(text):
    """Splits ``"shuffle,dybat:delta=0.5,shuffle=False,infobatch"`` into selector specs.

    A comma starts a new spec unless what follows is a ``key=value`` (then it is
    another hyper-parameter of the previous spec).  Commas inside quotes or
    brackets split nothing: ``"dynamic:base='dybat:delta=0.5,shuffle=True'"``.
    """
    from loop.selectors.base import split_top_level

    specs = []
    for token in (t.strip() for t in split_top_level(text)):
        if not token:
            continue
        if re.match(r"[A-Za-z_]\w*\s*=", token) and specs:
            specs[-1] += "," + token
        else:
            specs.append(token)
    return specs


def _parser():
    from loop.bench.suites import SUITES

    parser = argparse.ArgumentParser(
        prog="python -m loop.bench",
        description="Does a batch selector reach a target accuracy sooner than seeded random shuffling, in "
                    "wall-clock time and in epochs, and how sure are we?  Subcommands: 'report' (tables and "
                    "plots of an existing --out), 'throughput', 'overhead' (each has its own --help).",
        epilog=PROTOCOL + "\nsuites:\n" + "\n".join(
            f"  {s.name}: {s.description}; {s.seeds} seeds; selectors {', '.join(s.selectors)}; budgets: "
            + "; ".join(f"{b.dataset} {b.epochs} epochs" + (f" on {b.n_train} training rows" if b.n_train else "")
                        + (f", {b.model}" if b.model else "") for b in s.budgets)
            for s in SUITES.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="default",
                        help="the named suite whose datasets, budgets, selectors and seeds are the defaults")
    parser.add_argument("--datasets", help="comma-separated dataset names (default: the suite's)")
    parser.add_argument("--selectors", help="comma-separated selector specs such as shuffle,dybat:delta=0.5 "
                                            "(default: the suite's; shuffle is always added as the baseline)")
    parser.add_argument("--seeds", type=int, help="number of seeds, 0..N-1 (default: the suite's)")
    parser.add_argument("--epochs", type=int, help="epoch budget for every dataset (default: per dataset)")
    parser.add_argument("--n-train", type=int, help="training rows per dataset (default: per dataset)")
    parser.add_argument("--n-test", type=int, help="test rows evaluated per epoch (default: per dataset)")
    parser.add_argument("--target", action="append", default=[],
                        help="metric=value or dataset:metric=value, e.g. val_mae=3.0 (repeatable); "
                             "default: inferred from Shuffle")
    parser.add_argument("--out", help="results directory (default: results/<timestamp>); reuse it to resume")
    parser.add_argument("--data-dir", help="directory of the original data files (default: $LOOP_DATA_DIR)")
    parser.add_argument("--retry-failed", action="store_true", help="re-run runs stored as failed")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples for the speedup CI")
    return parser


def _fail(message):
    print(f"python -m loop.bench: error: {message}", file=sys.stderr)
    return 2


def _budgets(args, suite):
    import dataclasses

    from loop import datasets
    from loop.bench.suites import SUITES, Budget

    known = {b.dataset: b for s in SUITES.values() for b in s.budgets}
    known.update({b.dataset: b for b in suite.budgets})
    if not args.datasets:
        chosen = list(suite.budgets)
    else:
        chosen = []
        for name in (n.strip() for n in args.datasets.split(",") if n.strip()):
            key = name.lower().replace("-", "_")
            if key not in datasets.names():
                raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(datasets.names())}")
            chosen.append(known.get(key) or Budget(dataset=key, epochs=10))
    overrides = {k: v for k, v in (("epochs", args.epochs), ("n_train", args.n_train), ("n_test", args.n_test))
                 if v is not None}
    return [dataclasses.replace(b, **overrides) for b in chosen]


def report(out, *, targets=None, plots=True, n_boot=10_000, stream=None):
    """Writes table.csv, table.md, seed000.csv and plots/ under ``out`` and prints the tables.

    Returns:
        The summary ``pandas.DataFrame``.
    """
    from loop.bench import plots as plots_lib
    from loop.bench import tables

    stream = stream or sys.stdout
    records = tables.load_runs(out)
    skipped = tables.not_applicable(records)
    records = [r for r in records if r["status"] != tables.NOT_APPLICABLE]
    table = tables.summarize(records, targets=targets, n_boot=n_boot)
    first = tables.seed000(records)
    table.to_csv(os.path.join(out, "table.csv"), index=False)
    first.to_csv(os.path.join(out, "seed000.csv"), index=False)
    text = ["## Time to target", "", tables.to_markdown(tables.display(table)), "",
            "## Seed 000 (seed 0 only)", "", tables.to_markdown(first), ""]
    if skipped:
        text += ["Not applicable (not trained): " + "; ".join(
            f"{selector} on {', '.join(datasets)}" for selector, datasets in skipped.items()), ""]
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(text))
    print("\n".join(text), file=stream)
    if plots and records:
        paths = plots_lib.plot_all(records, os.path.join(out, "plots"), targets=targets)
        print(f"plots: {len(paths)} figures in {os.path.join(out, 'plots')}", file=stream)
    print(f"tables: {os.path.join(out, 'table.csv')}, {os.path.join(out, 'table.md')}, "
          f"{os.path.join(out, 'seed000.csv')}", file=stream)
    return table


def main(argv=None):
    """Runs the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("throughput", "overhead"):
        import importlib

        module = importlib.import_module(f"loop.bench.{argv[0]}")
        return module.main(argv[1:]) or 0
    command = "run"
    if argv and argv[0] in ("report", "run"):
        command = argv.pop(0)
    parser = _parser()
    args = parser.parse_args(argv)

    import tensorflow as tf

    from loop.bench import runner, tables
    from loop.bench.suites import SUITES

    tf.get_logger().setLevel("ERROR")  # per-run retracing warnings of fresh models are expected

    suite = SUITES[args.suite]
    try:
        targets = tables.parse_targets(args.target)
    except ValueError as err:
        return _fail(err)
    if command == "report":
        if not args.out or not os.path.isdir(args.out):
            return _fail(f"report needs --out with stored runs; {args.out!r} is not a directory")
        report(args.out, targets=targets, plots=not args.no_plots, n_boot=args.bootstrap)
        return 0
    specs = split_specs(args.selectors) if args.selectors else list(suite.selectors)
    try:
        labels = [runner.selector_key(s)[0] for s in specs]
        if tables.BASELINE not in labels:
            specs.insert(0, "shuffle")
        budgets = _budgets(args, suite)
    except (ValueError, TypeError) as err:
        return _fail(err)
    seeds = suite.seeds if args.seeds is None else args.seeds
    if seeds <= 0:
        return _fail(f"--seeds must be positive, got {seeds}")
    out = args.out or os.path.join("results", time.strftime("%Y%m%d-%H%M%S"))
    data_dir = args.data_dir or os.environ.get("LOOP_DATA_DIR")
    print(f"loop.bench: {len(budgets)} datasets x {len(specs)} selectors x {seeds} seeds -> {out}", file=sys.stderr)
    start = time.perf_counter()
    summary = runner.run_suite(budgets, specs, seeds, out, data_dir=data_dir, retry_failed=args.retry_failed)
    wall = time.perf_counter() - start
    print(f"loop.bench: ran {summary['ran']}, skipped {summary['skipped']} already stored, "
          f"{summary['failed']} failed, {summary['not_applicable']} not applicable, in {wall:.0f}s",
          file=sys.stderr)
    report(out, targets=targets, plots=not args.no_plots, n_boot=args.bootstrap)
    if summary["unloadable"]:
        for dataset, message in summary["unloadable"]:
            print(f"python -m loop.bench: could not load {dataset}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
