"""The one report of a results directory: tables, figures and the analysis, as files and on the terminal.

:func:`report` scores each study by its winning trial
(:func:`loop.bench.scoring.studies.study_winners`; untuned results have one
trial per study, the seed, so their table is the untuned table) and writes

* ``table.csv`` (:func:`loop.bench.scoring.summary.summarize`, every column) and
  ``table.md`` (the same for people, with the interval and verdict note of
  :func:`loop.bench.reporting.formatting.interval_note` and the A/A control's
  lines; then the seed 000 table for untuned results, the tuning cost, pruning
  savings, winning hyper-parameters and winners at a range edge
  (:func:`loop.bench.scoring.studies.edge_hits`) per tuned workload, and the
  precision, contention (:mod:`loop.bench.contention`) and not-applicable
  notes);
* ``seed000.csv`` (:func:`loop.bench.scoring.summary.seed000`) when every study
  has one trial;
* ``plots/`` (:mod:`loop.bench.reporting.plots`) and ``analysis/``
  (:func:`loop.bench.reporting.analysis.write_analysis`, given every trial: each
  threshold level takes each study's fastest trial to it);

and prints the compact table (:func:`loop.bench.reporting.formatting.compact`)
under the same note, the A/A control's verdict per workload, the seed 000 table
or the tuning costs with one range-edge line per workload, and the notes.
"""

import os
import sys
import textwrap

import pandas as pd

from loop.bench import contention
from loop.bench.records import DEFAULT_PRECISION, NOT_APPLICABLE
from loop.bench.reporting import formatting
from loop.bench.scoring.grouping import not_applicable, one_machine
from loop.bench.scoring.studies import costs, edge_hits, study_winners, winners, with_setup
from loop.bench.scoring.summary import seed000, summarize
from loop.bench.scoring.targets import BASELINE

def _notes(records, skipped):
    notes = contention.lines(records)
    precisions = sorted({r.get("precision") or DEFAULT_PRECISION for r in records})
    if precisions and precisions != [DEFAULT_PRECISION]:
        notes += [f"Precision (keras.mixed_precision policy): {', '.join(precisions)}", ""]
    if skipped:
        notes += ["Not applicable (not trained): " + "; ".join(
            f"{selector} on {', '.join(workloads)}" for selector, workloads in skipped.items()), ""]
    return notes


def _tuning_sections(records, workloads):
    """The Markdown and the printed lines of the tuned ``workloads``: tuning cost and pruning, winning
    hyper-parameters, winners at a range edge (printed: the costs and one range-edge line per workload)."""
    cost, won, edges = costs(records), winners(records), edge_hits(records)
    text = ["## Tuning", "",
            "Per tuned workload: the trials each selector ran, their wall seconds (`tuning_s`), what exact pruning "
            "saved (`saved_s`, an upper bound), each study's winning trial with its hyper-parameters, and how many "
            "studies' winners sit at an edge of the searched range (unit coordinate within 0.1 of 0 or 1; choice "
            "dimensions left out). A uniform draw lands there 20% of the time, so only a share well above 20% (on "
            "one side, `at_low` or `at_high`) says the range cut the search short.", ""]
    printed = ["Tuning cost and pruning (the winning hyper-parameters are in table.md):", ""]
    for workload in workloads:
        mine = cost[cost["workload"] == workload].round(1).reset_index(drop=True)
        chosen = won[won["workload"] == workload].reset_index(drop=True)
        edge = edges[edges["workload"] == workload].reset_index(drop=True)
        text += [f"### {workload}: tuning cost and pruning", "", formatting.to_markdown(mine), "",
                 f"### {workload}: winning hyper-parameters", "", formatting.to_markdown(chosen), ""]
        if not edge.empty:
            text += [f"### {workload}: winners at a range edge", "", formatting.to_markdown(edge), ""]
        search = formatting.search_lines([r for r in records if r["workload"] == workload], chosen)
        text += search + ([""] if search else [])
        printed += [f"{workload}:", formatting.to_text(mine)] + [f"  {line}" for line in
                                                                 formatting.edge_lines(edge) + search] + [""]
    return text, printed


