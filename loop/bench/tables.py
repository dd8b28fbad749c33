"""Turns stored runs into the time-to-accuracy tables.

:func:`summarize` computes the full table (``table.csv``), :func:`display` formats
it for people (``table.md``), :func:`compact` prints its five headline columns per
dataset within 120 columns of a terminal, and :func:`seed000` is the seed 000 table.

Definitions (also in ``docs/bench.md``):

* **Target.**  Per dataset, 99% of the median (over seeds) of the best
  validation accuracy the baseline (``Shuffle()``) reaches within the budget;
  for a lower-is-better metric (``val_mae``, ``val_loss``) the median best
  times 1.01.  ``targets=`` overrides it.
* **Time- and epochs-to-target** come from :func:`loop.history.first_reached`
  on each run's history: training plus selection seconds (evaluation excluded)
  and epochs at the first evaluation that meets the target.  A run that never
  meets it, or failed, has time ``inf``.  Medians are over every seed run, so a
  median is ``inf`` ("not reached") when half or more of the seeds missed.
* **Speedup** is the median over seeds of the paired ratio
  ``baseline time / selector time`` for the same seed.  A selector run that
  misses the target (or failed) scores 0; one that meets it where the
  baseline's run of that seed missed scores ``inf``.  Its 95% confidence
  interval is a seeded percentile bootstrap over seeds.
* **Verdict** of a speedup at 95%: "win" when its interval lies entirely
  above 1, "loss" when entirely below 1, "no difference" when it contains 1,
  "n/a" when there is no interval (no paired seeds).  Given for the wall-clock
  speedup (``verdict``) and the backpropagated-samples saving
  (``backprop_verdict``).
* **Best** train and test metric and loss: per run the best value over
  evaluations, then the median over seeds.  The test columns read the
  ``test_*`` columns of runs that validate on a split held out of the
  training set (``Budget(validation="split")``), else the ``val_*`` columns
  (there the validation data is the test set).
* **Test at target / at end** (``test_at_target``, ``test_at_end``): runs that
  validate on a split also evaluate the test set at every evaluation; these
  are its metric at the first evaluation that meets the (validation) target,
  and at the run's last evaluation, medians over the seeds that have one
  (a run that misses the target has none at target).  NaN for runs without
  ``test_*`` columns.
* **Selection share**: selection seconds / training-plus-selection seconds of
  the whole run, median over seeds.
"""

import glob
import json
import math
import os

import numpy as np
import pandas as pd

from loop import history as history_lib

#: The status of a run whose selector does not support the dataset's task; the tables leave it out.
NOT_APPLICABLE = "not_applicable"

#: The baseline every speedup is measured against, as its table label.
BASELINE = "Shuffle()"
#: The rows of the seed 000 experiment.
SEED000_SELECTORS = ("Freeze()", "Shuffle()", "Homogeneous()", "Heterogeneous()")


def load_runs(out):
    """Every stored run under ``out`` (temporary and unreadable files are ignored)."""
    records = []
    for path in sorted(glob.glob(os.path.join(out, "runs", "*", "*", "seed_*.json"))):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        record["frame"] = pd.DataFrame(record.get("frame") or [])
        records.append(record)
    return records


def not_applicable(records):
    """``{selector: [datasets]}`` of the runs stored as not applicable (a selector that does not support the
    dataset's task); the tables leave these out."""
    found = {}
    for r in records:
        if r["status"] == NOT_APPLICABLE:
            datasets = found.setdefault(r["selector"], [])
            if r["dataset"] not in datasets:
                datasets.append(r["dataset"])
    return found


