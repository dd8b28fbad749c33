"""Formatting the scores (no training): the shown table, Markdown, plain text, the compact table, the threshold
table and trend lines, and the benchmarks/ scripts that print them."""

import importlib.util
import math
import os

import pandas as pd
import pytest
from synthetic_records import curve, record

from loop.bench.reporting import formatting
from loop.bench.scoring import summary, thresholds

BENCHMARKS = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "benchmarks")


def _run(selector, study, val_acc, *, workload="toy", status="ok", step_s=1.0):
    return record(workload, selector, study, curve(val_acc, seconds_per_eval=step_s), status=status)


def _counted(selector, study, val_acc, per_epoch, *, workload="toy"):
    return record(workload, selector, study, curve(val_acc, forwarded_per_eval=per_epoch,
                                                   backprop_per_eval=per_epoch))


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cells_shorten_floats_and_name_nan_and_infinity():
    assert [formatting.cell(v) for v in (1.23456, 12345.6, 2.0, math.nan, math.inf, -math.inf, "x", 3)] == [
        "1.235", "1.23e+04", "2", "–", "∞", "-∞", "x", "3"]
    assert formatting.cell(0.123456, 2) == "0.12"


def test_the_shown_table_reads_reached_as_k_of_n_and_misses_as_not_reached():
    records = [_run("Shuffle()", s, [0.5, 0.8, 0.9]) for s in range(3)]
    records += [_run("Slow()", s, [0.4, 0.5, 0.6]) for s in range(3)]
    records += [_run("Fast()", s, [0.9, 0.9, 0.9], step_s=0.5) for s in range(2)]
    records.append(_run("Fast()", 2, [0.2], status="failed"))
    shown = formatting.display(summary.summarize(records, n_boot=200))
    assert "not reached" in set(shown["time to target (s)"])
    assert "2/3 (1 failed)" in set(shown["reached"])
    assert "| Slow() |" in formatting.to_markdown(shown)
    assert "best test accuracy" in shown and "metric" not in shown  # one metric: named in the column
    assert formatting.to_markdown(shown.iloc[:0]) == "(no runs)"


def test_the_shown_table_puts_each_verdict_next_to_its_interval():
    records = [_counted("Shuffle()", s, [0.5, 0.7, 0.9], 100) for s in range(5)]
    records += [_counted("Fast()", s, [0.9, 0.9, 0.9], 100) for s in range(5)]
    records += [_counted("Slow()", s, [0.5, 0.5, 0.5], 100) for s in range(5)]
    records += [_counted("Mixed()", s, [0.5, 0.7, 0.9] if s % 2 else [0.9, 0.9, 0.9], 100) for s in range(5)]
    table = summary.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=500)
    shown = formatting.display(table)
    columns = list(shown.columns)
    assert columns.index("verdict") == columns.index("speedup [95% CI]") + 1
    assert columns[columns.index("verdict") + 1:columns.index("verdict") + 3] == ["false-win rate", "ratios"]
    assert list(shown["false-win rate"]) == ["3.1%"] * 4 and "note" not in columns  # no A/A control here
    assert list(shown["ratios"])[3] == "3.00, 1.00, 3.00, 1.00, 3.00" and list(shown["ratios"])[2] == "0, 0, 0, 0, 0"
    assert columns.index("bwd verdict") == columns.index("bwd saving [95% CI]") + 1
    assert "fwd verdict" not in columns and "fwd saving [95% CI]" in columns and "train GFLOPs to target" in columns
    assert list(shown["steps to target"]) == ["3", "1", "not reached", "1"]  # Mixed: 1, 3, 1, 3, 1
    text = formatting.to_markdown(shown)
    assert "| win |" in text and "| loss |" in text and "| no difference |" in text
    assert "| 3 [3, 3] | win | 3.1% | 3.00, 3.00, 3.00, 3.00, 3.00 |" in text


