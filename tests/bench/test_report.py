"""The one report of a results directory, on synthetic records (no training): untuned and tuned results."""

import io
import json
import os

import pandas as pd
import pytest
from synthetic_records import curve, record

from loop.bench.reporting import report

TARGET = {"val_accuracy": 0.9}


def _untuned():
    records = []
    for study in range(5):
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
    assert list(table["selector"]) == ["Shuffle()", "Freeze()"] and list(table["seeds"]) == [5, 5]
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
    assert "order-statistic interval of the median of the paired ratios, coverage ≥ 93.75% with 5 seeds" in printed
    assert "false-win rate ≤ 3.1% when" in " ".join(printed.split()) and "bootstrap" not in printed
    assert "coverage ≥ 93.75% with 5 seeds" in md and "| 3.1% | 1.50, 1.50, 1.50, 1.50, 1.50 |" in md
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
    assert "1 row with fewer than 5 paired studies" in " ".join(printed.split())  # RS2(); the baseline not counted
    assert "winners at a range edge" not in printed + md  # no search_units: no edge table, no error


def _searched_tuned(studies=5):
    """Five studies of 2 trials; the winner (trial 1) has its learning rate at the top of the range in 3."""
    records = []
    space = {"learning_rate": ["log-uniform", [0.001, 0.03]], "schedule": ["choice", ["constant", "cosine"]],
             "horizon": ["uniform", [0.3, 1.0]]}
    for study in range(studies):
        for selector in ("Shuffle()", "ShuffleAA()", "RS2()"):
            for trial, step in enumerate((2.0, 1.0)):
                units = {"learning_rate": 0.95 if (trial == 1 and study < 3) else 0.5, "schedule": 0.0,
                         "horizon": 0.5}
                values = [0.5, 0.95] if selector != "RS2()" or trial == 0 else [0.95]
                # trial 0 meets 0.5 at once (an easy level), trial 1 the target first
                frame = curve(values, seconds_per_eval=step * (0.4 if trial == 0 else 1.0), backprop_per_eval=100)
                if trial == 0:
                    frame["train_time_s"] = [0.1, 10.0][:len(values)]
                records.append(record("spirals", selector, study, frame, trial=trial, target=TARGET,
                                      search_units=units, search_space=space))
    return records


def test_a_searched_report_gives_the_edge_table_the_aa_line_and_each_levels_fastest_trial(tmp_path):
    out = str(tmp_path / "out")
    stream = io.StringIO()
    table = report(out, _searched_tuned(), stream=stream, plots=False)
    assert list(table["selector"]) == ["Shuffle()", "ShuffleAA()", "RS2()"]
    assert table.set_index("selector").loc["ShuffleAA()", "verdict"] == "no difference"
    md = open(os.path.join(out, "table.md")).read()
    tuning = md[md.index("### spirals: winners at a range edge"):]
    assert "| spirals | Shuffle() | learning_rate | log-uniform | 0 | 3 | 3 | 5 |" in tuning
    assert "| spirals | Shuffle() | horizon | uniform | 0 | 0 | 0 | 5 |" in tuning and "| schedule |" not in tuning
    assert "spirals: A/A control ShuffleAA(): no difference" in md and "warning" not in md
    assert "| A/A control |" in md
    printed = stream.getvalue()
    assert "  spirals: winners at a range edge: learning_rate 9/15, horizon 0/15" in printed
    assert "spirals: A/A control ShuffleAA(): no difference" in printed
    assert max(len(line) for line in printed.splitlines() if out not in line) <= 120
    # the thresholds took every trial: at the easy level, trial 0's 0.1 s (the target's winner needs 1 s)
    levels = pd.read_csv(os.path.join(out, "analysis", "thresholds.csv"))
    easiest = levels[(levels["level"] == 1) & (levels["selector"] == "Shuffle()")].iloc[0]
    assert easiest["time_to_threshold_s"] == pytest.approx(0.1)
    target = levels[(levels["level"] == levels["level"].max()) & (levels["selector"] == "Shuffle()")].iloc[0]
    assert target["time_to_threshold_s"] == pytest.approx(table.loc[0, "time_to_target_s"])


def test_an_aa_control_that_is_not_no_difference_warns(tmp_path):
    records = [r for r in _searched_tuned() if r["selector"] != "ShuffleAA()" or r["trial"] == 0]
    stream = io.StringIO()
    table = report(str(tmp_path / "out"), records, stream=stream, plots=False)
    assert table.set_index("selector").loc["ShuffleAA()", "verdict"] == "loss"  # only its slow trial left
    printed = stream.getvalue()
    assert "spirals: A/A control ShuffleAA(): loss" in printed
    assert "warning: spirals: the comparison on this workload is not calibrated" in printed


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
    assert list(table["selector"]) == ["Shuffle()", "Freeze()"] and list(table["seeds"]) == [5, 5]


def test_a_report_of_nothing_writes_empty_tables(tmp_path):
    out = str(tmp_path / "out")
    stream = io.StringIO()
    table = report(out, [], n_boot=50, stream=stream, plots=True)
    assert table.empty and "(no runs)" in stream.getvalue()
    assert os.path.exists(os.path.join(out, "table.csv")) and not os.path.exists(os.path.join(out, "analysis"))


def test_trials_from_two_machines_do_not_pair_unless_asked(tmp_path, capsys):
    import copy

    from loop.bench import records as records_lib
    from loop.bench import store
    from loop.bench.__main__ import main
    from loop.bench.campaign import run_campaign
    from loop.bench.scoring import MixedHardwareError, one_machine
    from loop.bench.suites import entry

    out = str(tmp_path / "out")
    run_campaign([entry("spirals", 1, load_options={"n_samples": 200})], ["shuffle"], 2, out, progress=False)
    records = store.load(out)
    assert one_machine(records) == records  # one machine: as they are
    other = copy.deepcopy(records[1])
    other["machine"] = {**other["machine"], "gpus": ["NVIDIA H100 80GB HBM3"]}
    with pytest.raises(MixedHardwareError, match=r"spirals: its trials ran on 2 machines \(.*1 trials; .*NVIDIA H100"):
        one_machine([records[0], other])
    relabelled = one_machine([records[0], other], allow_mixed=True)
    assert relabelled[0]["workload"] == f"spirals @ {records_lib.hardware(records[0])}"
    assert relabelled[1]["workload"].endswith("NVIDIA H100 80GB HBM3") and records[0]["workload"] == "spirals"
    unknown = {**copy.deepcopy(records[1]), "machine": None}  # older records pair with any machine
    assert one_machine([records[0], unknown]) == [records[0], unknown]
    # The command line refuses with exit 2 and writes no table; --allow-mixed-hardware reports per machine.
    path = store.trial_path(out, "spirals", other["selector"], other["study"], other["trial"])
    with open(path) as f:
        stored = json.load(f)
    store.write_json_atomic(path, {**stored, "machine": other["machine"]})
    assert main(["report", "--out", out, "--no-plots"]) == 2
    assert "its trials ran on 2 machines" in capsys.readouterr().err
    assert main(["report", "--out", out, "--no-plots", "--allow-mixed-hardware"]) == 0
    assert "spirals @ " in capsys.readouterr().out