def bootstrap_ci(values, statistic=np.median, *, level=0.95, n_boot=10_000, seed=0, min_values=2):
    """A percentile bootstrap confidence interval of ``statistic(values)``.

    Resamples ``values`` with replacement ``n_boot`` times with a seeded NumPy
    generator.  Values may be ``inf``; the bounds are order statistics of the
    resampled statistics (no interpolation), so infinities stay meaningful.

    A single value has no spread to resample: its "interval" would be the
    value itself, and :func:`verdict` would call one paired seed a win or a
    loss.  Below ``min_values`` values there is therefore no interval.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for fewer than ``min_values`` values
        (so the verdict is "n/a").
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < max(min_values, 1):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    samples = values[rng.integers(0, values.size, size=(n_boot, values.size))]
    stats = np.sort(np.apply_along_axis(statistic, 1, samples) if statistic is not np.median
                    else np.median(samples, axis=1))
    alpha = (1.0 - level) / 2.0
    low = stats[int(math.floor(alpha * (n_boot - 1)))]
    high = stats[int(math.ceil((1.0 - alpha) * (n_boot - 1)))]
    return float(low), float(high)


#: The verdicts of a speedup's 95% interval (see :func:`verdict`).
VERDICTS = ("win", "loss", "no difference", "n/a")


def verdict(low, high):
    """"win" (interval above 1), "loss" (below 1), "no difference" (contains 1) or "n/a" (no interval)."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "n/a"
    if low > 1.0:
        return "win"
    if high < 1.0:
        return "loss"
    return "no difference"


def paired_speedups(baseline_times, selector_times):
    """Per-seed ratios ``baseline / selector`` for seeds run by both.

    Times are ``inf`` for runs that never reached the target.  A selector miss
    scores 0 (even when the baseline missed too); a selector hit where the
    baseline missed scores ``inf``.
    """
    ratios = []
    for seed, t_sel in sorted(selector_times.items()):
        if seed not in baseline_times:
            continue
        t_base = baseline_times[seed]
        if not math.isfinite(t_sel):
            ratios.append(0.0)
        elif not math.isfinite(t_base):
            ratios.append(math.inf)
        else:
            ratios.append(t_base / max(t_sel, 1e-12))
    return ratios


def best(frame, metric):
    """The best value of ``metric`` over a run's evaluations (NaN when absent)."""
    if metric not in frame or frame[metric].dropna().empty:
        return math.nan
    values = frame[metric].dropna()
    return float(values.min() if history_lib.infer_mode(metric) == "min" else values.max())


def infer_target(records, metric, baseline=BASELINE):
    """The default target of one dataset from its baseline runs.

    Returns:
        ``(threshold, mode)``, or None when no baseline run has ``metric``.
    """
    bests = [best(r["frame"], metric) for r in records if r["selector"] == baseline and r["status"] == "ok"]
    bests = [b for b in bests if math.isfinite(b)]
    if not bests:
        return None
    mode = history_lib.infer_mode(metric)
    median = float(np.median(bests))
    return (median * 0.99 if mode == "max" else median * 1.01), mode


def parse_targets(specs):
    """Parses ``["val_mae=3.0", "iris:val_accuracy=0.9"]`` into ``{dataset or None: {metric: value}}``.

    Raises:
        ValueError: a spec is not ``[dataset:]metric=value`` with a finite number.
    """
    targets = {}
    for spec in specs or []:
        where, _, rest = spec.rpartition(":") if ":" in spec else ("", "", spec)
        metric, eq, value = rest.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not eq or not metric.strip() or not math.isfinite(number):
            raise ValueError(f"bad target {spec!r}: write metric=value or dataset:metric=value, "
                             "e.g. --target val_accuracy=0.9 or --target boston:val_mae=3.0")
        targets.setdefault(where.strip() or None, {})[metric.strip()] = number
    return targets


def dataset_target(records, targets=None, baseline=BASELINE):
    """The target used for one dataset's runs: ``({metric: (threshold, mode)}, how)``.

    ``targets`` (from :func:`parse_targets`) wins, per dataset first, then the
    dataset-free entries whose metric this dataset tracks; else the default.
    """
    dataset = records[0]["dataset"]
    columns = set()
    for r in records:
        columns.update(r["frame"].columns)
    targets = targets or {}
    chosen = dict(targets.get(dataset, {}))
    if not chosen:
        chosen = {m: v for m, v in targets.get(None, {}).items() if m in columns}
    if chosen:
        return history_lib.parse_target(chosen), "given"
    fixed = records[0].get("budget", {}).get("target")
    if fixed:
        return history_lib.parse_target(fixed), "fixed in the suite"
    metric = records[0]["target_metric"]
    inferred = infer_target(records, metric, baseline)
    if inferred is None:
        return {}, f"none: no successful {baseline} run to infer it from"
    return {metric: inferred}, f"{'99%' if inferred[1] == 'max' else '101%'} of median best {baseline}"