def test_compact_table_shows_five_columns_per_workload_within_the_width():
    long = "DynamicBatchSize(base=DyBAT(delta=0.5, order='loss', shuffle=True), k0=16, k1=512, schedule='geometric')"
    records = []
    for workload in ("toy", "other"):
        for study in range(5):
            records.append(_run("Shuffle()", study, [0.5, 0.8, 0.9], workload=workload))
            records.append(_run(long, study, [0.85, 0.9, 0.9], workload=workload, step_s=0.5))
            records.append(_run("Slow()", study, [0.1, 0.2, 0.3], workload=workload))
    table = summary.summarize(records, n_boot=200)
    text = formatting.compact(table, width=100)
    blocks = text.split("\n\n")
    assert [b.splitlines()[0].split(":")[0] for b in blocks] == ["toy", "other"]
    assert blocks[0].splitlines()[0].startswith("toy: target val_accuracy >= ")
    lines = blocks[0].splitlines()
    assert lines[1].split() == ["selector", "reached", "time", "to", "target", "(s)", "speedup", "[95%", "CI]",
                                "verdict"]
    assert max(len(line) for line in text.splitlines()) <= 100
    rows = {line.split()[0]: line for line in lines[3:]}
    assert rows["Shuffle()"].split()[1:] == ["5/5", "3", "1", "(reference)", "–"]
    assert rows["Slow()"].split()[1:3] == ["0/5", "not"] and rows["Slow()"].endswith("loss")
    cut = next(key for key in rows if key.startswith("DynamicBatchSize("))
    assert cut.endswith("…") or rows[cut].split("  ")[1].rstrip().endswith("…")
    assert rows[cut].split()[-1] == "win"  # the truncated label keeps its row's verdict
    assert "| toy |" in formatting.to_markdown(formatting.display(table))  # the full table is unchanged
    with pytest.raises(ValueError, match="width=60"):
        formatting.compact(table, width=60)
    assert formatting.compact(table.iloc[:0]) == "(no runs)"


def test_to_text_aligns_columns():
    frame = pd.DataFrame({"name": ["a", "bbb"], "value": [1.5, 12.25]})
    assert formatting.to_text(frame, right=("value",), indent="").splitlines() == [
        "name  value", "----  -----", "a       1.5", "bbb   12.25"]
    assert formatting.to_text(frame.iloc[:0]) == "  (no runs)"


def _threshold_records():
    base = curve([0.5, 0.62, 0.72, 0.82, 0.92])                    # meets 0.5 ... 0.9 at 1 ... 5 s
    grow = curve([0.5, 0.95]).assign(train_time_s=[1.0, 2.5])      # speedups 1, 0.8, 1.2, 1.6, 2
    return [record("toy", label, s, frame, target={"val_accuracy": 0.9})
            for s in range(5) for label, frame in (("Shuffle()", base), ("Grow()", grow))]


def test_the_threshold_table_and_the_trend_lines_read_as_text():
    table = thresholds.speedup_by_threshold(_threshold_records(), n_boot=100)
    shown = formatting.threshold_display(table)
    grow = shown[shown["selector"] == "Grow()"]
    assert list(grow["threshold"]) == ["val_accuracy >= 0.5", "val_accuracy >= 0.6", "val_accuracy >= 0.7",
                                       "val_accuracy >= 0.8", "val_accuracy >= 0.9"]
    assert list(grow["reached"]) == ["5/5"] * 5 and list(grow["speedup [95% CI]"])[-1] == "2 [2, 2]"
    assert {"bwd saving [95% CI]", "bwd verdict", "time (s)", "false-win rate"} <= set(shown.columns)
    assert list(grow["false-win rate"]) == ["3.1%"] * 5
    trend = thresholds.trends(table)
    lines = formatting.trend_summaries(trend, table)
    assert lines == ["toy, Grow(): 1x at val_accuracy >= 0.5 -> 2x at 0.9: grows (last/first 2, Spearman +0.90); "
                     "no difference -> loss -> win -> win -> win"]
    assert list(formatting.with_summaries(trend, table)["summary"]) == lines
    assert formatting.threshold_display(table.iloc[:0]).empty


