"""The one report of a results directory, on synthetic records (no training): untuned and tuned results."""

import io
import os

import pandas as pd
import pytest
from synthetic_records import curve, record

from loop.bench.reporting import report

TARGET = {"val_accuracy": 0.9}


def _untuned():
    records = []
    for study in range(3):
        records.append(record("spirals", "Shuffle()", study, curve([0.5, 0.8, 0.95], backprop_per_eval=100),
                              target=TARGET))
        records.append(record("spirals", "Freeze()", study, curve([0.6, 0.95], backprop_per_eval=100),
                              target=TARGET))
    records.append(record("boston", "Homogeneous()", 0, pd.DataFrame(), status="not_applicable",
                          error="regression"))
    return records


def _tuned():
    records = []
    for study in range(2):
        for trial, step in enumerate((2.0, 1.0, 3.0)):
            records.append(record("spirals", "Shuffle()", study, curve([0.5, 0.95], seconds_per_eval=step,
                                                                       backprop_per_eval=100),
                                  trial=trial, target=TARGET, learning_rate=0.01 * (trial + 1)))
            records.append(record("spirals", "RS2()", study, curve([0.95], seconds_per_eval=step,
                                                                   backprop_per_eval=50),
                                  trial=trial, target=TARGET, knobs={"ratio": 0.1 * (trial + 1)},
                                  status="ok" if trial < 2 else "pruned"))
    return records


def test_a_report_of_one_trial_studies_writes_the_tables_and_seed000_and_no_tuning_section(tmp_path):
    out = str(tmp_path / "out")
    stream = io.StringIO()
    table = report(out, _untuned(), n_boot=100, stream=stream, plots=False)
    assert list(table["selector"]) == ["Shuffle()", "Freeze()"] and list(table["seeds"]) == [3, 3]
    assert table.loc[1, "speedup"] == pytest.approx(1.5) and table.loc[1, "verdict"] == "win"
    for name in ("table.csv", "table.md", "seed000.csv", "analysis/analysis.md", "analysis/thresholds.csv"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    stored = pd.read_csv(os.path.join(out, "table.csv"))
    assert list(stored.columns) == list(table.columns)
    pd.testing.assert_frame_equal(stored.drop(columns="errors"), table.drop(columns="errors"), check_dtype=False)
    assert list(pd.read_csv(os.path.join(out, "seed000.csv"))["selector"]) == ["Freeze()", "Shuffle()"]
    md = open(os.path.join(out, "table.md")).read()
    assert md.startswith("## Time to target") and "## Seed 000 (seed 0 only)" in md
    assert "Not applicable (not trained): Homogeneous() on boston" in md
    assert "Tuning" not in md and "hyper-parameters" not in md
    printed = stream.getvalue()
    assert "Time to target (median over seeds)" in printed and "Seed 000: seed 0 only" in printed
    assert "spirals: target val_accuracy >= 0.9 (fixed in the suite)" in printed
    assert "Tuning cost" not in printed and not os.path.exists(os.path.join(out, "plots"))
    assert "median over seeds" in open(os.path.join(out, "analysis", "analysis.md")).read()


def test_a_report_of_multi_trial_studies_scores_the_winners_and_adds_the_tuning_sections(tmp_path):
    out = str(tmp_path / "out")
    stream = io.StringIO()
    table = report(out, _tuned(), n_boot=100, stream=stream, plots=True)
    # each study's winner: Shuffle's trial 1 (2 s), RS2's trial 1 (1 s; its trial 2 was pruned)
    assert list(table["seeds"]) == [2, 2]
    assert list(table["time_to_target_s"]) == [2.0, 1.0] and table.loc[1, "speedup"] == pytest.approx(2.0)
    assert not os.path.exists(os.path.join(out, "seed000.csv"))
    md = open(os.path.join(out, "table.md")).read()
    assert "## Seed 000" not in md and "## Tuning" in md
    assert "### spirals: tuning cost and pruning" in md and "### spirals: winning hyper-parameters" in md
    assert "| spirals | RS2() | 6 | 4 | 2 | 0 |" in md  # trials, ok, pruned, failed
    assert "| workload | selector | study | trial | time_to_target_s | learning_rate |" in md
    assert "| spirals | RS2() | 0 | 1 | 1 | 0.01 | constant | 0 | 1 | 0.2 |" in md  # study 0's winner, its knob
    printed = stream.getvalue()
    assert "Time to target of each study's winning trial (median over studies)" in printed
    assert "Tuning cost and pruning" in printed and "winning hyper-parameters are in table.md" in printed
    assert max(len(line) for line in printed.splitlines() if out not in line) <= 120
    assert os.path.getsize(os.path.join(out, "plots", "spirals.png")) > 0
    assert os.path.getsize(os.path.join(out, "analysis", "speedup_by_threshold.png")) > 0
    assert "median over studies" in open(os.path.join(out, "analysis", "analysis.md")).read()


def test_full_table_prints_what_table_md_holds(tmp_path):
    out = str(tmp_path / "out")
    stream = io.StringIO()
    report(out, _untuned(), n_boot=50, stream=stream, plots=False, full_table=True)
    md = open(os.path.join(out, "table.md")).read()
    assert stream.getvalue().startswith(md)


def test_a_report_without_records_loads_them_from_the_store(tmp_path):
    from loop.bench import store

    out = str(tmp_path / "out")
    for r in _untuned():
        stored = dict(r, frame=r["frame"].to_dict(orient="records"))
        store.write_json_atomic(store.trial_path(out, r["workload"], r["selector"], r["study"], r["trial"]), stored)
    table = report(out, n_boot=50, stream=io.StringIO(), plots=False)
    assert list(table["selector"]) == ["Shuffle()", "Freeze()"] and list(table["seeds"]) == [3, 3]


def test_a_report_of_nothing_writes_empty_tables(tmp_path):
    out = str(tmp_path / "out")
    stream = io.StringIO()
    table = report(out, [], n_boot=50, stream=stream, plots=True)
    assert table.empty and "(no runs)" in stream.getvalue()
    assert os.path.exists(os.path.join(out, "table.csv")) and not os.path.exists(os.path.join(out, "analysis"))
