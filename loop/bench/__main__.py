"""``python -m loop.bench``: the time-to-accuracy benchmark's command line.

    python -m loop.bench                        # the default suite, offline, a few minutes
    python -m loop.bench --suite seeds --data-dir /path/to/data
    python -m loop.bench --seeds auto:5:15      # 5 seeds, more (up to 15) where the speedup is undecided
    python -m loop.bench --datasets boston --target val_mae=3.0
    python -m loop.bench --precision mixed_bfloat16   # a keras.mixed_precision policy
    python -m loop.bench --suite tuned --out results/tuned   # every method tuned alike (loop.bench.search)
    python -m loop.bench report --out results/x  # tables and plots of stored runs
    python -m loop.bench throughput | overhead   # performance benchmarks

Each subcommand has its own parser and ``--help``: ``run`` (the default, also
with no subcommand) and ``report`` are built here, one function per group of
options (:func:`_run_arguments`, :func:`_report_arguments`), so a new option
goes in one place; ``throughput`` and ``overhead`` own theirs
(:mod:`loop.bench.perf`).  Everything the command line can check is checked
before anything trains (:mod:`loop.bench.checks`), with exit status 2 and no
traceback.  ``--help`` does not import TensorFlow; every other path imports it
through :func:`loop.startup.import_tensorflow`, which keeps its start-up log
lines out of the terminal.  The run goes through the one campaign loop
(:func:`loop.bench.campaign.run_campaign`) and the one report
(:func:`loop.bench.reporting.report`): the terminal shows the compact table;
``table.md`` and ``table.csv`` hold every column.
"""

import argparse
import dataclasses
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
  Every result is a trial of a study. For each workload x selector x study s
  (a "seed"), the workload's reference model is built after
  keras.utils.set_random_seed(s), so every selector of a study starts from the
  same weights (studies are paired across selectors), and trained with
  Loop(selector=..., seed=s). A study is one trial at the suite's
  hyper-parameters, or, with --tune K (the tuned suites), K quasirandom trials
  scored by the fastest (loop.bench.search). On the one-clock workloads (the
  default and tuned suites) every method is evaluated on one grid of training
  seconds, its learning rate decays over training seconds, and it trains
  within one time budget, all measured once per workload as Shuffle epochs on
  this machine (loop.bench.calibration); the older suites evaluate once per
  loop epoch. A run ends at its first evaluation that meets the fixed target
  where the workload sets stop_at_target. Time counts training + selection;
  evaluation time is reported separately. Targets are read on validation
  splits in the tuned suites; the older suites infer them as 99% of the
  median best accuracy Shuffle reaches on the test set (101% of the median
  best for lower-is-better metrics such as val_mae), and --target overrides
  them. Speedup = median over studies of (Shuffle time /
  selector time) for the same study; a selector run that misses the target
  (or failed) scores 0, one that reaches it where Shuffle's run missed scores
  inf. Interval: the order-statistic interval of the median; verdict: a sign
  test, "win" when at least n-k+1 of n studies were faster (the interval
  lies above 1), "loss" when as many were slower, "no difference" when the
  interval contains 1, with a stated false-win rate of at most 5% when
  nothing differs (3.1% with 5 studies); "n/a (< 5 studies)" with fewer.
  Failed runs (NaN loss, selector error) are stored with their error and
  count as not reached; they are never dropped.
  --seeds auto:MIN:MAX runs MIN studies, then adds one at a time (up to MAX)
  to each workload-selector pair whose verdict is undecided, and to Shuffle
  where it lacks that study.
  Each trial is written atomically to
  <out>/runs/<workload>/<selector>/study_<s>/trial_<k>.json; re-running with
  the same --out skips the trials already there (older runs, seed_<s>.json,
  are read in place), and two processes on one --out share the work.
  --precision sets the keras.mixed_precision global policy before each model
  is built (mixed_float16 trains with a LossScaleOptimizer, as model.fit does)
  and is stored with each trial; one --out holds trials of one precision, and
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
    """The ``suites:`` section of the help: per suite its description, studies, selectors and entries, wrapped."""
    import textwrap

    from loop.bench.suites import SUITES

    def wrap(text, indent):
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent + "  ",
                             break_on_hyphens=False)

    lines = ["suites:"]
    for s in SUITES.values():
        count = "" if "studies" in s.description else f"; {s.studies} seeds"
        lines.append(wrap(f"{s.name}: {s.description}{count}", "  "))
        lines.append(wrap(f"selectors: {', '.join(s.selectors)}", "    "))
        for item in s.entries:
            w, hp = item.workload, item.hyperparameters
            lines.append(wrap(
                f"{item.name}: {'at most ' if w.stop_at_target else ''}{w.epochs} epochs"
                + (f" on {w.n_train} training rows" if w.n_train else "")
                + (f", {w.model}" if w.model else "")
                + (f", lr {hp.learning_rate:g}" if hp.learning_rate else "")
                + (", to " + ", ".join(f"{m} {v}" for m, v in w.target.items()) if w.target else "")
                + (f", selectors {', '.join(item.selectors)} ({item.note})" if item.selectors else ""), "    "))
    return "\n".join(lines)