def test_full_tables_prints_one_table_per_dataset_in_the_suites_order(tmp_path, capsys):
    full_tables = _script("full_tables")
    records = []
    for workload, studies in (("mnist", {"Shuffle()": 3, "Fast()": 3}), ("spirals", {"Shuffle()": 5, "Fast()": 2})):
        for selector, n in studies.items():
            for s in range(n):
                values = [0.5, 0.9, 0.9] if selector == "Shuffle()" else [0.9, 0.9, 0.9]
                records.append(_counted(selector, s, values, 10, workload=workload))
    summary.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=50).to_csv(tmp_path / "table.csv",
                                                                                          index=False)
    assert full_tables.main([str(tmp_path)]) == 0
    text = capsys.readouterr().out
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings == ["### spirals: val_accuracy >= 0.9, 2–5 seeds per selector",  # the suite's order, not a-z
                        "### mnist: val_accuracy >= 0.9, 3 seeds"]
    assert "| selector | reached | time to target (s) |" in text and "| best test accuracy |" in text
    assert "| Fast() | 3/3 |" in text and "| Fast() | 2/2 |" in text
    with pytest.raises(SystemExit):
        full_tables.main([str(tmp_path / "missing")])
    assert "report --out" in capsys.readouterr().err


def test_tuned_tables_prints_the_workloads_table_and_a_sentence_each(tmp_path, capsys):
    tuned_tables = _script("tuned_tables")
    records = []
    for s in range(5):
        records.append(_counted("Shuffle()", s, [0.5, 0.7, 0.9], 10, workload="spirals"))
        records.append(_counted("InfoBatch()", s, [0.9, 0.9, 0.9], 5, workload="spirals"))
    for r in records:  # validated on a split: the test set is reported next to it
        r["frame"]["test_accuracy"] = r["frame"]["val_accuracy"] - 0.01
    summary.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=100).to_csv(tmp_path / "table.csv",
                                                                                           index=False)
    assert tuned_tables.main([str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "| spirals (val 0.9) | Shuffle | 5/5 |" in text and "|  | InfoBatch | 5/5 |" in text
    assert text.splitlines()[0].endswith("| bwd verdict | test at target |") and "| 0.89 |" in text
    assert "- **spirals**: beats tuned Shuffle in wall-clock time: InfoBatch 3.00×" in text


def test_the_interval_note_states_coverage_and_false_win_rate_from_the_study_counts():
    records = [_run("Shuffle()", s, [0.5, 0.9]) for s in range(8)]
    records += [_run("Five()", s, [0.9]) for s in range(5)] + [_run("Eight()", s, [0.9]) for s in range(8)]
    records += [_run("Three()", s, [0.9]) for s in range(3)]
    table = summary.summarize(records, targets={None: {"val_accuracy": 0.9}})
    text = " ".join(formatting.interval_note(table, unit="studies"))
    assert "order-statistic interval of the median" in text
    assert "coverage ≥ 93.75% with 5 studies, ≥ 92.97% with 8 studies" in text
    assert "verdict = sign test" in text and "false-win rate ≤ 3.5% (3.1% with 5, 3.5% with 8)" in text
    assert "1 row with fewer than 5 paired studies" in text and "'n/a (< 5 studies)'" in text
    only_five = table[table["selector"].isin(["Shuffle()", "Five()"])]
    lines = formatting.interval_note(only_five, unit="seeds", width=80)
    assert "coverage ≥ 93.75% with 5 seeds" in " ".join(lines) and "false-win rate ≤ 3.1% when" in " ".join(lines)
    assert max(len(line) for line in lines) <= 80
    assert formatting.interval_note(table.iloc[:0]) == [] and formatting.interval_note(
        table.drop(columns="paired_studies")) == []
    assert formatting.percent(1 / 32) == "3.1%" and formatting.percent(float("nan")) == "–"


def test_the_aa_control_is_marked_and_warns_when_it_is_not_no_difference():
    records = []
    for workload, aa_step in (("calm", 1.0), ("noisy", 0.5)):
        for s in range(5):
            records.append(_run("Shuffle()", s, [0.5, 0.9], workload=workload))
            step = aa_step if workload == "noisy" else (0.9 if s % 2 else 1.1)
            records.append(_run("ShuffleAA()", s, [0.5, 0.9], workload=workload, step_s=step))
            records.append(_run("Fast()", s, [0.9], workload=workload))
    records += [_run(label, s, [0.5, 0.9], workload="short") for s in range(3) for label in ("Shuffle()",
                                                                                              "ShuffleAA()")]
    table = summary.summarize(records, targets={None: {"val_accuracy": 0.9}})
    assert table.set_index(["dataset", "selector"]).loc[("noisy", "ShuffleAA()"), "verdict"] == "win"
    shown = formatting.display(table)
    assert list(shown["note"]) == ["", "A/A control", ""] * 2 + ["", "A/A control"]
    assert list(shown["selector"])[1] == "ShuffleAA()"  # the label unchanged
    text = formatting.compact(table)
    block = text.split("\n\n")[0].splitlines()
    assert block[1].split()[-1] == "note" and block[4].split()[-2:] == ["A/A", "control"]
    assert block[4].split()[0] == "ShuffleAA()" and "no difference" in block[4]
    assert max(len(line) for line in text.splitlines()) <= 120
    assert formatting.aa_lines(table) == [
        "calm: A/A control ShuffleAA(): no difference",
        "noisy: A/A control ShuffleAA(): win",
        "  warning: noisy: the comparison on this workload is not calibrated (it reads 'win' against Shuffle() "
        "although nothing differs).",
        "short: A/A control ShuffleAA(): n/a (< 5 studies)",
        "  warning: short: the comparison on this workload is not calibrated (it gives no verdict, so calibration "
        "is unchecked)."]
    plain = summary.summarize([r for r in records if r["selector"] != "ShuffleAA()"],
                              targets={None: {"val_accuracy": 0.9}})
    assert formatting.aa_lines(plain) == [] and "note" not in formatting.display(plain)
    assert "note" not in formatting.compact(plain).splitlines()[1]


def test_edge_lines_sum_each_workloads_selectors():
    edges = pd.DataFrame({"workload": ["toy", "toy", "toy", "mnist"], "selector": ["A()", "B()", "B()", "A()"],
                          "dimension": ["horizon", "horizon", "ratio", "learning_rate"], "kind": ["uniform"] * 4,
                          "at_low": [1, 0, 0, 0], "at_high": [1, 1, 0, 0], "edge": [2, 1, 0, 0],
                          "studies": [5, 5, 5, 3]})
    assert formatting.edge_lines(edges) == ["toy: winners at a range edge: horizon 3/10, ratio 0/5",
                                            "mnist: winners at a range edge: learning_rate 0/3"]
    assert formatting.edge_lines(edges.iloc[:0]) == []


def test_search_lines_give_the_range_and_the_winning_indices():
    import pandas as pd

    from loop.bench.reporting.formatting import search_lines

    space = {"learning_rate": ["log-uniform", [0.003, 0.05]], "schedule": ["choice", ["constant"]]}
    records = [{"workload": "spirals", "search_space": space}] * 3 + [{"workload": "iris", "search_space": None}]
    won = pd.DataFrame({"workload": ["spirals"] * 4, "trial": [2, 0, 2, 5]})
    assert search_lines(records, won) == [
        "spirals: learning rate searched in [0.003, 0.05]; winning trial by index: 0: 1, 2: 2, 5: 1 of 4 studies"]
    assert search_lines([{"workload": "iris"}], pd.DataFrame()) == []
