"""Writes the four notebooks and, with --execute, runs them with nbclient so they are stored with outputs.

    python notebooks/build.py                 # write the .ipynb files (no outputs)
    LOOP_DATA_DIR=/path/to/data LOOP_BENCH_OUT=results/<suite> python notebooks/build.py --execute

Every notebook reads LOOP_NOTEBOOK_TINY=1 (tiny sizes, for the tests) and falls
back to generated spirals when the real data is absent.
"""

import argparse
import os
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))

PARAMS = '''\
# Parameters: LOOP_NOTEBOOK_TINY=1 runs everything at tiny sizes (the tests do).
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
TINY = os.environ.get("LOOP_NOTEBOOK_TINY") == "1"
DATA_DIR = os.environ.get("LOOP_DATA_DIR")  # real data; None falls back to generated spirals
'''

SETUP = '''\
import tempfile

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf

from loop import bench, datasets
from loop.bench import plots, tables
from loop.bench.suites import Budget

tf.get_logger().setLevel("ERROR")
%matplotlib inline
'''


def quickstart():
    return [
        new_markdown_cell("# Quickstart: a batch selector in ten lines, against seeded shuffling\n\n"
                          "A selector is any function `state -> list of index arrays`. The loop calls it at the "
                          "start of every epoch with the last-seen loss of every sample (`state.losses`), a seeded "
                          "generator (`state.rng`) and the batch size. This one shuffles, then puts the samples "
                          "with the highest last-seen loss first."),
        new_code_cell(PARAMS), new_code_cell(SETUP),
        new_code_cell('''\
def hardest_first(state):
    """Shuffle, then order by last-seen loss, highest first (unseen samples count as hardest)."""
    order = state.rng.permutation(state.num_samples)
    losses = np.nan_to_num(state.losses[order], nan=np.inf)
    order = order[np.argsort(-losses, kind="stable")]
    return [order[i:i + state.batch_size] for i in range(0, len(order), state.batch_size)]
'''),
        new_markdown_cell("`loop.bench.run_suite` trains the same seed-initialized model once per selector and "
                          "seed and stores every history; `tables.summarize` turns them into time-to-target "
                          "(default target: 99% of Shuffle's median best validation accuracy) and paired "
                          "speedups with a bootstrap interval."),
        new_code_cell('''\
budget = Budget(dataset="spirals", epochs=2 if TINY else 25, load_options={"n_samples": 300} if TINY else {})
seeds = 2 if TINY else 5
out = tempfile.mkdtemp(prefix="quickstart-")
bench.run_suite([budget], ["shuffle", hardest_first], seeds, out, progress=False)
records = tables.load_runs(out)
tables.display(tables.summarize(records))
'''),
        new_code_cell('''\
path = plots.plot_all(records, out)[0]
from IPython.display import Image
Image(path)
'''),
    ]


def seed000():
    return [
        new_markdown_cell("# The seed 000 experiment\n\nFour ways to order the same data, seed 0: `Freeze` (one fixed "
                          "order), `Shuffle` (a new seeded permutation each epoch), `Homogeneous` (each mini-batch "
                          "from one class) and `Heterogeneous` (each mini-batch balanced over classes). "
                          "Fashion-MNIST (a subset) from `LOOP_DATA_DIR`; generated spirals when it is absent."),
        new_code_cell(PARAMS), new_code_cell(SETUP),
        new_code_cell('''\
have_data = bool(DATA_DIR) and os.path.isdir(os.path.join(DATA_DIR, "fashion-mnist"))
if have_data and not TINY:
    budget = Budget(dataset="fashion_mnist", epochs=8, n_train=6_000, n_test=2_000)
elif have_data:
    budget = Budget(dataset="fashion_mnist", epochs=1, n_train=512, n_test=256)
else:
    budget = Budget(dataset="spirals", epochs=2 if TINY else 25, load_options={"n_samples": 300} if TINY else {})
print(budget)
out = tempfile.mkdtemp(prefix="seed000-")
bench.run_suite([budget], ["freeze", "shuffle", "homogeneous", "heterogeneous"], [0], out, data_dir=DATA_DIR,
                progress=False)
records = tables.load_runs(out)
'''),
        new_code_cell('''\
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for k, r in enumerate(records):
    f, color = r["frame"], plt.get_cmap("tab10")(k)
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.plot(f["epoch"], f[metric], color=color, ls="--", label=f"{r['selector']} train")
        ax.plot(f["epoch"], f["val_" + metric], color=color, label=f"{r['selector']} test")
        ax.set_xlabel("epoch"); ax.set_ylabel(metric); ax.grid(alpha=0.3)
axes[0].legend(fontsize=7)
fig.suptitle(f"{budget.dataset}, seed 0 (train: running mean over the epoch; test: after the epoch)");
'''),
        new_code_cell("tables.seed000(records)"),
    ]


