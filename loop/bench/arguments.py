"""The command line's parser: the options of ``run`` and ``report``, the help text and its protocol paragraph.

Who owns what: this module owns what ``python -m loop.bench --help`` prints and which options exist, one function
per group of options (:func:`_run_arguments`, :func:`_report_arguments`), so a new option goes in one place;
:mod:`loop.bench.__main__` owns what the options do.  Nothing here imports TensorFlow, so ``--help`` is quick.
"""

import argparse
import re

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