def counts_to_target(record, target, columns=("samples_forwarded", "samples_backpropagated")):
    """The history's ``columns`` at the first evaluation that meets ``target``; all ``inf`` when not reached.

    By default ``(samples_forwarded, samples_backpropagated)``; ``columns=("step",)`` gives the optimizer steps.
    A count the stored history lacks (``samples_forwarded`` before it existed) is NaN.
    """
    if not target or record["frame"].empty or any(m not in record["frame"].columns for m in target):
        return tuple(math.inf for _ in columns)
    row = history_lib.first_reached(record["frame"], target)
    if row is None:
        return tuple(math.inf for _ in columns)
    return tuple(float(row.get(c, math.nan)) for c in columns)


#: What :func:`summarize` reads at the target, in one lookup per run: forward and backward samples, steps.
_COUNTED = ("samples_forwarded", "samples_backpropagated", "step")


def time_to_target(record, target):
    """``(seconds, epochs)`` to ``target`` for one run; ``(inf, inf)`` when never reached or failed."""
    if not target or record["frame"].empty:
        return math.inf, math.inf
    missing = [m for m in target if m not in record["frame"].columns]
    if missing:
        return math.inf, math.inf
    row = history_lib.first_reached(record["frame"], target)
    if row is None:
        return math.inf, math.inf
    return float(row["train_time_s"]), float(row["epoch"])


def test_metric(record, metric):
    """The column of a run's history that holds the test set's ``metric``: ``test_<metric>`` when the run validated
    on a split of the training set (then ``val_`` is that split), else ``val_<metric>`` (the test set)."""
    return "test_" + metric if "test_" + metric in record["frame"].columns else "val_" + metric


def test_at(record, metric, target):
    """``(at_target, at_end)``: the run's ``test_<metric>`` at the first evaluation that meets ``target`` (NaN when
    it never does) and at its last evaluation; both NaN when the run has no ``test_`` column."""
    column = "test_" + metric
    frame = record["frame"]
    if frame.empty or column not in frame.columns:
        return math.nan, math.nan
    at_end = float(frame[column].iloc[-1])
    if not target or any(m not in frame.columns for m in target):
        return math.nan, at_end
    row = history_lib.first_reached(frame, target)
    return (math.nan if row is None else float(row[column])), at_end


def _median(values):
    values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return float(np.median(values)) if values else math.nan


