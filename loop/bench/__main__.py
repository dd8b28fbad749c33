"""``python -m loop.bench``: the time-to-accuracy benchmark's command line.

    python -m loop.bench                        # the default suite, offline, a few minutes
    python -m loop.bench --suite seeds --data-dir /path/to/data
    python -m loop.bench --seeds auto:5:15      # 5 seeds, more (up to 15) where the speedup is undecided
    python -m loop.bench --datasets boston --target val_mae=3.0
    python -m loop.bench --precision mixed_bfloat16   # a keras.mixed_precision policy
    python -m loop.bench --suite tuned --out results/tuned   # every method tuned alike (loop.bench.tuning)
    python -m loop.bench report --out results/x  # tables and plots of stored runs
    python -m loop.bench throughput | overhead   # performance benchmarks

Each subcommand has its own parser and ``--help``: ``run`` (the default, also
with no subcommand) and ``report`` are built here, one function per group of
options (:func:`_run_arguments`, :func:`_report_arguments`), so a new option
goes in one place; ``throughput`` and ``overhead`` own theirs.  ``--help`` does
not import TensorFlow; every other path imports it through
:func:`loop.startup.import_tensorflow`, which keeps its start-up log lines out
of the terminal.  The terminal shows the compact table
(:func:`loop.bench.tables.compact`); ``table.md`` and ``table.csv`` hold every
column.
"""

import argparse
import os
import re
import sys
import time

#: The usage line: the main job (``run``, the default) and the three subcommands, each with its own ``--help``.
USAGE = """\
%(prog)s [run] [options]             train selectors against Shuffle, then report
       %(prog)s report --out DIR [options]  tables and figures of stored runs
       %(prog)s throughput [options]        the loop's speed against model.fit
       %(prog)s overhead [options]          each selector's cost per step"""

DESCRIPTION = """\
Does a batch selector reach a target accuracy sooner than seeded random
shuffling, in wall-clock time and in epochs, and how sure are we?  With no
subcommand (or 'run'), trains every dataset x selector x seed, then prints a
compact table (every column is in <out>/table.md and table.csv) and draws the
figures.  'python -m loop.bench SUBCOMMAND --help' describes each subcommand."""