def _run_arguments(parser):
    """The options of the main job (``run``): what to train, how many studies, where to store it."""
    from loop.bench.precision import add_precision_argument
    from loop.bench.suites import SUITES
    from loop.bench.workloads import SCHEDULE_SHAPES

    parser.add_argument("--suite", choices=sorted(SUITES), default="default",
                        help="the named suite whose workloads, hyper-parameters, selectors and seeds are the defaults")
    parser.add_argument("--datasets", help="comma-separated dataset or workload names (default: the suite's)")
    parser.add_argument("--selectors", help="comma-separated selector specs such as shuffle,dybat:delta=0.5, or "
                                            "your own as module:Class[:key=value,...] (default: the suite's; "
                                            "shuffle is always added as the baseline)")
    parser.add_argument("--seeds", type=_seeds_argument, metavar="N|auto:MIN:MAX",
                        help="number of studies (seeds 0..N-1; default: the suite's); or auto:MIN:MAX: MIN, then "
                             "one more at a time, up to MAX, for each workload-selector pair whose wall-clock "
                             "verdict is undecided")
    parser.add_argument("--epochs", type=int, help="epoch cap of every workload (default: per workload)")
    parser.add_argument("--n-train", type=int, help="training rows per workload (default: per workload)")
    parser.add_argument("--n-test", type=int, help="test rows evaluated per epoch (default: per workload)")
    parser.add_argument("--out", help="results directory (default: results/<timestamp>); reuse it to resume")
    parser.add_argument("--data-dir", help="directory of the original data files (default: $LOOP_DATA_DIR)")
    parser.add_argument("--retry-failed", action="store_true", help="re-run trials stored as failed")
    parser.add_argument("--jit-compile", action="store_true",
                        help="compile every trial's train step with XLA, the same for every method")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run each study as a Ray task: auto, HOST:PORT (a cluster's head) or local:N (a local "
                             "cluster of N workers); results come back to this process's --out (docs/scale.md)")
    add_precision_argument(parser)
    group = parser.add_argument_group("hyper-parameters and search")
    group.add_argument("--tune", type=int, metavar="K",
                       help="search every selector's hyper-parameters with K quasirandom trials per study; scores "
                            "each study by its fastest trial to the target (default: the suite's, 0 for none)")
    group.add_argument("--schedule", choices=SCHEDULE_SHAPES,
                       help="learning-rate schedule of every trial (default constant; loop.schedules)")
    group.add_argument("--warmup", type=float, metavar="FRACTION",
                       help="linear warm-up, a fraction of the horizon in [0, 1) (default 0)")
    group.add_argument("--horizon", type=float, metavar="FRACTION",
                       help="decay horizon, a fraction of each trial's own step budget in (0, 1] (default 1)")


def _report_arguments(parser):
    """The options that choose what the tables and figures show; ``run`` and ``report`` both take them."""
    parser.add_argument("--target", action="append", default=[],
                        help="metric=value or workload:metric=value, e.g. val_mae=3.0 (repeatable); "
                             "default: the suite's, else inferred from Shuffle")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples of the optional bootstrap "
                        "interval (the tables use order-statistic intervals)")
    parser.add_argument("--full-table", action="store_true",
                        help="print every column (as table.md holds them) instead of the compact table")
    parser.add_argument("--allow-mixed-hardware", action="store_true",
                        help="report a workload whose trials ran on different machines per machine (by default "
                             "the tables refuse to pair them)")