def report(out, records=None, *, targets=None, plots=True, n_boot=10_000, stream=None, full_table=False, width=120,
           allow_mixed_hardware=False):
    """Writes table.csv, table.md, seed000.csv, plots/ and analysis/ under ``out`` and prints the tables.

    Each study is scored by its winner (:func:`loop.bench.scoring.studies.study_winners`, chosen by the workload's
    fixed target, the one the search pruned against); ``targets`` then sets the target every table measures.

    Args:
        out: the results directory (created if missing).
        records: its trial records; None loads them (``loop.bench.store.load(out)``).
        targets: from :func:`loop.bench.scoring.targets.parse_targets`; None uses each workload's own target.
        plots: whether to draw the PNG figures (``out/plots`` and those of ``out/analysis``).
        n_boot: unused by the tables (their intervals are order statistics now); kept for callers.
        stream: where to print (default: stdout).
        full_table: print every column, as ``table.md`` holds them; by default the compact table, then the seed
            000 table with its caption (untuned results) or the tuning costs (tuned ones).
        width: the widest line of the compact table.
        allow_mixed_hardware: report a workload measured on several machines per machine
            (:func:`loop.bench.scoring.grouping.one_machine`); by default that is an error.

    Returns:
        The summary ``pandas.DataFrame`` (:func:`loop.bench.scoring.summary.summarize` of the studies' winners).
    """
    stream = stream or sys.stdout
    if records is None:
        from loop.bench import store  # reads every stored trial

        records = store.load(out)
    records = one_machine(records, allow_mixed=allow_mixed_hardware)  # before anything is written
    skipped = not_applicable(records)
    scored = [w for w in study_winners(with_setup(records)) if w["status"] != NOT_APPLICABLE]
    tuned = list(dict.fromkeys(w["workload"] for w in scored if w["trials"] > 1))
    unit = "studies" if tuned else "seeds"
    table = summarize(scored, targets=targets, n_boot=n_boot)
    os.makedirs(out, exist_ok=True)
    table.to_csv(os.path.join(out, "table.csv"), index=False)
    written = [os.path.join(out, "table.csv"), os.path.join(out, "table.md")]
    note = formatting.interval_note(table, unit=unit, width=width)
    control = formatting.aa_lines(table)
    protocol = formatting.protocol_line(records)
    text = ["## Time to target", ""] + ([protocol, ""] if protocol else [])
    if tuned:
        text += ["Each study scored by its winning trial (the fastest to the target); speedups over tuned "
                 f"{BASELINE}, paired by study.", ""]
    text += ([" ".join(note), ""] if note else []) + [formatting.to_markdown(formatting.display(table)), ""]
    if control:
        text += control + [""]
    first = pd.DataFrame()
    if not tuned:
        first = seed000(scored)
        first.to_csv(os.path.join(out, "seed000.csv"), index=False)
        written.append(os.path.join(out, "seed000.csv"))
        text += ["## Seed 000 (seed 0 only)", "", formatting.to_markdown(first), ""]
    tuning_printed = []
    if tuned:
        tuning_text, tuning_printed = _tuning_sections(records, tuned)
        text += tuning_text
    notes = _notes([r for r in records if r["status"] != NOT_APPLICABLE], skipped)
    text += notes
    notes = [wrapped for line in notes for wrapped in (textwrap.wrap(line, width=width) or [""])]  # as printed
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(text))
    if full_table:
        printed = text
    elif tuned:
        printed = textwrap.wrap(protocol, width=width) + ["Time to target of each study's winning trial (median over studies); speedup = tuned Shuffle's "
                   "time / the selector's,", "paired by study. Every column (the per-study ratios too), and the "
                   "winning hyper-parameters, are in table.md."] + note + [
                   "", formatting.compact(table, width=width), ""] + (control + [""] if control else []) \
            + tuning_printed + notes
    else:
        printed = textwrap.wrap(protocol, width=width) + ["Time to target (median over seeds); speedup = Shuffle's time / the selector's, paired by seed.",
                   "Every column (the per-seed ratios too) is in table.md and table.csv."] + note + [
                   "", formatting.compact(table, width=width), ""] + (control + [""] if control else [])
        if not first.empty:
            printed += [formatting.SEED000_CAPTION, "", formatting.to_text(first), ""]
        printed += notes
    print("\n".join(printed), file=stream)
    if plots and scored:
        from loop.bench.reporting import plots as plots_lib  # matplotlib, only when drawing

        paths = plots_lib.plot_all(scored, os.path.join(out, "plots"), targets=targets, unit=unit)
        wallclock = os.path.join(out, "plots", "wallclock.png")
        if any(not r["frame"].empty for r in scored):
            plots_lib.plot_wallclock(scored, wallclock, targets=targets, unit=unit)
            paths.append(wallclock)
        print(f"plots: {len(paths)} figures in {os.path.join(out, 'plots')}", file=stream)
    print("tables: " + ", ".join(written), file=stream)
    if scored:
        from loop.bench.reporting.analysis import write_analysis

        where = os.path.join(out, "analysis")
        trials = [r for r in records if r["status"] != NOT_APPLICABLE]  # each level: each study's fastest trial
        write_analysis(trials, where, targets, n_boot=n_boot, plots=plots, unit=unit)
        print(f"speedup across thresholds and performance profiles: {os.path.join(where, 'analysis.md')}",
              file=stream)
    return table