PROTOCOL = """\
protocol:
  For each dataset x selector x seed, the dataset's reference model is built
  after keras.utils.set_random_seed(seed), so every selector of a seed starts
  from the same weights (runs are paired by seed), and trained with
  Loop(selector=..., seed=seed) for the dataset's fixed epoch budget,
  evaluating on the (subset of the) test set after every epoch.  A run goes
  on to the end of its budget, except in suites whose budgets set
  stop_at_target (such as full): there it ends at its first evaluation that
  meets the fixed target, and the budget is an epoch cap.  Time counts
  training + selection; evaluation time is reported separately.  Time- and
  epochs-to-target come from loop.history.first_reached.
  Default target per dataset: 99% of the median best validation accuracy that
  Shuffle reaches within the budget (lower-is-better metrics such as val_mae:
  101% of the median best); --target overrides it.  Speedup = median over seeds
  of (Shuffle time / selector time) for the same seed, with a seeded 95%
  percentile-bootstrap CI; a selector run that misses the target (or failed)
  scores 0, one that reaches it where Shuffle's run missed scores inf.  Failed
  runs (NaN loss, selector error) are stored with their error and count as not
  reached; they are never dropped.  Verdict: "win" when the speedup's 95%
  interval lies above 1, "loss" below 1, "no difference" when it contains 1,
  "n/a" without an interval.  --seeds auto:MIN:MAX runs MIN seeds, then adds
  one seed at a time (up to MAX) to each dataset-selector pair whose wall-clock
  speedup interval still contains 1, and to Shuffle where it lacks that seed.
  Each run is written atomically to <out>/runs/<dataset>/<selector>/seed_<k>.json;
  re-running with the same --out skips the runs already there.
  --precision sets the keras.mixed_precision global policy before each model
  is built (mixed_float16 trains with a LossScaleOptimizer, as model.fit does)
  and is stored with each run; one --out holds runs of one precision, and
  resuming it with another precision is refused.
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


def _seeds_argument(text):
    """``--seeds``: an int, or ``auto:MIN:MAX`` (a :class:`loop.bench.auto_seeds.AutoSeeds`)."""
    from loop.bench.auto_seeds import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


#: The width the pre-wrapped help text (description, protocol, suites) keeps to.
HELP_WIDTH = 80


def _suites_text(width=HELP_WIDTH):
    """The ``suites:`` section of the help: per suite its description, seeds, selectors and budgets, wrapped."""
    import textwrap

    from loop.bench.suites import SUITES

    def wrap(text, indent):
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent + "  ",
                             break_on_hyphens=False)

    lines = ["suites:"]
    for s in SUITES.values():
        lines.append(wrap(f"{s.name}: {s.description}; {s.seeds} seeds", "  "))
        lines.append(wrap(f"selectors: {', '.join(s.selectors)}", "    "))
        for b in s.budgets:
            lines.append(wrap(
                f"{b.name}: {'at most ' if b.stop_at_target else ''}{b.epochs} epochs"
                + (f" on {b.n_train} training rows" if b.n_train else "")
                + (f", {b.model}" if b.model else "")
                + (f", lr {b.learning_rate:g}" if b.learning_rate else "")
                + (", to " + ", ".join(f"{m} {v}" for m, v in b.target.items()) if b.target else "")
                + (f", selectors {', '.join(b.selectors)} ({b.note})" if b.selectors else ""), "    "))
    return "\n".join(lines)


def _run_arguments(parser):
    """The options of the main job (``run``): what to train, how many seeds, where to store it."""
    from loop.bench.runner import add_precision_argument
    from loop.bench.suites import SUITES

    parser.add_argument("--suite", choices=sorted(SUITES), default="default",
                        help="the named suite whose datasets, budgets, selectors and seeds are the defaults")
    parser.add_argument("--datasets", help="comma-separated dataset names (default: the suite's)")
    parser.add_argument("--selectors", help="comma-separated selector specs such as shuffle,dybat:delta=0.5, or "
                                            "your own as module:Class[:key=value,...] (default: the suite's; "
                                            "shuffle is always added as the baseline)")
    parser.add_argument("--seeds", type=_seeds_argument, metavar="N|auto:MIN:MAX",
                        help="number of seeds, 0..N-1 (default: the suite's); or auto:MIN:MAX: MIN seeds, then "
                             "one more at a time, up to MAX, for each dataset-selector pair whose wall-clock "
                             "speedup's 95%% interval contains 1")
    parser.add_argument("--epochs", type=int, help="epoch budget for every dataset (default: per dataset)")
    parser.add_argument("--n-train", type=int, help="training rows per dataset (default: per dataset)")
    parser.add_argument("--n-test", type=int, help="test rows evaluated per epoch (default: per dataset)")
    parser.add_argument("--out", help="results directory (default: results/<timestamp>); reuse it to resume")
    parser.add_argument("--data-dir", help="directory of the original data files (default: $LOOP_DATA_DIR)")
    parser.add_argument("--retry-failed", action="store_true", help="re-run runs stored as failed")
    add_precision_argument(parser)
    from loop.bench import tuning

    tuning.add_arguments(parser)  # --tune, --schedule, --warmup, --horizon


def _report_arguments(parser):
    """The options that choose what the tables and figures show; ``run`` and ``report`` both take them."""
    parser.add_argument("--target", action="append", default=[],
                        help="metric=value or dataset:metric=value, e.g. val_mae=3.0 (repeatable); "
                             "default: inferred from Shuffle")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples for the speedup CI")
    parser.add_argument("--full-table", action="store_true",
                        help="print every column (as table.md holds them) instead of the compact table")


def _parser(command="run"):
    """The argument parser of ``command``: "run" (the main job, the default) or "report"."""
    formatter = argparse.RawDescriptionHelpFormatter
    if command == "report":
        parser = argparse.ArgumentParser(
            prog="python -m loop.bench report", formatter_class=formatter,
            description="Recomputes the tables and figures of an earlier run's results directory (the runs\n"
                        "already stored in it; nothing is trained) and prints the compact table.")
        parser.add_argument("--out", metavar="DIR", help="the results directory of an earlier run (required)")
        _report_arguments(parser)
        return parser
    if command != "run":
        raise ValueError(f"_parser({command!r}): the command is 'run' or 'report'")
    parser = argparse.ArgumentParser(prog="python -m loop.bench", usage=USAGE, description=DESCRIPTION,
                                     epilog=PROTOCOL + "\n" + _suites_text(), formatter_class=formatter)
    _run_arguments(parser)
    _report_arguments(parser)
    return parser


#: The numeric options that must be at least 1 when given.
_COUNTS = ("--seeds", "--epochs", "--n-train", "--n-test", "--bootstrap")

#: What a results directory holds: name -> whether it is a directory.
_OUTPUTS = {"runs": True, "plots": True, "table.csv": False, "table.md": False, "seed000.csv": False}


def _directory_problem(path):
    """Why ``path`` cannot be (made) a directory this process writes in, or None when it can."""
    if os.path.isdir(path):
        return None if os.access(path, os.W_OK | os.X_OK) else "is a directory you cannot write in"
    if os.path.lexists(path):
        return "is a file, not a directory" if os.path.isfile(path) else "exists and is not a directory"
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot be created: {parent!r} is {'a file' if os.path.isfile(parent) else 'not a directory'}"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: you cannot write in {parent!r}"
    return None


def _check_out(parser, args, command):
    """The results directory, after ``parser.error`` for one that cannot be read or written as one."""
    if args.out == "":
        parser.error("--out is empty; give a results directory (it is created if missing), or leave --out out "
                     "for results/<timestamp>")
    if command == "report":
        if args.out is None:
            parser.error("report needs --out DIR: the results directory of an earlier run")
        if not os.path.isdir(args.out):
            state = "does not exist" if not os.path.lexists(args.out) else "is not a directory"
            parser.error(f"report --out {args.out!r} {state}; give the results directory of an earlier run "
                         "(the --out it was run with)")
    out = args.out if args.out is not None else os.path.join("results", time.strftime("%Y%m%d-%H%M%S"))
    flag = "report --out" if command == "report" else "--out"
    why = _directory_problem(out)
    if why:
        parser.error(f"{flag} {out!r} {why}; give a directory you can write in (it is created if missing)")
    for name, is_dir in _OUTPUTS.items():
        path = os.path.join(out, name)
        if os.path.lexists(path) and os.path.isdir(path) != is_dir and not (name == "plots" and args.no_plots):
            parser.error(f"{flag} {out!r} cannot hold the results: {path!r} is "
                         f"{'not a directory' if is_dir else 'a directory'}; move it away or give another --out")
    return out


def _check_data_dir(parser, args):
    """The data directory (--data-dir, else $LOOP_DATA_DIR, else None), after ``parser.error`` for a bad one."""
    if args.data_dir is not None:
        data_dir, named = args.data_dir, "--data-dir"
    else:
        data_dir, named = os.environ.get("LOOP_DATA_DIR") or None, "$LOOP_DATA_DIR"
    if data_dir is None:
        return None
    path = os.path.expanduser(data_dir)  # as loop.datasets.load reads it
    if not os.path.isdir(path):
        state = "does not exist" if not os.path.lexists(path) else "is not a directory"
        fix = "leave --data-dir out" if named == "--data-dir" else "unset $LOOP_DATA_DIR"
        parser.error(f"{named} {data_dir!r} {state}; give the directory of the original data files "
                     f"(layout in docs/datasets.md), or {fix} to use only the Keras cache and bundled data")
    return data_dir


def _plan(parser, args, command):
    """Checks every argument, with ``parser.error``, before anything is trained or written.

    Returns:
        A namespace: ``out`` and ``targets``; for ``run`` also ``specs``, ``budgets``, ``seeds`` and ``data_dir``.
    """
    for flag in _COUNTS:
        value = getattr(args, flag[2:].replace("-", "_"), None)  # report has no --seeds, --epochs, ...
        if isinstance(value, int) and value < 1:
            parser.error(f"{flag} must be at least 1, got {value}; leave {flag} out for the default")
    from loop.bench.runner import parse_precision

    precision = parse_precision(parser, args) if command == "run" else None
    out = _check_out(parser, args, command)
    data_dir = _check_data_dir(parser, args) if command == "run" else None

    import tensorflow as tf

    from loop.bench import auto_seeds, runner, tables, tuning
    from loop.bench.suites import SUITES

    tf.get_logger().setLevel("ERROR")  # per-run retracing warnings of fresh models are expected
    try:
        targets = tables.parse_targets(args.target)
        if command == "report":
            if not tables.load_runs(out) and not tuning.load_trials(out):
                raise ValueError(f"report --out {out!r} holds no runs (no runs/<dataset>/<selector>/seed_<k>.json "
                                 "in it); give the --out of an earlier run")
            return argparse.Namespace(out=out, targets=targets)
        suite = SUITES[args.suite]
        specs = split_specs(args.selectors) if args.selectors else tuning.available(suite.selectors)
        trials = tuning.trials_of(args, suite)
        if trials and isinstance(args.seeds, auto_seeds.AutoSeeds):
            raise ValueError("--seeds auto:MIN:MAX does not combine with tuning (--tune K, or the tuned suite): "
                             "give the number of studies, e.g. --seeds 3")
        labels = [runner.selector_key(s)[0] for s in specs]
        if tables.BASELINE not in labels:
            specs.insert(0, "shuffle")
        budgets = _budgets(args, suite)
        runner.check_out_precision(out, precision)  # one --out holds one precision
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    seeds = suite.seeds if args.seeds is None else args.seeds
    return argparse.Namespace(out=out, targets=targets, specs=specs, budgets=budgets, seeds=seeds, data_dir=data_dir,
                              precision=precision, trials=trials)


def _budgets(args, suite):
    import dataclasses

    from loop import datasets
    from loop.bench.suites import SUITES, Budget

    known = {b.name: b for s in SUITES.values() for b in s.budgets}
    known.update({b.name: b for b in suite.budgets})
    if args.datasets is None:
        chosen = list(suite.budgets)
    else:
        chosen = []
        for name in (n.strip() for n in args.datasets.split(",") if n.strip()):
            key = name.lower().replace("-", "_")
            if key not in datasets.names() and key not in known:
                raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(datasets.names())} or a "
                                 f"workload of the suites ({', '.join(k for k in known if k not in datasets.names())})")
            chosen.append(known.get(key) or Budget(dataset=key, epochs=10))
        if not chosen:
            raise ValueError(f"--datasets {args.datasets!r} names no dataset; give comma-separated names such as "
                             "iris,wine, or leave --datasets out for the suite's")
    overrides = {k: v for k, v in (("epochs", args.epochs), ("n_train", args.n_train), ("n_test", args.n_test))
                 if v is not None}
    if args.selectors:  # the selectors asked for run on every dataset
        overrides["selectors"] = None
    from loop.bench import tuning

    overrides.update(tuning.budget_overrides(args))  # --schedule, --warmup, --horizon
    return [dataclasses.replace(b, **overrides) for b in chosen]


def report(out, *, targets=None, plots=True, n_boot=10_000, stream=None, full_table=False, width=120):
    """Writes table.csv, table.md, seed000.csv, plots/ and analysis/ under ``out`` and prints the tables.

    ``analysis/`` holds the speedup across thresholds and the performance
    profiles over the datasets (:func:`loop.bench.analysis.write_analysis`).

    Args:
        out: a results directory holding stored runs.
        targets: from :func:`loop.bench.tables.parse_targets`; None infers every target.
        plots: whether to draw the PNG figures under ``out/plots``.
        n_boot: bootstrap resamples for the speedups' intervals.
        stream: where to print (default: stdout).
        full_table: print every column, as ``table.md`` holds them; by default the compact table
            (:func:`loop.bench.tables.compact`) and the seed 000 table with its caption.
        width: the widest line of the compact table.

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
    from loop.bench.runner import DEFAULT_PRECISION, run_precision

    notes = []
    precisions = sorted({run_precision(r) for r in records})
    if precisions != [DEFAULT_PRECISION] and precisions:
        notes += [f"Precision (keras.mixed_precision policy): {', '.join(precisions)}", ""]
    if skipped:
        notes += ["Not applicable (not trained): " + "; ".join(
            f"{selector} on {', '.join(datasets)}" for selector, datasets in skipped.items()), ""]
    text += notes
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(text))
    if full_table:
        printed = text
    else:
        printed = ["Time to target (median over seeds); speedup = Shuffle's time / the selector's, paired by seed,",
                   "with its 95% bootstrap interval. Every column is in table.md and table.csv.", "",
                   tables.compact(table, width=width), ""]
        if not first.empty:
            printed += [tables.SEED000_CAPTION, "", tables.to_text(first), ""]
        printed += notes
    print("\n".join(printed), file=stream)
    if plots and records:
        paths = plots_lib.plot_all(records, os.path.join(out, "plots"), targets=targets)
        wallclock = os.path.join(out, "plots", "wallclock.png")
        if any(not r["frame"].empty for r in records):
            plots_lib.plot_wallclock(records, wallclock, targets=targets)
            paths.append(wallclock)
        print(f"plots: {len(paths)} figures in {os.path.join(out, 'plots')}", file=stream)
    print(f"tables: {os.path.join(out, 'table.csv')}, {os.path.join(out, 'table.md')}, "
          f"{os.path.join(out, 'seed000.csv')}", file=stream)
    if records:
        from loop.bench import analysis

        where = os.path.join(out, "analysis")
        analysis.write_analysis(records, where, targets, n_boot=n_boot, plots=plots)
        print(f"speedup across thresholds and performance profiles: {os.path.join(where, 'analysis.md')}",
              file=stream)
    return table