def _parser(command="run"):
    """The argument parser of ``command``: "run" (the main job, the default) or "report"."""
    formatter = argparse.RawDescriptionHelpFormatter
    if command == "report":
        parser = argparse.ArgumentParser(
            prog="python -m loop.bench report", formatter_class=formatter,
            description="Recomputes the tables and figures of an earlier run's results directory (the trials\n"
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


def _out(args, command):
    """The results directory named by ``args`` (checked, not yet created).

    Raises:
        ValueError: an empty, missing (report) or unusable ``--out``.
    """
    from loop.bench import checks

    flag = "report --out" if command == "report" else "--out"
    if args.out == "":
        raise ValueError("--out is empty; give a results directory (it is created if missing), or leave --out out "
                         "for results/<timestamp>")
    if command == "report":
        if args.out is None:
            raise ValueError("report needs --out DIR: the results directory of an earlier run")
        if not os.path.isdir(args.out):
            state = "does not exist" if not os.path.lexists(args.out) else "is not a directory"
            raise ValueError(f"report --out {args.out!r} {state}; give the results directory of an earlier run "
                             "(the --out it was run with)")
    out = args.out if args.out is not None else os.path.join("results", time.strftime("%Y%m%d-%H%M%S"))
    why = checks.directory_problem(out) or checks.out_layout_problem(out, plots=not args.no_plots)
    if why:
        raise ValueError(f"{flag} {out!r} {why}" + ("" if "give another" in why else
                                                  "; give a directory you can write in (it is created if missing)"))
    return out


def _plan(parser, args, command):
    """Checks every argument, with ``parser.error``, before anything is trained or written.

    Returns:
        A namespace: ``out`` and ``targets``; for ``run`` also ``specs``, ``entries``, ``seeds``, ``data_dir``,
        ``precision`` and ``trials``.
    """
    for flag in _COUNTS:
        value = getattr(args, flag[2:].replace("-", "_"), None)  # report has no --seeds, --epochs, ...
        if isinstance(value, int) and value < 1:
            parser.error(f"{flag} must be at least 1, got {value}; leave {flag} out for the default")
    from loop.bench.precision import parse_precision

    precision = parse_precision(parser, args) if command == "run" else None
    if getattr(args, "ray", None):
        from loop.bench.cluster import parse_address

        try:
            parse_address(args.ray)
        except ValueError as err:
            parser.error(str(err))
    import tensorflow as tf

    from loop.bench import auto_seeds, campaign, checks, labels, scoring, store
    from loop.bench.suites import SUITES

    tf.get_logger().setLevel("ERROR")  # per-trial retracing warnings of fresh models are expected
    try:
        out = _out(args, command)
        targets = scoring.parse_targets(args.target)
        if command == "report":
            checks.targets(targets)
            if not store.result_files(out):
                raise ValueError(f"report --out {out!r} holds no results (no runs/<workload>/<selector>/... files "
                                 "in it); give the --out of an earlier run")
            return argparse.Namespace(out=out, targets=targets)
        data_dir = checks.data_dir(args.data_dir)
        suite = SUITES[args.suite]
        specs = split_specs(args.selectors) if args.selectors else _available(suite.selectors)
        trials = suite.tune if args.tune is None else args.tune
        if trials < 0:
            raise ValueError(f"--tune must be at least 0 (0: no search), got {trials}")
        if trials and isinstance(args.seeds, auto_seeds.AutoSeeds):
            raise ValueError("--seeds auto:MIN:MAX does not combine with a search (--tune K, or the tuned suite): "
                             "give the number of studies, e.g. --seeds 3")
        if scoring.BASELINE not in [labels.selector_key(s)[0] for s in specs]:
            specs.insert(0, "shuffle")
        labels.check_unique([labels.selector_key(s)[0] for s in specs])
        entries = _entries(args, suite)
        if args.tune is not None:  # --tune K wins over the entries' own trial counts
            entries = [dataclasses.replace(item, trials=None) for item in entries]
        checks.targets(targets, entries)
        if trials:
            entries = _with_targets(entries, targets)
            campaign.check_targets(entries)
            campaign.check_search_spaces(specs)
        store.check_out_precision(out, precision)  # one --out holds one precision
        checks.writable_out(out)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    seeds = suite.studies if args.seeds is None else args.seeds
    return argparse.Namespace(out=out, targets=targets, specs=specs, entries=entries, seeds=seeds, data_dir=data_dir,
                              precision=precision, trials=trials or None)


def _available(specs, stream=None):
    """The suite's string specs whose selector exists in this build; the others are named on ``stream``, left out."""
    from loop.selectors import registered

    names = registered()
    kept = []
    for spec in specs:
        if spec.partition(":")[0].strip().lower() not in names:
            print(f"loop.bench: the suite's selector {spec!r} is not a registered selector in this build "
                  f"(choose from {', '.join(names)}); left out", file=stream or sys.stderr, flush=True)
            continue
        kept.append(spec)
    return kept


def _entries(args, suite):
    """The suite's entries, or those ``--datasets`` names, with the command line's overrides applied."""

    from loop import datasets
    from loop.bench.suites import SUITES, entry

    known = {item.name: item for s in SUITES.values() for item in s.entries}
    known.update({item.name: item for item in suite.entries})
    if args.datasets is None:
        chosen = list(suite.entries)
    else:
        chosen = []
        for name in (n.strip() for n in args.datasets.split(",") if n.strip()):
            key = name.lower().replace("-", "_")
            if key not in datasets.names() and key not in known:
                raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(datasets.names())} or a "
                                 f"workload of the suites ({', '.join(k for k in known if k not in datasets.names())})")
            chosen.append(known.get(key) or entry(key, 10))
        if not chosen:
            raise ValueError(f"--datasets {args.datasets!r} names no dataset; give comma-separated names such as "
                             "iris,wine, or leave --datasets out for the suite's")
    workload = {k: v for k, v in (("epochs", args.epochs), ("n_train", args.n_train), ("n_test", args.n_test))
                if v is not None}
    hp = {name: getattr(args, name) for name in ("schedule", "warmup", "horizon") if getattr(args, name) is not None}
    return [dataclasses.replace(item, workload=_resized(item.workload, workload),
                                hyperparameters=dataclasses.replace(item.hyperparameters, **hp),
                                selectors=None if args.selectors else item.selectors) for item in chosen]