def summarize(records, *, targets=None, baseline=BASELINE, n_boot=10_000):
    """The time-to-accuracy table: one row per dataset x selector.

    Args:
        records: from :func:`load_runs`.
        targets: from :func:`parse_targets`; None infers every target.
        baseline: the label of the selector speedups are measured against.
        n_boot: bootstrap resamples for the speedup's confidence interval.

    Returns:
        A ``pandas.DataFrame`` (columns in ``docs/bench.md``).
    """
    from loop import costs  # imports TensorFlow, which the command line's --help does without

    rows = []
    by_dataset = {}
    for r in records:
        if r["status"] != NOT_APPLICABLE:
            by_dataset.setdefault(r["dataset"], []).append(r)
    for dataset, recs in by_dataset.items():
        target, how = dataset_target(recs, targets, baseline)
        target_text = ", ".join(f"{m} {'>=' if mode == 'max' else '<='} {t:.4g}" for m, (t, mode) in target.items())
        metric = recs[0]["metrics"][0] if recs[0]["metrics"] else "loss"
        times, counts = {}, {}
        for r in recs:
            times.setdefault(r["selector"], {})[r["seed"]] = time_to_target(r, target)
            counts.setdefault(r["selector"], {})[r["seed"]] = counts_to_target(r, target, _COUNTED)
        base_times = {seed: t for seed, (t, _) in times.get(baseline, {}).items()}
        order = list(dict.fromkeys([baseline] * (baseline in times) + [r["selector"] for r in recs]))
        for label in order:
            runs = sorted((r for r in recs if r["selector"] == label), key=lambda r: r["seed"])
            secs = [times[label][r["seed"]][0] for r in runs]
            epochs = [times[label][r["seed"]][1] for r in runs]
            ratios = paired_speedups(base_times, {r["seed"]: times[label][r["seed"]][0] for r in runs})
            low, high = bootstrap_ci(ratios, n_boot=n_boot) if ratios else (math.nan, math.nan)
            cost = {}
            for k, name in enumerate(("forward", "backprop")):
                mine = {r["seed"]: counts[label][r["seed"]][k] for r in runs}
                base = {seed: c[k] for seed, c in counts.get(baseline, {}).items() if not math.isnan(c[k])}
                paired = paired_speedups(base, {s: v for s, v in mine.items() if not math.isnan(v)})
                cost[f"{name}_to_target"] = _median(list(mine.values()))
                cost[f"{name}_speedup"] = float(np.median(paired)) if paired else math.nan
                cost[f"{name}_speedup_ci_low"], cost[f"{name}_speedup_ci_high"] = (
                    bootstrap_ci(paired, n_boot=n_boot) if paired else (math.nan, math.nan))
                if name == "backprop":
                    cost["backprop_verdict"] = verdict(cost["backprop_speedup_ci_low"],
                                                       cost["backprop_speedup_ci_high"])
            flops = [r.get("flops_per_sample") for r in runs if r.get("flops_per_sample")]
            gflops = ([costs.training_flops(flops[0], *counts[label][r["seed"]][:2]) / 1e9 for r in runs]
                      if flops else [])
            share = [r["frame"]["selection_time_s"].iloc[-1] / r["frame"]["train_time_s"].iloc[-1]
                     for r in runs if not r["frame"].empty and r["frame"]["train_time_s"].iloc[-1] > 0]
            last = [r["frame"].iloc[-1] for r in runs if not r["frame"].empty]
            test_at_target, test_at_end = zip(*[test_at(r, metric, target) for r in runs]) if runs else ((), ())
            rows.append({
                "dataset": dataset, "selector": label, "seeds": len(runs),
                "failed": sum(r["status"] != "ok" for r in runs),
                "reached": sum(math.isfinite(s) for s in secs) / len(runs) if runs else math.nan,
                "target": target_text or how, "target_source": how,
                "time_to_target_s": float(np.median(secs)) if secs else math.nan,
                "epochs_to_target": float(np.median(epochs)) if epochs else math.nan,
                "steps_to_target": _median([counts[label][r["seed"]][2] for r in runs]),
                "speedup": float(np.median(ratios)) if ratios else math.nan,
                "speedup_ci_low": low, "speedup_ci_high": high, "verdict": verdict(low, high),
                **cost,
                "flops_per_sample": float(flops[0]) if flops else math.nan,
                "train_gflops_to_target": _median(gflops),
                "metric": metric,
                "best_train": _median([best(r["frame"], metric) for r in runs]),
                "best_test": _median([best(r["frame"], test_metric(r, metric)) for r in runs]),
                "best_train_loss": _median([best(r["frame"], "loss") for r in runs]),
                "best_test_loss": _median([best(r["frame"], test_metric(r, "loss")) for r in runs]),
                "test_at_target": _median(list(test_at_target)),
                "test_at_end": _median(list(test_at_end)),
                "selection_share": _median(share),
                "train_time_s": _median([row["train_time_s"] for row in last]),
                "setup_time_s": _median([float(row.get("setup_time_s", 0.0)) for row in last]),
                "eval_time_s": _median([row["eval_time_s"] for row in last]),
                "errors": "; ".join(sorted({r["error"] for r in runs if r["error"]})),
            })
    return pd.DataFrame(rows)