def main(argv=None):
    """Runs the command line; returns the exit code (2, after the usage and what is wrong, for a bad argument).

    ``argv[0]`` may name a subcommand: ``run`` (the default), ``report``, ``throughput`` or ``overhead``.
    """
    from loop import startup

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("throughput", "overhead"):
        import importlib

        startup.import_tensorflow()  # these modules import TensorFlow at the top
        module = importlib.import_module(f"loop.bench.{argv[0]}")
        return module.main(argv[1:]) or 0
    command = "run"
    if argv and argv[0] in ("report", "run"):
        command = argv.pop(0)
    parser = _parser(command)
    args = parser.parse_args(argv)  # --help exits here, before TensorFlow is imported
    startup.import_tensorflow()
    try:
        plan = _plan(parser, args, command)
    except SystemExit as exit_:  # parser.error has printed the usage and the message
        return exit_.code
    if command == "report":
        from loop.bench import tables, tuned_report, tuning

        if tuning.load_trials(plan.out):  # a tuned results directory
            tuned_report.report(plan.out, n_boot=args.bootstrap, plots=not args.no_plots)
        if tables.load_runs(plan.out):
            report(plan.out, targets=plan.targets, plots=not args.no_plots, n_boot=args.bootstrap,
                   full_table=args.full_table)
        return 0

    from loop.bench import auto_seeds, runner, tuned_report, tuning

    out = plan.out
    if plan.trials:
        print(f"loop.bench: tuning {len(plan.budgets)} workloads x {len(plan.specs)} selectors x {plan.seeds} studies "
              f"x {plan.trials} trials in {plan.precision} -> {out}", file=sys.stderr)
        budgets = tuning.with_targets(plan.budgets, plan.targets)
        summary = tuning.run_tuned(budgets, plan.specs, plan.seeds, out, plan.trials, data_dir=plan.data_dir,
                                   retry_failed=args.retry_failed, precision=plan.precision)
        print(f"loop.bench: ran {summary['ran']} trials ({summary['pruned']} pruned), skipped {summary['skipped']} "
              f"already stored, {summary['failed']} failed", file=sys.stderr)
        tuned_report.report(out, n_boot=args.bootstrap, plots=not args.no_plots)
        for dataset, message in summary["unloadable"]:
            print(f"python -m loop.bench: could not load {dataset}: {message}", file=sys.stderr)
        return 1 if summary["unloadable"] else 0
    print(f"loop.bench: {len(plan.budgets)} datasets x {len(plan.specs)} selectors x {plan.seeds} seeds in "
          f"{plan.precision} -> {out}", file=sys.stderr)
    start = time.perf_counter()
    if isinstance(plan.seeds, auto_seeds.AutoSeeds):
        summary = auto_seeds.run_auto(plan.budgets, plan.specs, plan.seeds, out, targets=plan.targets,
                                  n_boot=args.bootstrap, data_dir=plan.data_dir, retry_failed=args.retry_failed,
                                  precision=plan.precision)
        more = {k: n for k, n in summary["seeds"].items() if n > plan.seeds.min_seeds}
        print(f"loop.bench: auto seeds: {summary['rounds']} rounds after {plan.seeds.min_seeds} seeds; "
              + ("more seeds for " + ", ".join(f"{d} {s} ({n})" for (d, s), n in sorted(more.items()))
                 if more else "no pair needed more"), file=sys.stderr)
    else:
        summary = runner.run_suite(plan.budgets, plan.specs, plan.seeds, out, data_dir=plan.data_dir,
                                   retry_failed=args.retry_failed, precision=plan.precision)
    wall = time.perf_counter() - start
    print(f"loop.bench: ran {summary['ran']}, skipped {summary['skipped']} already stored, "
          f"{summary['failed']} failed, {summary['not_applicable']} not applicable, in {wall:.0f}s",
          file=sys.stderr)
    report(out, targets=plan.targets, plots=not args.no_plots, n_boot=args.bootstrap, full_table=args.full_table)
    if summary["unloadable"]:
        for dataset, message in summary["unloadable"]:
            print(f"python -m loop.bench: could not load {dataset}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
