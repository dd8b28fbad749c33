"""Formatting the scores for people: cells, the shown tables, Markdown, plain text and the compact terminal table.

:func:`display` turns :func:`loop.bench.scoring.summary.summarize`'s table into
what ``table.md`` shows, :func:`compact` prints its five headline columns per
workload within 120 columns of a terminal, :func:`threshold_display` and
:func:`trend_summaries` do the same for the speedup across thresholds;
:func:`interval_note` states the interval and the verdict's false-win rate of a
table, :func:`aa_lines` the A/A control's verdict per workload and
:func:`edge_lines` the winners at a range edge.
"""

import math
import textwrap

import numpy as np
import pandas as pd

from loop.bench.scoring import speedups
from loop.bench.scoring.targets import BASELINE, is_aa_control

#: The note of the A/A control's row (:data:`loop.bench.scoring.targets.AA_CONTROL`) in the shown tables.
AA_NOTE = "A/A control"


def cell(value, digits=3):
    """One table cell as text: floats shortened to ``digits`` (NaN as '–', infinities as '∞'), the rest ``str``."""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def _interval(values, lows, highs):
    return [f"{cell(s, 2)} [{cell(lo, 2)}, {cell(hi, 2)}]" for s, lo, hi in zip(values, lows, highs)]


def _count_or_not_reached(values, digits):
    return [("not reached" if math.isinf(v) else cell(v, digits)) for v in values]