def seed000(records, selectors=SEED000_SELECTORS, seed=0):
    """The seed 000 table: best train/test metric and loss of one seed, for the order-only selectors."""
    rows = []
    for r in records:
        if r["seed"] != seed or r["selector"] not in selectors or r["status"] == NOT_APPLICABLE:
            continue
        metric = r["metrics"][0] if r["metrics"] else "loss"
        rows.append({"dataset": r["dataset"], "selector": r["selector"], "status": r["status"], "metric": metric,
                     "best_train": best(r["frame"], metric), "best_test": best(r["frame"], test_metric(r, metric)),
                     "best_train_loss": best(r["frame"], "loss"),
                     "best_test_loss": best(r["frame"], test_metric(r, "loss"))})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    rank = {s: i for i, s in enumerate(selectors)}
    frame["_rank"] = frame["selector"].map(rank)
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    frame["_ds"] = frame["dataset"].map({d: i for i, d in enumerate(datasets)})
    return frame.sort_values(["_ds", "_rank"]).drop(columns=["_rank", "_ds"]).reset_index(drop=True)


def _cell(value, digits=3):
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def display(table):
    """The summary table as people read it: reached as k/n, speedup with its CI, unreached as 'not reached'."""
    if table.empty:
        return table
    shown = pd.DataFrame({"dataset": table["dataset"], "selector": table["selector"]})
    shown["seeds"] = table["seeds"].astype(int)
    shown["reached"] = [f"{round(r * s)}/{s}" + (f" ({f} failed)" if f else "")
                        for r, s, f in zip(table["reached"], table["seeds"], table["failed"])]
    shown["target"] = table["target"]
    shown["time to target (s)"] = [("not reached" if math.isinf(t) else _cell(t, 2)) for t in table["time_to_target_s"]]
    shown["epochs to target"] = [("not reached" if math.isinf(e) else _cell(e, 1)) for e in table["epochs_to_target"]]
    if "steps_to_target" in table:
        shown["steps to target"] = [("not reached" if math.isinf(v) else _cell(v, 3))
                                    for v in table["steps_to_target"]]
    shown["speedup [95% CI]"] = [f"{_cell(s, 2)} [{_cell(lo, 2)}, {_cell(hi, 2)}]"
                                 for s, lo, hi in zip(table["speedup"], table["speedup_ci_low"],
                                                      table["speedup_ci_high"])]
    if "verdict" in table:
        shown["verdict"] = table["verdict"]
    if "forward_to_target" in table:
        for name, title in (("forward", "fwd"), ("backprop", "bwd")):
            shown[f"{title} samples to target"] = [("not reached" if math.isinf(v) else _cell(v, 3))
                                                   for v in table[f"{name}_to_target"]]
            shown[f"{title} saving [95% CI]"] = [
                f"{_cell(s, 2)} [{_cell(lo, 2)}, {_cell(hi, 2)}]"
                for s, lo, hi in zip(table[f"{name}_speedup"], table[f"{name}_speedup_ci_low"],
                                     table[f"{name}_speedup_ci_high"])]
            if f"{name}_verdict" in table:
                shown[f"{title} verdict"] = table[f"{name}_verdict"]
        shown["train GFLOPs to target"] = [("not reached" if math.isinf(v) else _cell(v, 3))
                                           for v in table["train_gflops_to_target"]]
    for col in ("best_train", "best_test"):
        shown[col] = [_cell(v) for v in table[col]]
    for col, title in (("test_at_target", "test at target"), ("test_at_end", "test at end")):
        if col in table and table[col].notna().any():  # runs that validated on a split of the training set
            shown[title] = [_cell(v) for v in table[col]]
    shown["best train loss"] = [_cell(v) for v in table["best_train_loss"]]
    shown["best test loss"] = [_cell(v) for v in table["best_test_loss"]]
    shown["selection share"] = [_cell(100 * v, 2) + "%" if math.isfinite(v) else "–" for v in table["selection_share"]]
    shown["train s"] = [_cell(v, 2) for v in table["train_time_s"]]
    if "setup_time_s" in table and (table["setup_time_s"].fillna(0) > 0).any():  # e.g. RhoLoss's IL model
        shown["of which setup s"] = [_cell(v, 2) for v in table["setup_time_s"]]
    shown["eval s"] = [_cell(v, 2) for v in table["eval_time_s"]]
    metrics = set(table["metric"])
    if len(metrics) == 1:
        label = metrics.pop()
    else:
        label = "metric"
        shown.insert(shown.columns.get_loc("best_train"), "metric", table["metric"])
    return shown.rename(columns={"best_train": f"best train {label}", "best_test": f"best test {label}"})


