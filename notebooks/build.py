"""Writes the notebooks and, with --execute, runs them with nbclient so they are stored with outputs.

    python notebooks/build.py                 # write the .ipynb files (no outputs)
    LOOP_DATA_DIR=/path/to/data LOOP_BENCH_OUT=results/<suite> python notebooks/build.py --execute
    PYTHONPATH=$PWD LOOP_TUNED_OUT=$PWD/results/tuned python notebooks/build.py --execute 06_tuned_verdict.ipynb

Every notebook reads LOOP_NOTEBOOK_TINY=1 (tiny sizes, for the tests) and falls
back to generated spirals when the real data is absent.  Notebooks 02 and 04
read the full suite's committed runs (results/full, or LOOP_BENCH_OUT) and 06
the tuned suite's trials (results/tuned, or LOOP_TUNED_OUT); 06 runs a small
tuned suite first where there are none.  The kernel runs in notebooks/ and
imports the installed ``loop``: set PYTHONPATH to a checkout to use its code and
its results/.
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
from loop.bench import scoring, store
from loop.bench.reporting import formatting, plots
from loop.bench.workloads import Workload

tf.get_logger().setLevel("ERROR")
%matplotlib inline
'''

RESULTS = '''\
import loop

# The committed full-suite runs next to the package (a clone of the repository), or LOOP_BENCH_OUT.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(loop.__file__)))
OUT = os.environ.get("LOOP_BENCH_OUT") or os.path.join(REPO, "results", "full")
'''


# The analysis across thresholds and workloads, shared by notebooks 04 and 06: both define `records` (one record per
# study: untuned runs, or the tuned studies' winning trials), N_BOOT and UNIT ("seeds" or "studies") before these
# cells.
THRESHOLDS_MD = (
    "## Speedup across thresholds\n\n"
    "The table above answers one question per dataset: who reaches *the* target sooner. This section asks it at "
    "several thresholds of the same metric, from an easy level (the median of Shuffle's first evaluation) up to "
    "the target (`loop.bench.scoring.thresholds.speedup_by_threshold`): each panel is one dataset, the x axis the "
    "threshold (the target on the right), the y axis the paired speedup against Shuffle on a log scale with its "
    "order-statistic interval of its median as a vertical bar (none with fewer than 5 seeds). Shuffle is the solid line at 1. A bar wholly above 1 is a win at "
    "that level, wholly below a loss, across 1 no difference; a triangle at the bottom edge means the selector's "
    "median run never met the level, one at the top edge that Shuffle's did not. A selector whose points fall "
    "from left to right gains early and loses its edge as the threshold tightens.")
THRESHOLDS_CODE = '''\
from loop.bench.reporting import analysis
from loop.bench.scoring import profiles

analysed = tempfile.mkdtemp(prefix="analysis-")
found = analysis.write_analysis(records, analysed, n_boot=N_BOOT, plots=False, unit=UNIT)  # the tables report writes
by_threshold = found["thresholds"]
fig = plots.plot_speedup_by_threshold(by_threshold, unit=UNIT)
'''
TRENDS_MD = (
    "### The trend per selector\n\n"
    "One line per dataset and selector (`loop.bench.scoring.thresholds.trends`): the speedup at the easiest level "
    "and at the target, their ratio (above 1: the advantage grows as the threshold rises; below 1: it shrinks), the "
    "Spearman correlation of speedup with level, and the verdicts from the easiest level to the target. The "
    "second table is the same for backpropagated samples instead of seconds. The table behind the plot, every "
    "level, is `formatting.threshold_display(by_threshold)`; `python -m loop.bench report` writes it to "
    "`analysis/thresholds.csv` and `analysis/analysis.md`.")
TRENDS_CODE = '''\
pd.set_option("display.max_rows", 500)
pd.set_option("display.max_colwidth", 200)
columns = ["dataset", "selector", "levels", "first", "last", "ratio", "spearman", "trend", "verdicts"]
display(found["trends"][[c for c in columns if c in found["trends"]]].round(3))
display(found["backprop_trends"][[c for c in columns if c in found["backprop_trends"]]].round(3))
'''
PROFILES_MD = (
    "## Performance profiles across workloads\n\n"
    "A profile (Dolan & Moré 2002; AlgoPerf scores submissions this way, `loop.bench.scoring.profiles`) puts all "
    "workloads on one plot. Per workload, each selector's cost (median time to target, or median samples "
    "backpropagated to it) is divided by the best selector's cost on that workload; rho(tau) is the fraction of "
    "workloads on which a selector is within a factor tau of the best. Read a curve from the left: its height "
    "at tau = 1 is the share of workloads it was fastest on, how soon it reaches the top shows how far behind the "
    "best it ever falls, and a curve that never reaches 1 missed some workloads (a miss counts as infinitely "
    "slow, so it is never within any tau). The score in the legend and the table is the area under the curve "
    "from 1 to tau_max, divided by tau_max - 1: 1 means fastest everywhere, 0 never within tau_max.")
PROFILES_CODE = '''\
ratios = {measure: profiles.performance_ratios(found[f"costs_{measure}"])
          for measure in profiles.MEASURES if found[f"costs_{measure}"] is not None}
fig = plots.plot_profiles(ratios)
'''
PROFILE_TABLE_CODE = '''\
# the profile table: rho(tau) at a few tau, the area score, the workloads each selector was fastest on or missed,
# for time to target and for samples backpropagated to it; then the costs t[m, w] both came from
profile = pd.concat([found[f"profile_{m}"] for m in profiles.MEASURES if found[f"profile_{m}"] is not None])
display(profile.round(3).reset_index(drop=True))
for measure, unit in (("time", "median seconds to target"), ("backprop", "median samples backpropagated")):
    if found[f"costs_{measure}"] is not None:
        print(f"{measure}: {unit} (inf: missed)")
        display(found[f"costs_{measure}"].round(2 if measure == "time" else 0))
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
        new_markdown_cell("`loop.bench.run_campaign` trains the same seed-initialized model once per selector and "
                          "seed and stores every history; `scoring.summarize` turns them into time-to-target "
                          "(default target: 99% of Shuffle's median best validation accuracy) and paired "
                          "speedups with the order-statistic interval of their median."),
        new_code_cell('''\
workload = Workload(dataset="spirals", epochs=2 if TINY else 25, load_options={"n_samples": 300} if TINY else {})
seeds = 2 if TINY else 5
out = tempfile.mkdtemp(prefix="quickstart-")
bench.run_campaign([workload], ["shuffle", hardest_first], seeds, out, progress=False)
records = store.load(out)
formatting.display(scoring.summarize(records))
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
                          "from one class) and `Heterogeneous` (each mini-batch balanced over classes). The curves "
                          "are the `full` suite's stored runs (`results/full`, complete datasets, learning rates "
                          "from a range test); they run until the dataset's fixed target or the epoch cap, so a "
                          "curve that ends early met its target. Nothing is retrained; without the stored runs the "
                          "notebook trains the four orders on generated spirals."),
        new_code_cell(PARAMS), new_code_cell(SETUP), new_code_cell(RESULTS),
        new_code_cell('''\
FOUR = ["Freeze()", "Shuffle()", "Homogeneous()", "Heterogeneous()"]
if not os.path.isdir(os.path.join(OUT, "runs")):
    workload = Workload(dataset="spirals", epochs=2 if TINY else 25, load_options={"n_samples": 300} if TINY else {})
    OUT = tempfile.mkdtemp(prefix="seed000-")
    bench.run_campaign([workload], ["freeze", "shuffle", "homogeneous", "heterogeneous"], [0], OUT,
                       data_dir=DATA_DIR, progress=False)
records = [r for r in store.load(OUT) if r["selector"] in FOUR and r["status"] == "ok" and r["study"] == 0]
# the datasets where all four orders ran (the full suite runs only Shuffle of them on the image datasets)
ran = {d: {r["selector"] for r in records if r["workload"] == d} for d in dict.fromkeys(r["workload"] for r in records)}
shown = [d for d, selectors in ran.items() if len(selectors) == len(FOUR) or len(ran) == 1][:2 if TINY else None]
records = [r for r in records if r["workload"] in shown]
print(f"{len(records)} seed-0 runs of the four orders from {os.path.relpath(OUT, REPO)}; datasets: {', '.join(shown)}")
'''),
        new_code_cell('''\
fig, axes = plt.subplots(len(shown), 2, figsize=(12, 3.2 * len(shown)), squeeze=False)
for row, dataset in zip(axes, shown):
    runs = sorted((r for r in records if r["workload"] == dataset), key=lambda r: FOUR.index(r["selector"]))
    metric = runs[0]["metrics"][0] if runs[0]["metrics"] else "loss"
    for k, r in enumerate(runs):
        f, color = r["frame"], plt.get_cmap("tab10")(k)
        for ax, column in zip(row, (metric, "loss")):
            ax.plot(f["epoch"], f[column], color=color, ls="--", label=f"{r['selector']} train")
            ax.plot(f["epoch"], f["val_" + column], color=color, label=f"{r['selector']} test")
            ax.set_xlabel("epoch"); ax.set_ylabel(f"{dataset}: {column}"); ax.grid(alpha=0.3)
    row[0].legend(fontsize=6)
fig.suptitle("seed 0 (train: running mean over the epoch; test: after the epoch)")
fig.tight_layout()
'''),
        new_code_cell("scoring.seed000(records)"),
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
workload = Workload(dataset="spirals", epochs=2 if TINY else 25, load_options={"n_samples": 300} if TINY else {})
out = tempfile.mkdtemp(prefix="dybat-")
specs = ["shuffle"] + [f"dybat:delta={d}" for d in deltas]
bench.run_campaign([workload], specs, 2 if TINY else 3, out, progress=False)
records = store.load(out)
table = scoring.summarize(records)
formatting.display(table)
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
        new_markdown_cell("# Time to accuracy across selectors: the `full` suite\n\n"
                          "Reads the runs that `python -m loop.bench --suite full --out results/full` stored in the "
                          "repository (`results/full/runs/*/*.json`, one file per dataset, selector and seed) and "
                          "the table that `python -m loop.bench report --out results/full` wrote from them. Nothing "
                          "is retrained here. Every run trains the complete training set and stops at the "
                          "dataset's fixed target, so each curve ends where its seeds reached it. Set "
                          "`LOOP_BENCH_OUT` to read another results directory; where none is found (e.g. an "
                          "installed package without the repository) it runs a small suite first."),
        new_code_cell(PARAMS), new_code_cell(SETUP), new_code_cell(RESULTS),
        new_code_cell('''\
if not os.path.isdir(os.path.join(OUT, "runs")):
    OUT = tempfile.mkdtemp(prefix="bench-")
    workloads = ([Workload(dataset="spirals", epochs=2, load_options={"n_samples": 300})] if TINY else
                 [Workload(dataset="spirals", epochs=25), Workload(dataset="iris", epochs=40)])
    bench.run_campaign(workloads, ["shuffle", "heterogeneous", "dybat"], 2 if TINY else 3, OUT, progress=False)
records = store.load(OUT)  # one trial per study (seed): the runs the tables score
N_BOOT = 1000 if TINY else 10_000  # bootstrap resamples per interval in the analysis below (report's default)
UNIT = "seeds"
if not os.path.exists(os.path.join(OUT, "table.csv")):
    scoring.summarize(records).to_csv(os.path.join(OUT, "table.csv"), index=False)
table = pd.read_csv(os.path.join(OUT, "table.csv"))
seeds = pd.DataFrame([(r["workload"], r["study"]) for r in records], columns=["dataset", "seed"])
print(f"{len(records)} stored runs and {len(table)} table rows from {os.path.relpath(OUT, REPO)}")
seeds.groupby("dataset")["seed"].nunique().rename("seeds").to_frame().T
'''),
        new_markdown_cell("## Accuracy against wall-clock time\n\nOne panel per dataset: the target metric on the "
                          "test set against training-plus-selection seconds (evaluation excluded). The line is the "
                          "median over seeds at each evaluation, the band the seeds' minimum to maximum, Shuffle is "
                          "black and the dashed line is the target."),
        new_code_cell("plots.plot_wallclock(records);"),
        new_markdown_cell("## The table\n\nPer dataset and selector: seeds that reached the target, median time, "
                          "epochs and backpropagated samples to it, and the paired speedup over Shuffle with the "
                          "order-statistic interval of its median and its sign-test verdict (win, loss or no difference)."),
        new_code_cell('''\
columns = ["dataset", "selector", "seeds", "failed", "reached", "target", "time_to_target_s", "epochs_to_target",
           "speedup", "speedup_ci_low", "speedup_ci_high", "verdict", "backprop_to_target", "backprop_speedup",
           "backprop_speedup_ci_low", "backprop_speedup_ci_high", "backprop_verdict", "best_test"]
pd.set_option("display.max_rows", 500)
table[[c for c in columns if c in table.columns]].round(3)
'''),
        new_code_cell('''\
datasets_ = list(dict.fromkeys(table["dataset"]))
selectors = [s for s in dict.fromkeys(table["selector"]) if s != "Shuffle()"]
fig, ax = plt.subplots(figsize=(10, 0.5 + 0.16 * len(table)))
y, ticks, labels = 0, [], []
for d in datasets_:
    for k, s in enumerate(selectors):
        row = table[(table["dataset"] == d) & (table["selector"] == s)]
        if row.empty:
            continue
        r = row.iloc[0]
        mid, lo, hi = (min(max(v, 1e-2), 1e2) for v in (r["speedup"], r["speedup_ci_low"], r["speedup_ci_high"]))
        ax.plot([lo, hi], [y, y], color=plt.get_cmap("tab20")(k % 20), lw=2)
        ax.plot(mid, y, "o", color=plt.get_cmap("tab20")(k % 20))
        ticks.append(y); labels.append(f"{d} · {s}"); y += 1
    y += 1
ax.axvline(1, color="k", ls="--")
ax.set_xscale("log"); ax.set_yticks(ticks); ax.set_yticklabels(labels, fontsize=6); ax.invert_yaxis()
ax.set_xlabel("paired speedup vs Shuffle in time to target (median and order-statistic interval; misses clipped to 0.01)")
fig.tight_layout()
'''),
        new_code_cell('''\
reached = table.pivot(index="selector", columns="dataset", values="reached")
reached.style.format("{:.0%}", na_rep="").background_gradient(cmap="RdYlGn", vmin=0, vmax=1)
'''),
        new_markdown_cell(THRESHOLDS_MD + "\n\nThe full suite is the older constant-rate protocol: its runs "
                          "validated on the **test** set, so every threshold, the target included, was read on "
                          "the test set. The tuned suite (notebook 06) is the one whose targets read a "
                          "validation split held out of the training set."),
        new_code_cell(THRESHOLDS_CODE),
        new_markdown_cell(TRENDS_MD),
        new_code_cell(TRENDS_CODE),
        new_markdown_cell(PROFILES_MD + " Here the workloads are the full suite's datasets, each with its fixed "
                          "target (read on the test set), and a selector's cost is the median over its seeds; "
                          "a selector the suite did not run on a dataset (it ran only Shuffle and a few methods on "
                          "the image datasets) misses that dataset, so the profiles favour the selectors run "
                          "everywhere."),
        new_code_cell(PROFILES_CODE),
        new_code_cell(PROFILE_TABLE_CODE),
    ]


def your_selector():
    return [
        new_markdown_cell("# Benchmark your own selector\n\n"
                          "Write a selector against the protocol (`loop/protocol.py`), then ask the benchmark the "
                          "one question it answers: does it reach the target accuracy sooner than seeded random "
                          "shuffling, in wall-clock time, and how sure are we? Here a loss-weighted sampler runs "
                          "against `Shuffle` and two published methods (InfoBatch, selective backprop) on iris, "
                          "3 seeds, with the default suite's budget (2 seeds and 3 epochs in tiny mode)."),
        new_code_cell(PARAMS), new_code_cell(SETUP),
        new_markdown_cell("## 1. The selector\n\n"
                          "A selector is any callable `state -> plan`: at the start of every epoch it gets the "
                          "last-seen loss of every sample (`state.losses`, NaN where never seen), a seeded "
                          "generator (`state.rng`) and the batch size, and returns the epoch's mini-batches. "
                          "Subclassing `Selector` (hyper-parameters stored in `__init__` under their own names) "
                          "gives it a readable name in the tables, a fresh clone for every run and checkpointable "
                          "state. `register` gives it a name, so that `\"loss_weighted:power=2.0\"` builds it like "
                          "`\"dybat:delta=0.5\"` builds DyBAT."),
        new_code_cell('''\
from loop.selectors import Selector, from_string, register


@register("loss_weighted")
class LossWeighted(Selector):
    """Each epoch a random order drawn with probability proportional to last-seen loss ** power."""

    def __init__(self, power=1.0):
        self.power = power

    def __call__(self, state):
        weights = np.nan_to_num(state.losses, nan=1.0) ** self.power + 1e-6  # never seen: weight 1
        order = state.rng.choice(state.num_samples, state.num_samples, replace=False, p=weights / weights.sum())
        return [order[i:i + state.batch_size] for i in range(0, len(order), state.batch_size)]


from_string("loss_weighted:power=2.0")
'''),
        new_markdown_cell("## 2. Run it against Shuffle and published methods\n\n"
                          "`bench.run_campaign` builds the dataset's reference model after "
                          "`keras.utils.set_random_seed(seed)`, so every selector of a seed starts from the same "
                          "weights, trains each selector for the budget and stores every history under `out` "
                          "(re-running with the same `out` skips what is stored). Selective backprop gets the "
                          "epochs that match Shuffle's gradient steps (`epochs_for_budget`)."),
        new_code_cell('''\
workload = Workload(dataset="iris", epochs=3 if TINY else 40)  # the default suite's iris workload
seeds = 2 if TINY else 3
out = tempfile.mkdtemp(prefix="your-selector-")
specs = ["shuffle", "loss_weighted:power=2.0", "infobatch", "selective_backprop"]
summary = bench.run_campaign([workload], specs, seeds, out, progress=False)
records = store.load(out)
table = scoring.summarize(records)
print(summary)
formatting.display(table)
'''),
        new_markdown_cell("## 3. Read the verdict\n\n"
                          "The target is 99% of Shuffle's median best validation accuracy within the budget. `speedup` is "
                          "the median over seeds of Shuffle's time to target over the selector's, for the same seed, "
                          "with the order-statistic interval of the median; a seed that misses the target scores 0. The verdict is "
                          "*win* when the interval lies above 1, *loss* below 1, *no difference* when it contains 1: "
                          "with a few seeds the intervals are wide, and `python -m loop.bench --seeds auto:5:15` adds "
                          "seeds where the answer is still open."),
        new_code_cell('''\
for _, row in table[table["selector"] != scoring.BASELINE].iterrows():
    print(f"{row['selector']:<24} reached {row['reached']:.0%} of seeds, speedup {row['speedup']:.2f} "
          f"[{row['speedup_ci_low']:.2f}, {row['speedup_ci_high']:.2f}]: {row['verdict']}")
'''),
        new_code_cell("plots.plot_wallclock(records);"),
        new_markdown_cell("## 4. The same from the command line\n\n"
                          "Put the class in a module, say `my_selector.py` in the current directory (or any module "
                          "on `PYTHONPATH`, or an installed package), and name it by import path, "
                          "`module:Class[:key=value,...]`:\n\n"
                          "```\npython -m loop.bench --datasets iris --seeds 3 \\\n"
                          "    --selectors my_selector:LossWeighted:power=2.0,infobatch,selective_backprop\n```\n\n"
                          "A package can also add the name `loss_weighted` for good through the `loop.selectors` "
                          "entry-point group; docs/methods.md, \"Benchmark your own method\", has the grammar."),
    ]


def tuned_verdict():
    return [
        new_markdown_cell("# The tuned verdict: every method tuned alike, scored on a validation split\n\n"
                          "Reads the trials that `python -m loop.bench --suite tuned --out results/tuned` stored "
                          "(`results/tuned/runs/<workload>/<selector>/study_<s>/trial_<k>.json`; "
                          "`LOOP_TUNED_OUT` reads another directory). The protocol is AlgoPerf's "
                          "(`loop.bench.search`): on each workload every selector gets the same number of "
                          "quasirandom trials per study over the same shared search space (learning rate, schedule, "
                          "warm-up, horizon) plus its own hyper-parameters; a study's score is its fastest trial "
                          "to the workload's fixed target; the studies play the part that seeds play in the full "
                          "suite. The targets are read on a **validation split** held out of the training set, so "
                          "the test set only reports the accuracy the winners reached. Nothing is retrained when "
                          "the trials are stored; where there are none (or in tiny mode) the notebook first runs "
                          "a small tuned suite (generated spirals and scikit-learn's wine), so what follows shows "
                          "the form of the verdict, not its result.\n\n"
                          "The `tuned` suite runs on **one clock** (docs/bench.md, \"The one-clock protocol\"): "
                          "every method is evaluated on one grid of training seconds per workload, its learning "
                          "rate decays over training seconds, and it trains within one time budget, so no method "
                          "is looked at more often or decayed faster because its epochs are shorter. Every "
                          "workload has an A/A control, `ShuffleAA()` (Shuffle drawing from another random "
                          "stream), whose row should read *no difference*; RhoLoss's irreducible losses are "
                          "computed once per study off the clock, and its `+ IL` row pays them."),
        new_code_cell(PARAMS), new_code_cell(SETUP),
        new_code_cell('''\
import loop
from loop.bench.records import NOT_APPLICABLE
from loop.selectors import registered

# The committed tuned trials next to the package (a clone of the repository), or LOOP_TUNED_OUT.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(loop.__file__)))
OUT = os.environ.get("LOOP_TUNED_OUT") or os.path.join(REPO, "results", "tuned")
N_BOOT = 1000 if TINY else 10_000  # bootstrap resamples per interval (report's default)
UNIT = "studies"
trials = store.load(OUT) if os.path.isdir(OUT) and not TINY else []
if not trials:
    print(f"no tuning trials in {os.path.relpath(OUT, REPO)}" + (" read (tiny mode)" if TINY else "")
          + ": running a small tuned suite first (a demonstration of the form, not a result)")
    OUT = tempfile.mkdtemp(prefix="tuned-")
    if TINY:
        workloads = [Workload(dataset="spirals", epochs=3, load_options={"n_samples": 300}, validation="split",
                              target={"val_accuracy": 0.6}, stop_at_target=True)]
    else:  # two small offline workloads, about a minute on 2 CPU cores
        workloads = [Workload(dataset="spirals", epochs=15, load_options={"n_samples": 1000}, validation="split",
                              target={"val_accuracy": 0.85}, stop_at_target=True),
                     Workload(dataset="wine", epochs=30, validation="split", target={"val_accuracy": 0.95},
                              stop_at_target=True)]
    selectors = [s for s in ("shuffle", "rs2", "infobatch") if s in registered()]
    bench.run_campaign(workloads, selectors, 2 if TINY else 3, OUT, trials=2 if TINY else 3, data_dir=DATA_DIR,
                       progress=False)
    trials = store.load(OUT)
from loop.bench.scoring.studies import with_setup

# One per study; RhoLoss twice: amortized, and paying its irreducible losses once per study ("+ IL").
bests = [r for r in scoring.study_winners(with_setup(trials)) if r["status"] != NOT_APPLICABLE]
table = scoring.summarize(bests, n_boot=N_BOOT)
workloads = sorted({r["workload"] for r in bests})
print(formatting.protocol_line(trials))
print(f"{len(trials)} trials, {len(bests)} studies' best trials, workloads: {', '.join(workloads)}")
print("\\n".join(formatting.interval_note(table)))
print("\\n".join(formatting.aa_lines(table)))
'''),
        new_markdown_cell("## Per workload: the studies' best times against tuned Shuffle\n\n"
                          "`scoring.summarize` on the studies' winning trials (`scoring.study_winners`): per selector, "
                          "the studies whose best trial reached the target (k/n), the median time to it, and the "
                          "speedup over *tuned* Shuffle paired by study, with the order-statistic interval of its "
                          "median and the sign-test verdict (its false-win rate when nothing differs is stated "
                          "above: 3.1% with 5 studies; fewer than 5 studies give no verdict). `test at target` is the test accuracy at the evaluation that first met the "
                          "validation target, `test at end` at the trial's last evaluation: a selector that wins "
                          "on the validation split but loses there has fitted the split, not the task."),
        new_code_cell('''\
shown = formatting.display(table)
columns = list(formatting.COMPACT_COLUMNS) + [c for c in ("test at target", "test at end") if c in shown]
for workload in workloads:
    rows = shown[table["dataset"] == workload]
    print(f"{workload}: target {rows['target'].iloc[0]}, {int(table.loc[rows.index, 'seeds'].max())} studies")
    display(rows[columns].reset_index(drop=True))
'''),
        new_markdown_cell("## What the tuning cost, and what pruning saved\n\n"
                          "`scoring.costs`: per workload and selector, the trials run, finished (`ok`), pruned and "
                          "failed; `tuning_s` is the wall time of every trial (training, evaluation, set-up), "
                          "`pruned_s` the training seconds the pruned trials ran before they were stopped, "
                          "`pruned_full_s` what they would have run to their epoch cap, and `saved_s` the difference "
                          "(an upper bound: a trial that would have met the target later stops there). A trial is "
                          "pruned only once its training clock passes its study's best time to target so far, "
                          "when it can no longer win, so pruning never changes a study's score."),
        new_code_cell("scoring.costs(trials).round(2)"),
        new_markdown_cell("## The winning hyper-parameters\n\n"
                          "`scoring.winners`: per study, the trial that reached the target first (`inf`: no trial "
                          "did, the study is a miss) and its hyper-parameters. Winners that agree across studies "
                          "suggest the search space holds a clear optimum; scattered ones that the trials were too "
                          "few or the workload is flat in that dimension."),
        new_code_cell("scoring.winners(trials).round(4)"),
        new_markdown_cell(THRESHOLDS_MD.replace("per dataset", "per workload").replace("each panel is one dataset",
                                                                                      "each panel is one workload")
                          + " Here the runs are the studies' winning trials, so the thresholds too are read on "
                          "the validation split, and the speedups are over tuned Shuffle."),
        new_code_cell(THRESHOLDS_CODE.replace("records", "bests")),
        new_markdown_cell("The same for samples backpropagated instead of seconds: a selector that skips the "
                          "backward pass of some samples can save samples without saving time."),
        new_code_cell("fig = plots.plot_speedup_by_threshold(by_threshold, column='backprop_speedup', unit=UNIT)"),
        new_markdown_cell(TRENDS_MD),
        new_code_cell(TRENDS_CODE),
        new_code_cell("formatting.threshold_display(by_threshold)"),
        new_markdown_cell(PROFILES_MD + " Here a selector's cost on a workload is the median over its studies' best "
                          "trials, and a workload a selector did not run counts as a miss."),
        new_code_cell(PROFILES_CODE),
        new_code_cell(PROFILE_TABLE_CODE),
        new_markdown_cell("## How to read the verdict\n\n"
                          "* **Per workload** the verdict is a sign test on the paired ratios over tuned Shuffle, "
                          "read off the order-statistic interval of their median: a **win** when the interval lies "
                          "above 1 (with 5 studies: all 5 faster, which happens 1 time in 32 when nothing differs), "
                          "a **loss** when it lies below 1, **no difference** when it contains 1. With few studies "
                          "the intervals are wide, and no difference is the honest answer, not a tie. The A/A "
                          "row (`ShuffleAA()`) checks the calibration on each workload: it should read no "
                          "difference.\n"
                          "* A study whose trials all missed the target scores as a miss: its speedup is 0 in the "
                          "per-workload table and its cost infinite in the profile, where it is never within any "
                          "tau. A selector's median cost is infinite when half or more of its studies missed.\n"
                          "* **Across workloads** the profile answers what one table cannot: a selector that is "
                          "fastest on a few workloads but misses others rises quickly and stops below 1; one that "
                          "is never fastest but always close rises late and reaches 1. Compare the score for time "
                          "with the score for backpropagated samples: a selector ahead on samples but behind on "
                          "time spends its savings on selection.\n"
                          "* Check the test accuracy at the target before counting a win: the targets were read on "
                          "the validation split, and a win with a lower test accuracy at the target is a win on "
                          "the split alone.\n"
                          "* Before crediting a win, check the tuning cost: every selector had the same number of "
                          "trials, but not the same wall time to spend on them."),
    ]


NOTEBOOKS = {"01_quickstart.ipynb": quickstart, "02_seed000.ipynb": seed000, "03_dybat_sweep.ipynb": dybat_sweep,
             "04_time_to_accuracy.ipynb": time_to_accuracy, "05_your_selector.ipynb": your_selector,
             "06_tuned_verdict.ipynb": tuned_verdict}


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