def percent(value, digits=2):
    """A probability as a percentage with ``digits`` significant digits: 0.03125 -> "3.1%"; NaN as '–'."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{100 * value:.{digits}g}%"


def display(table):
    """The summary table as people read it: reached as k/n, speedup with its interval (the order-statistic
    interval of the median; the column keeps its name "speedup [95% CI]"), its verdict, false-win rate and
    per-study ratios, unreached as 'not reached'; a "note" column marks the A/A control's row when the table has
    one."""
    if table.empty:
        return table
    shown = pd.DataFrame({"dataset": table["dataset"], "selector": table["selector"]})
    shown["seeds"] = table["seeds"].astype(int)
    shown["reached"] = [f"{round(r * s)}/{s}" + (f" ({f} failed)" if f else "")
                        for r, s, f in zip(table["reached"], table["seeds"], table["failed"])]
    shown["target"] = table["target"]
    shown["time to target (s)"] = _count_or_not_reached(table["time_to_target_s"], 2)
    shown["epochs to target"] = _count_or_not_reached(table["epochs_to_target"], 1)
    if "steps_to_target" in table:
        shown["steps to target"] = _count_or_not_reached(table["steps_to_target"], 3)
    shown["speedup [95% CI]"] = _interval(table["speedup"], table["speedup_ci_low"], table["speedup_ci_high"])
    if "verdict" in table:
        shown["verdict"] = table["verdict"]
    if "false_win_rate" in table:
        shown["false-win rate"] = [percent(v) for v in table["false_win_rate"]]
    if "ratios" in table:
        shown["ratios"] = [v if isinstance(v, str) else ("" if v is None or (isinstance(v, float) and math.isnan(v))
                                                           else cell(v, 2)) for v in table["ratios"]]
    if any(is_aa_control(label) for label in table["selector"]):
        shown["note"] = [AA_NOTE if is_aa_control(label) else "" for label in table["selector"]]
    if "forward_to_target" in table:
        for name, title in (("forward", "fwd"), ("backprop", "bwd")):
            shown[f"{title} samples to target"] = _count_or_not_reached(table[f"{name}_to_target"], 3)
            shown[f"{title} saving [95% CI]"] = _interval(table[f"{name}_speedup"], table[f"{name}_speedup_ci_low"],
                                                         table[f"{name}_speedup_ci_high"])
            if f"{name}_verdict" in table:
                shown[f"{title} verdict"] = table[f"{name}_verdict"]
        shown["train GFLOPs to target"] = _count_or_not_reached(table["train_gflops_to_target"], 3)
    for col in ("best_train", "best_test"):
        shown[col] = [cell(v) for v in table[col]]
    for col, title in (("test_at_target", "test at target"), ("test_at_end", "test at end")):
        if col in table and table[col].notna().any():  # trials that validated on a split of the training set
            shown[title] = [cell(v) for v in table[col]]
    shown["best train loss"] = [cell(v) for v in table["best_train_loss"]]
    shown["best test loss"] = [cell(v) for v in table["best_test_loss"]]
    shown["selection share"] = [cell(100 * v, 2) + "%" if math.isfinite(v) else "–" for v in table["selection_share"]]
    shown["train s"] = [cell(v, 2) for v in table["train_time_s"]]
    if "setup_time_s" in table and (table["setup_time_s"].fillna(0) > 0).any():  # e.g. RhoLoss's IL model
        shown["of which setup s"] = [cell(v, 2) for v in table["setup_time_s"]]
    shown["eval s"] = [cell(v, 2) for v in table["eval_time_s"]]
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
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


#: The columns of the compact table printed in a terminal; every column stays in ``table.csv`` and ``table.md``.
COMPACT_COLUMNS = ("selector", "reached", "time to target (s)", "speedup [95% CI]", "verdict")


def to_text(frame, *, right=(), indent="  "):
    """``frame`` as plain text: a header, a rule and one line per row, columns padded to their widest cell.

    Args:
        frame: a ``pandas.DataFrame`` whose cells are shown with :func:`cell` (floats shortened, NaN as '–').
        right: the columns aligned to the right (numbers); the others are aligned to the left.
        indent: put before every line.

    Returns:
        The lines joined with newlines, without a trailing one; "(no runs)" for an empty frame.
    """
    if frame.empty:
        return indent + "(no runs)"
    columns = [str(c) for c in frame.columns]
    cells = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(c)] + [len(row[k]) for row in cells]) for k, c in enumerate(columns)]

    def line(values):
        padded = [v.rjust(w) if c in right else v.ljust(w) for c, v, w in zip(columns, values, widths)]
        return (indent + "  ".join(padded)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(row) for row in cells])


def compact(table, *, width=120, baseline=BASELINE):
    """The summary table as a terminal shows it at a glance: one block per workload, each line within ``width``.

    Each block starts with the workload, its target and where the target came
    from, then one line per selector with :data:`COMPACT_COLUMNS`: the studies
    that reached the target (k/n), the median time to it, the median paired
    speedup against the baseline with the order-statistic interval of the
    median, and the verdict (the baseline's own line reads "1 (reference)").  A
    block with the A/A control (:data:`loop.bench.scoring.targets.AA_CONTROL`)
    adds a "note" column marking its row.  A selector label too long for the
    line is cut with '…'.  The full table, every column, is
    :func:`display` (``table.md``) and ``table.csv``.

    Args:
        table: from :func:`loop.bench.scoring.summary.summarize`.
        width: the widest line allowed, in characters (at least 80).
        baseline: the label of the reference selector.

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
    for workload in dict.fromkeys(table["dataset"]):
        rows = table["dataset"] == workload
        columns = list(COMPACT_COLUMNS) + (["note"] if "note" in shown and (shown.loc[rows, "note"] != "").any()
                                           else [])
        part = shown.loc[rows, columns].reset_index(drop=True)
        reference = (part["selector"] == baseline).to_numpy()
        part.loc[reference, "speedup [95% CI]"], part.loc[reference, "verdict"] = "1 (reference)", "–"
        source = table.loc[rows, "target_source"].iloc[0]
        target = table.loc[rows, "target"].iloc[0]
        heading = f"{workload}: target {target}" + (f" ({source})" if source != target else "")
        others = sum(max(len(c), part[c].str.len().max()) for c in columns[1:]) + 2 * len(columns)
        room = max(12, width - others)  # the selector column gets what the other four leave
        part["selector"] = [s if len(s) <= room else s[:room - 1] + "…" for s in part["selector"]]
        blocks.append(heading[:width] + "\n" + to_text(part, right=("time to target (s)",)))
    return "\n\n".join(blocks)


#: What the printed seed 000 table shows and why (the report prints it above the table).
SEED000_CAPTION = (
    "Seed 000: seed 0 only, for the order-only selectors Freeze (one permutation, reused), Shuffle (a fresh one\n"
    "every epoch), Homogeneous (one class per batch) and Heterogeneous (class-balanced batches). Each trains on\n"
    "every sample every epoch; only the order differs. The table asks whether the mini-batch order alone changes\n"
    "the best accuracy and loss reached. One seed, so no intervals: a difference here is a lead to check with\n"
    "more seeds, not a result.")


def threshold_display(table):
    """The threshold table (:func:`loop.bench.scoring.thresholds.speedup_by_threshold`) as people read it:
    reached as k/n, the speedup with its interval (order-statistic, of the median) and verdict."""
    if table.empty:
        return table
    shown = pd.DataFrame({"dataset": table["dataset"], "level": table["level"].astype(int)})
    shown["threshold"] = [f"{m} {'>=' if mode == 'max' else '<='} {t:.4g}"
                          for m, mode, t in zip(table["metric"], table["mode"], table["threshold"])]
    shown["selector"] = table["selector"]
    shown["reached"] = [f"{k}/{n}" for k, n in zip(table["reached"], table["seeds"])]
    shown["time (s)"] = _count_or_not_reached(table["time_to_threshold_s"], 2)
    for prefix, title, verdict_title in (("", "speedup", "verdict"), ("backprop_", "bwd saving", "bwd verdict")):
        shown[f"{title} [95% CI]"] = _interval(table[f"{prefix}speedup"], table[f"{prefix}speedup_ci_low"],
                                               table[f"{prefix}speedup_ci_high"])
        shown[verdict_title] = table[f"{prefix}verdict"]
        if not prefix and "false_win_rate" in table:
            shown["false-win rate"] = [percent(v) for v in table["false_win_rate"]]
    return shown


def trend_summaries(trend, by_threshold):
    """One readable line per row of ``trend`` (:func:`loop.bench.scoring.thresholds.trends` of ``by_threshold``):
    ``"toy, Grow(): 1x at val_accuracy >= 0.5 -> 2x at 0.9: grows (last/first 2, Spearman +0.90); verdicts"``.

    Returns:
        A list of strings, in ``trend``'s order.
    """
    lines = []
    for row in trend.itertuples(index=False):
        group = by_threshold[(by_threshold["dataset"] == row.dataset) & (by_threshold["selector"] == row.selector)]
        group = group.sort_values("level")
        mode, metric = group["mode"].iloc[0], group["metric"].iloc[0]
        lo, hi = group["threshold"].iloc[0], group["threshold"].iloc[-1]
        rho = row.spearman
        lines.append(f"{row.dataset}, {row.selector}: {cell(row.first, 2)}x at {metric} "
                     f"{'>=' if mode == 'max' else '<='} {lo:.4g} -> {cell(row.last, 2)}x at {hi:.4g}: {row.trend}"
                     + (f" (last/first {cell(row.ratio, 2)}, Spearman {rho:+.2f})" if math.isfinite(rho) else "")
                     + f"; {row.verdicts}")
    return lines


def with_summaries(trend, by_threshold):
    """``trend`` with its :func:`trend_summaries` as a ``summary`` column (what ``threshold_trends.csv`` holds)."""
    if trend.empty:
        return trend
    return trend.assign(summary=trend_summaries(trend, by_threshold))


def _studies_word(n, unit):
    return f"{n} {unit if n != 1 else unit.rstrip('s')}"


def interval_note(table, *, unit="studies", baseline=BASELINE, width=120):
    """What a table's interval and verdict are, with their numbers computed from its rows' paired study counts.

    ``"Interval: order-statistic interval of the median, coverage ≥ 93.75% with 5 studies; verdict = sign test,
    false-win rate ≤ 3.1%."``  Per distinct count of paired studies among the rows other than the baseline (the
    ``paired_studies`` column of :func:`loop.bench.scoring.summary.summarize`): the interval's two-sided coverage
    (:func:`loop.bench.scoring.speedups.coverage`) and the verdict's false-win rate when nothing differs
    (:func:`loop.bench.scoring.speedups.false_win_rate`); rows with too few studies for a verdict are counted.

    Args:
        table: from :func:`~loop.bench.scoring.summary.summarize`.
        unit: what one paired value is: ``"studies"`` or ``"seeds"``.
        baseline: the baseline's label (its rows are left out).
        width: the widest line.

    Returns:
        A list of lines (wrapped to ``width``); empty for an empty table or one without ``paired_studies``.
    """
    if table.empty or "paired_studies" not in table:
        return []
    counts = [int(n) for n, label in zip(table["paired_studies"], table["selector"]) if label != baseline]
    if not counts:
        counts = [int(n) for n in table["paired_studies"]]
    decided = sorted({n for n in counts if speedups.order_statistic_k(n) is not None})
    few = sum(1 for n in counts if 0 < n < speedups.MIN_STUDIES)
    parts = []
    if decided:
        coverage = ", ".join(f"≥ {percent(speedups.coverage(n), 4)} with {_studies_word(n, unit)}" for n in decided)
        rates = [speedups.false_win_rate(n) for n in decided]
        rate = f"≤ {percent(max(rates))}"
        if len(decided) > 1:
            rate += " (" + ", ".join(f"{percent(r)} with {n}" for r, n in zip(rates, decided)) + ")"
        parts.append(f"Interval: order-statistic interval of the median of the paired ratios, coverage {coverage}; "
                     f"verdict = sign test (win: at least n-k+1 of n {unit} faster), false-win rate {rate} when "
                     "nothing differs.")
    else:
        parts.append(f"Interval: order-statistic interval of the median of the paired ratios; verdict = sign test at "
                     f"a false-win rate ≤ {percent(speedups.LEVEL)}.")
    if few:
        parts.append(f"{few} row{'s' if few != 1 else ''} with fewer than {speedups.MIN_STUDIES} paired {unit}: no "
                     f"interval, verdict {speedups.TOO_FEW!r} (too few {unit} for a {percent(speedups.LEVEL)} claim).")
    return textwrap.wrap(" ".join(parts), width=width, break_on_hyphens=False)


def aa_lines(table):
    """One line per workload with the A/A control (:data:`loop.bench.scoring.targets.AA_CONTROL`): ``"spirals: A/A
    control ShuffleAA(): no difference"``, and a warning line after each verdict other than "no difference".

    Returns:
        A list of lines (empty when no row is the A/A control).
    """
    lines = []
    if table.empty:
        return lines
    for row in table.itertuples(index=False):
        if not is_aa_control(row.selector):
            continue
        lines.append(f"{row.dataset}: A/A control {row.selector}: {row.verdict}")
        if row.verdict != "no difference":
            why = ("it gives no verdict, so calibration is unchecked" if str(row.verdict).startswith("n/a")
                   else f"it reads {row.verdict!r} against {BASELINE} although nothing differs")
            lines.append(f"  warning: {row.dataset}: the comparison on this workload is not calibrated ({why}).")
    return lines


def edge_lines(edges):
    """One line per workload of :func:`loop.bench.scoring.studies.edge_hits`, summed over its selectors:
    ``"spirals: winners at a range edge: learning_rate 0/5, horizon 3/5"`` (dimensions in first-seen order).

    Returns:
        A list of lines (empty for an empty table).
    """
    lines = []
    if edges is None or edges.empty:
        return lines
    for workload in dict.fromkeys(edges["workload"]):
        part = edges[edges["workload"] == workload]
        sums = part.groupby("dimension", sort=False)[["edge", "studies"]].sum()
        lines.append(f"{workload}: winners at a range edge: "
                     + ", ".join(f"{name} {int(row.edge)}/{int(row.studies)}" for name, row in sums.iterrows()))
    return lines


def protocol_line(records):
    """What a results directory's protocol is, in one line, read from its trial records:

    ``"Protocol: tuned on one clock: 3 trials per study, 5 studies, validation splits; every method evaluated every
    0.026-0.25 training seconds, decayed over training seconds, within one time budget per workload."``

    Returns:
        A string ("" without records).
    """
    from loop.bench.scoring.studies import studies, trials_per_study

    if not records:
        return ""
    grouped = studies(records)
    trials = sorted({len(group) for group in grouped.values()})
    counts = sorted({n for n in (len({s for (w, sel, s) in grouped if (w, sel) == key})
                                 for key in {(w, sel) for (w, sel, _) in grouped})})
    span = lambda values, word: (f"{values[0]}" if len(values) == 1 else f"{values[0]}-{values[-1]}") + word  # noqa
    splits = {(r.get("workload_config") or {}).get("validation", "test") for r in records}
    where = {"split": "validation splits", "test": "the test set"}
    checked = " and ".join(where.get(s, str(s)) for s in sorted(splits))
    periods = sorted({float(r["clock"]["eval_period_s"]) for r in records
                      if isinstance(r.get("clock"), dict) and r["clock"].get("eval_period_s")})
    tuned = trials_per_study(records) > 1
    head = "tuned" if tuned else "untuned"
    text = (f"Protocol: {head}{' on one clock' if periods else ''}: "
            f"{span(trials, ' trial' + ('s' if trials[-1] > 1 else '') + ' per study') + ', ' if tuned else ''}"
            f"{span(counts, (' studies' if tuned else ' seeds') if counts[-1] > 1 else (' study' if tuned else ' seed'))}"
            f", targets and stops on {checked}")
    if periods:
        every = f"{periods[0]:.2g}" if len(periods) == 1 else f"{periods[0]:.2g}-{periods[-1]:.2g}"
        text += (f"; every method evaluated every {every} training seconds, decayed over training seconds, within "
                 "one time budget per workload.")
    else:
        text += "; each method evaluated once per loop epoch" + (
            ", its schedule over its own steps." if tuned else ".")
    return text


def search_lines(records, won):
    """One line per tuned workload on its learning-rate search: the range searched and how the studies' winners
    spread over the trial indices, so a reader sees that no fixed index always wins or always loses:
    ``"spirals: learning rate searched in [0.00345, 0.0575]; winning trial by index: 0: 3, 2: 5, 5: 2 of 35"``.

    Args:
        records: every trial record (their ``search_space``).
        won: :func:`loop.bench.scoring.studies.winners` of them.

    Returns:
        A list of lines (empty without searched records).
    """
    lines = []
    for workload in dict.fromkeys(r["workload"] for r in records):
        spaces = [r.get("search_space") for r in records if r["workload"] == workload and r.get("search_space")]
        ranges = {tuple(space["learning_rate"][1]) for space in spaces if "learning_rate" in space}
        part = won[won["workload"] == workload] if not won.empty else won
        if not ranges and part.empty:
            continue
        text = f"{workload}: "
        if len(ranges) == 1:
            low, high = next(iter(ranges))
            text += f"learning rate searched in [{low:.3g}, {high:.3g}]; "
        if not part.empty:
            counts = part["trial"].value_counts().sort_index()
            text += ("winning trial by index: " + ", ".join(f"{int(k)}: {int(n)}" for k, n in counts.items())
                     + f" of {len(part)} studies")
        lines.append(text.rstrip("; "))
    return lines