def to_markdown(frame):
    """A GitHub markdown table of ``frame`` (floats shortened, NaN as '–')."""
    if frame.empty:
        return "(no runs)"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = [header, rule]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


#: The columns of the compact table printed in a terminal; every column stays in ``table.csv`` and ``table.md``.
COMPACT_COLUMNS = ("selector", "reached", "time to target (s)", "speedup [95% CI]", "verdict")


def to_text(frame, *, right=(), indent="  "):
    """``frame`` as plain text: a header, a rule and one line per row, columns padded to their widest cell.

    Args:
        frame: a ``pandas.DataFrame`` whose cells are shown with :func:`_cell` (floats shortened, NaN as '–').
        right: the columns aligned to the right (numbers); the others are aligned to the left.
        indent: put before every line.

    Returns:
        The lines joined with newlines, without a trailing one; "(no runs)" for an empty frame.
    """
    if frame.empty:
        return indent + "(no runs)"
    columns = [str(c) for c in frame.columns]
    cells = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(c)] + [len(row[k]) for row in cells]) for k, c in enumerate(columns)]

    def line(values):
        padded = [v.rjust(w) if c in right else v.ljust(w) for c, v, w in zip(columns, values, widths)]
        return (indent + "  ".join(padded)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(row) for row in cells])


def compact(table, *, width=120):
    """The summary table as a terminal shows it at a glance: one block per dataset, each line within ``width``.

    Each block starts with the dataset, its target and where the target came
    from, then one line per selector with :data:`COMPACT_COLUMNS`: the seeds
    that reached the target (k/n), the median time to it, the median paired
    speedup against Shuffle with its 95% interval, and the verdict (Shuffle's own
    line reads "1 (reference)").  A selector
    label too long for the line is cut with '…'.  The full table, every column,
    is :func:`display` (``table.md``) and ``table.csv``.

    Args:
        table: from :func:`summarize`.
        width: the widest line allowed, in characters (at least 80).

    Returns:
        The text, without a trailing newline; "(no runs)" for an empty table.

    Raises:
        ValueError: ``width`` is below 80.
    """
    if width < 80:
        raise ValueError(f"compact(width={width!r}): give at least 80 columns; the five columns need them")
    if table.empty:
        return "(no runs)"
    shown = display(table)
    blocks = []
    for dataset in dict.fromkeys(table["dataset"]):
        rows = table["dataset"] == dataset
        part = shown.loc[rows, list(COMPACT_COLUMNS)].reset_index(drop=True)
        baseline = (part["selector"] == BASELINE).to_numpy()
        part.loc[baseline, "speedup [95% CI]"], part.loc[baseline, "verdict"] = "1 (reference)", "–"
        source = table.loc[rows, "target_source"].iloc[0]
        target = table.loc[rows, "target"].iloc[0]
        heading = f"{dataset}: target {target}" + (f" ({source})" if source != target else "")
        others = sum(max(len(c), part[c].str.len().max()) for c in COMPACT_COLUMNS[1:]) + 2 * len(COMPACT_COLUMNS)
        room = max(12, width - others)  # the selector column gets what the other four leave
        part["selector"] = [s if len(s) <= room else s[:room - 1] + "…" for s in part["selector"]]
        blocks.append(heading[:width] + "\n" + to_text(part, right=("time to target (s)",)))
    return "\n\n".join(blocks)


#: What the printed seed 000 table shows and why (``report`` prints it above the table).
SEED000_CAPTION = (
    "Seed 000: seed 0 only, for the order-only selectors Freeze (one permutation, reused), Shuffle (a fresh one\n"
    "every epoch), Homogeneous (one class per batch) and Heterogeneous (class-balanced batches). Each trains on\n"
    "every sample every epoch; only the order differs. The table asks whether the mini-batch order alone changes\n"
    "the best accuracy and loss reached. One seed, so no intervals: a difference here is a lead to check with\n"
    "more seeds, not a result.")