def dybat_sweep():
    return [
        new_markdown_cell("# DyBAT: a sweep over δ\n\nDyBAT trains, after a first full round, only on the "
                          "`δ·b` fixed mini-batches with the highest recorded loss. The benchmark gives it the "
                          "baseline's number of gradient steps (`DyBAT.epochs_for_budget`), so an epoch of DyBAT "
                          "is one round. Spirals, 3 seeds (2 in tiny mode), against Shuffle."),
        new_code_cell(PARAMS), new_code_cell(SETUP),
        new_code_cell('''\
deltas = [0.25, 0.5, 1.0] if TINY else [0.1, 0.25, 0.5, 0.75, 1.0]
budget = Budget(dataset="spirals", epochs=2 if TINY else 25, load_options={"n_samples": 300} if TINY else {})
out = tempfile.mkdtemp(prefix="dybat-")
specs = ["shuffle"] + [f"dybat:delta={d}" for d in deltas]
bench.run_suite([budget], specs, 2 if TINY else 3, out, progress=False)
records = tables.load_runs(out)
table = tables.summarize(records)
tables.display(table)
'''),
        new_code_cell('''\
rows = table[table["selector"].str.startswith("DyBAT")].copy()
rows["delta"] = [next((float(s.split("=")[1].rstrip(")")) for _ in [0] if "=" in s), 0.5) for s in rows["selector"]]
rows = rows.sort_values("delta")
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(rows["delta"], rows["best_test"], "o-")
axes[0].axhline(table.loc[table["selector"] == "Shuffle()", "best_test"].iloc[0], color="k", ls="--", label="Shuffle")
axes[0].set_xlabel("δ"); axes[0].set_ylabel("median best test accuracy"); axes[0].legend()
finite = np.isfinite(rows[["speedup", "speedup_ci_low", "speedup_ci_high"]].to_numpy(float))
axes[1].errorbar(rows["delta"], rows["speedup"].clip(upper=10),
                 yerr=[(rows["speedup"] - rows["speedup_ci_low"]).clip(0, 10),
                       (rows["speedup_ci_high"] - rows["speedup"]).clip(0, 10)], fmt="o-", capsize=3)
axes[1].axhline(1, color="k", ls="--"); axes[1].set_xlabel("δ"); axes[1].set_ylabel("speedup vs Shuffle (95% CI)")
fig.tight_layout()
'''),
    ]


def time_to_accuracy():
    return [
        new_markdown_cell("# Time to accuracy across selectors, from the benchmark's files\n\n"
                          "Reads what `python -m loop.bench` wrote: `table.csv` and the per-run JSON under "
                          "`runs/`. Set `LOOP_BENCH_OUT` to a results directory (e.g. the full suite's); without "
                          "one this notebook runs a small suite first."),
        new_code_cell(PARAMS), new_code_cell(SETUP),
        new_code_cell('''\
OUT = os.environ.get("LOOP_BENCH_OUT")
if not OUT or not os.path.isdir(os.path.join(OUT, "runs")):
    OUT = tempfile.mkdtemp(prefix="bench-")
    budgets = ([Budget(dataset="spirals", epochs=2, load_options={"n_samples": 300})] if TINY else
               [Budget(dataset="spirals", epochs=25), Budget(dataset="iris", epochs=40)])
    bench.run_suite(budgets, ["shuffle", "heterogeneous", "dybat"], 2 if TINY else 3, OUT, progress=False)
    tables.summarize(tables.load_runs(OUT)).to_csv(os.path.join(OUT, "table.csv"), index=False)
table = pd.read_csv(os.path.join(OUT, "table.csv"))
print(f"{len(table)} rows from {os.path.basename(os.path.normpath(OUT))}/table.csv")
tables.display(table)
'''),
        new_code_cell('''\
datasets_ = list(dict.fromkeys(table["dataset"]))
selectors = [s for s in dict.fromkeys(table["selector"]) if s != "Shuffle()"]
fig, ax = plt.subplots(figsize=(10, 0.5 + 0.45 * len(datasets_) * max(1, len(selectors)) / 2))
y, ticks, labels = 0, [], []
for d in datasets_:
    for k, s in enumerate(selectors):
        row = table[(table["dataset"] == d) & (table["selector"] == s)]
        if row.empty:
            continue
        r = row.iloc[0]
        mid, lo, hi = (min(max(v, 1e-2), 1e2) for v in (r["speedup"], r["speedup_ci_low"], r["speedup_ci_high"]))
        ax.plot([lo, hi], [y, y], color=plt.get_cmap("tab10")(k % 10), lw=2)
        ax.plot(mid, y, "o", color=plt.get_cmap("tab10")(k % 10))
        ticks.append(y); labels.append(f"{d} · {s}"); y += 1
    y += 1
ax.axvline(1, color="k", ls="--")
ax.set_xscale("log"); ax.set_yticks(ticks); ax.set_yticklabels(labels, fontsize=7)
ax.set_xlabel("speedup vs Shuffle in time to target (median, 95% bootstrap CI; misses clipped to 0.01)")
fig.tight_layout()
'''),
        new_code_cell('''\
reached = table.pivot(index="selector", columns="dataset", values="reached")
reached.style.format("{:.0%}").background_gradient(cmap="RdYlGn", vmin=0, vmax=1)
'''),
    ]


NOTEBOOKS = {"01_quickstart.ipynb": quickstart, "02_seed000.ipynb": seed000, "03_dybat_sweep.ipynb": dybat_sweep,
             "04_time_to_accuracy.ipynb": time_to_accuracy}


def build(name):
    nb = new_notebook(cells=NOTEBOOKS[name]())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def execute(nb, timeout=1800):
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": HERE}}).execute()
    return strip_stderr(nb)


def strip_stderr(nb):
    """Drops stderr streams (TensorFlow's start-up logs) from the stored outputs."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    return nb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execute", action="store_true", help="run each notebook and store its outputs")
    parser.add_argument("names", nargs="*", help="which notebooks (default: all)")
    args = parser.parse_args(argv)
    for name in args.names or NOTEBOOKS:
        nb = build(name)
        if args.execute:
            print(f"executing {name} ...", file=sys.stderr, flush=True)
            execute(nb)
        nbformat.write(nb, os.path.join(HERE, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
