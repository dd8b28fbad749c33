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
with no subcommand) and ``report`` are built in :mod:`loop.bench.arguments`, one
function per group of options, so a new option goes in one place; ``throughput`` and ``overhead`` own theirs
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
import sys
import time

from loop.bench.arguments import _COUNTS, _parser, split_specs  # noqa: F401  (split_specs: importable from here)


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
