"""Resident memory after each of N tuned-suite trials in one process: does a finished trial release its data?

    LOOP_DATA_DIR=/work/shared/data python benchmarks/trial_memory.py --dataset mnist --trials 4

Loads the dataset once, then trains N one-epoch Shuffle trials through ``loop.bench.training.train_one`` (the
function the campaign calls per trial) and prints the process's anonymous resident memory (``RssAnon`` from
``/proc/self/status``, Linux only) after each.  Flat numbers mean a long tuned run's memory is bounded; growth of
about one copy of the training data per trial is the leak ``loop.step.releasing_custom_gradients`` fixes.
Run it alone on the machine.
"""

import argparse
import dataclasses
import gc
import os

from loop.bench import records, training
from loop.bench.suites import TUNED
from loop.selectors import Shuffle


def resident_mb():
    """The process's anonymous resident memory in MB (``RssAnon``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no RssAnon line; this script needs Linux")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [entry.name for entry in TUNED.entries]
    parser.add_argument("--dataset", default="mnist", choices=names, help="a workload of the tuned suite")
    parser.add_argument("--trials", type=int, default=4, help="how many one-epoch trials to train (default 4)")
    parser.add_argument("--data-dir", default=os.environ.get("LOOP_DATA_DIR"), help="default: $LOOP_DATA_DIR")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error(f"--trials must be at least 1, got {args.trials}")
    entry = next(entry for entry in TUNED.entries if entry.name == args.dataset)
    workload, hyperparameters = dataclasses.replace(entry.workload, epochs=1), entry.hyperparameters
    ds, train, test = training.prepare_dataset(workload, args.data_dir)
    print(f"loaded {args.dataset}: {resident_mb():,.0f} MB", flush=True)
    for trial in range(args.trials):
        record = records.new(workload, hyperparameters, selector="Shuffle()", study=0, trial=trial)
        record = training.train_one(ds, train, test, workload, hyperparameters, record, Shuffle)
        gc.collect()
        print(f"trial {trial} ({record['status']}): {resident_mb():,.0f} MB", flush=True)


if __name__ == "__main__":
    main()