def _resized(workload, fields):
    """``workload`` with ``--epochs``/``--n-train``/``--n-test``; on the seconds clock a new epoch cap scales the
    evaluation period with it, so the budget keeps its number of evaluations."""
    if "epochs" in fields and workload.eval_period is not None:
        fields = {**fields, "eval_period": workload.eval_period * fields["epochs"] / workload.epochs}
    return dataclasses.replace(workload, **fields)


def _with_targets(entries, targets):
    """The entries with ``--target`` values as their workloads' fixed targets (a workload's own entry wins).

    A search reads the target while it runs (each study's best, pruning), so it must be known before the first
    trial; an untuned run reads ``--target`` only in its tables.
    """
    found = []
    for item in entries:
        chosen = dict(targets.get(item.name, {})) or dict(targets.get(None, {}))
        found.append(dataclasses.replace(item, workload=dataclasses.replace(
            item.workload, target=chosen, stop_at_target=True)) if chosen else item)
    return found


def _run(args, plan):
    """Trains what ``plan`` asks for; returns the campaign's summary."""
    from loop.bench import auto_seeds, campaign

    counts = sorted({item.trials or plan.trials for item in plan.entries}) if plan.trials else []
    trials = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}" if counts else ""
    what = (f"{len(plan.entries)} workloads x {len(plan.specs)} selectors x {plan.seeds} studies"
            + (f" x {trials} trials" if trials else ""))
    print(f"loop.bench: {what} in {plan.precision} -> {plan.out}", file=sys.stderr)
    options = {"data_dir": plan.data_dir, "retry_failed": args.retry_failed, "precision": plan.precision,
               "jit_compile": args.jit_compile}
    runner = campaign.run_campaign
    if args.ray:
        import functools

        from loop.bench import cluster

        runner = functools.partial(cluster.run_campaign_on_ray, args.ray)
    if isinstance(plan.seeds, auto_seeds.AutoSeeds):
        summary = auto_seeds.run_auto(plan.entries, plan.specs, plan.seeds, plan.out, targets=plan.targets,
                                      n_boot=args.bootstrap, runner=runner, **options)
        more = {k: n for k, n in summary["seeds"].items() if n > plan.seeds.min_seeds}
        print(f"loop.bench: auto seeds: {summary['rounds']} rounds after {plan.seeds.min_seeds} studies; "
              + ("more studies for " + ", ".join(f"{d} {s} ({n})" for (d, s), n in sorted(more.items()))
                 if more else "no pair needed more"), file=sys.stderr)
        return summary
    return runner(plan.entries, plan.specs, plan.seeds, plan.out, trials=plan.trials, **options)


def _report(plan, args):
    """The report of ``plan.out``; 2 (with the reason on stderr) for stored trials that do not pair."""
    from loop.bench.reporting import report
    from loop.bench.scoring.grouping import MixedHardwareError

    try:
        report(plan.out, targets=plan.targets, plots=not args.no_plots, n_boot=args.bootstrap,
               full_table=args.full_table, allow_mixed_hardware=args.allow_mixed_hardware)
    except MixedHardwareError as err:
        print(f"python -m loop.bench: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv=None):
    """Runs the command line; returns the exit code (2, after the usage and what is wrong, for a bad argument).

    ``argv[0]`` may name a subcommand: ``run`` (the default), ``report``, ``throughput`` or ``overhead``.
    """
    from loop import startup

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("throughput", "overhead"):
        import importlib

        startup.import_tensorflow()  # these modules import TensorFlow at the top
        module = importlib.import_module(f"loop.bench.perf.{argv[0]}")
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
        return _report(plan, args)
    start = time.perf_counter()
    summary = _run(args, plan)
    print(f"loop.bench: trained {summary['ran']} trials ({summary['pruned']} pruned, {summary['failed']} failed, "
          f"{summary['not_applicable']} not applicable), skipped {summary['skipped']} already stored"
          + (f", left {summary['claimed']} to another process" if summary["claimed"] else "")
          + f", in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    code = _report(plan, args)
    if code:
        return code
    for name, message in summary["unloadable"]:
        print(f"python -m loop.bench: could not load {name}: {message}", file=sys.stderr)
    return 1 if summary["unloadable"] else 0


if __name__ == "__main__":
    sys.exit(main())
