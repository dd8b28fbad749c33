"""Targets, paired speedups, bootstrap intervals and the tables, on synthetic runs (no training)."""

import math

import numpy as np
import pandas as pd
import pytest

from loop.bench import tables


def _run(selector, seed, val_acc, *, dataset="toy", status="ok", step_s=1.0, selection_s=0.1):
    n = len(val_acc)
    frame = pd.DataFrame({"epoch": np.arange(1, n + 1, dtype=float), "step": np.arange(1, n + 1),
                          "train_time_s": step_s * np.arange(1, n + 1),
                          "selection_time_s": selection_s * np.arange(1, n + 1),
                          "eval_time_s": 0.5 * np.arange(1, n + 1),
                          "loss": 1.0 - np.asarray(val_acc), "accuracy": np.asarray(val_acc) + 0.01,
                          "val_loss": 1.0 - np.asarray(val_acc), "val_accuracy": np.asarray(val_acc)})
    return {"dataset": dataset, "selector": selector, "seed": seed, "status": status,
            "error": None if status == "ok" else "FloatingPointError: nan", "metrics": ["accuracy"],
            "target_metric": "val_accuracy", "frame": frame}


def test_bootstrap_ci_contains_the_known_median_and_is_seeded():
    rng = np.random.default_rng(1)
    values = rng.normal(2.0, 0.1, size=200)
    low, high = tables.bootstrap_ci(values, n_boot=2000)
    assert low < np.median(values) < high
    assert low > 1.95 and high < 2.05
    assert tables.bootstrap_ci(values, n_boot=2000) == (low, high)


def test_bootstrap_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    trials, covered = 200, 0
    for t in range(trials):
        sample = rng.lognormal(0.0, 0.5, size=40)  # true median exp(0) = 1
        low, high = tables.bootstrap_ci(sample, n_boot=500, seed=t)
        covered += low <= 1.0 <= high
    assert 0.88 <= covered / trials <= 0.99


def test_bootstrap_ci_handles_infinite_ratios():
    assert tables.bootstrap_ci([math.inf, math.inf, math.inf], n_boot=100) == (math.inf, math.inf)
    low, high = tables.bootstrap_ci([0.0, 1.0, math.inf], n_boot=500)
    assert low == 0.0 and high == math.inf
    assert all(math.isnan(v) for v in tables.bootstrap_ci([]))


def test_paired_speedups_pair_by_seed_and_score_misses():
    base = {0: 10.0, 1: 10.0, 2: math.inf, 3: math.inf}
    sel = {0: 5.0, 1: math.inf, 2: 4.0, 3: math.inf, 9: 1.0}  # seed 9 has no baseline run: unpaired
    assert tables.paired_speedups(base, sel) == [2.0, 0.0, math.inf, 0.0]


def test_infer_target_is_99_percent_of_the_median_best_shuffle():
    records = [_run("Shuffle()", s, [0.5, best]) for s, best in enumerate([0.8, 0.9, 1.0])]
    records.append(_run("Other()", 0, [0.99, 0.99]))
    threshold, mode = tables.infer_target(records, "val_accuracy")
    assert mode == "max" and threshold == pytest.approx(0.99 * 0.9)


def test_infer_target_lower_is_better_uses_101_percent_of_the_median_best():
    records = []
    for seed, best in enumerate([3.0, 2.0, 4.0]):
        run = _run("Shuffle()", seed, [0.1, 0.2])
        run["frame"]["val_mae"] = [best + 1.0, best]
        run["target_metric"] = "val_mae"
        records.append(run)
    assert tables.infer_target(records, "val_mae") == (pytest.approx(3.03), "min")


def test_parse_targets():
    assert tables.parse_targets(["val_mae=3", "iris:val_accuracy=0.9"]) == {
        None: {"val_mae": 3.0}, "iris": {"val_accuracy": 0.9}}
    for bad in ["val_mae", "val_mae=x", "=3", "val_mae=inf"]:
        with pytest.raises(ValueError, match="bad target"):
            tables.parse_targets([bad])


def test_unreached_and_failed_runs_stay_in_the_table_as_not_reached():
    records = [_run("Shuffle()", s, [0.5, 0.8, 0.9]) for s in range(3)]
    records += [_run("Slow()", s, [0.4, 0.5, 0.6]) for s in range(3)]           # never reaches 0.891
    records += [_run("Fast()", s, [0.9, 0.9, 0.9], step_s=0.5) for s in range(2)]
    records.append(_run("Fast()", 2, [0.2], status="failed"))
    table = tables.summarize(records, n_boot=200).set_index("selector")
    assert list(table.index) == ["Shuffle()", "Slow()", "Fast()"]
    assert table.loc["Shuffle()", "speedup"] == 1.0 and table.loc["Shuffle()", "reached"] == 1.0
    assert table.loc["Shuffle()", "time_to_target_s"] == 3.0 and table.loc["Shuffle()", "epochs_to_target"] == 3.0
    slow = table.loc["Slow()"]
    assert slow["seeds"] == 3 and slow["reached"] == 0.0
    assert math.isinf(slow["time_to_target_s"]) and slow["speedup"] == 0.0
    fast = table.loc["Fast()"]
    assert fast["seeds"] == 3 and fast["failed"] == 1 and fast["reached"] == pytest.approx(2 / 3)
    assert fast["speedup"] == pytest.approx(6.0)  # ratios 6, 6, 0 (the failed seed)
    assert fast["time_to_target_s"] == 0.5 and "FloatingPointError" in fast["errors"]
    assert table.loc["Shuffle()", "selection_share"] == pytest.approx(0.1)
    shown = tables.display(table.reset_index())
    assert "not reached" in set(shown["time to target (s)"])
    assert "2/3 (1 failed)" in set(shown["reached"])
    assert "| Slow() |" in tables.to_markdown(shown)


def test_a_given_target_overrides_the_inferred_one():
    records = [_run("Shuffle()", 0, [0.5, 0.8]), _run("Other()", 0, [0.7, 0.7])]
    table = tables.summarize(records, targets=tables.parse_targets(["val_accuracy=0.6"]), n_boot=50)
    assert list(table["reached"]) == [1.0, 1.0]
    assert table.loc[1, "speedup"] == pytest.approx(2.0)
    assert set(table["target_source"]) == {"given"}


def test_seed000_keeps_seed_0_and_the_order_only_selectors_in_order():
    records = [_run(s, seed, [0.5, 0.6]) for s in ["Heterogeneous()", "Shuffle()", "DyBAT()", "Freeze()"]
               for seed in (0, 1)]
    first = tables.seed000(records)
    assert list(first["selector"]) == ["Freeze()", "Shuffle()", "Heterogeneous()"]
    assert list(first["best_test"]) == [0.6] * 3


def _counted(selector, seed, val_acc, forwarded_per_epoch, backprop_per_epoch, flops=None):
    record = _run(selector, seed, val_acc)
    epochs = np.arange(1, len(val_acc) + 1)
    record["frame"]["samples_forwarded"] = forwarded_per_epoch * epochs
    record["frame"]["samples_backpropagated"] = backprop_per_epoch * epochs
    if flops:
        record["flops_per_sample"] = flops
    return record


def test_sample_counts_to_target_and_their_paired_savings():
    # Shuffle reaches 0.9 at epoch 3 (300 forwarded, 300 backpropagated); the filter at epoch 2, forwarding
    # 200 per epoch but backpropagating only 50: 400 forwarded, 100 backpropagated.
    records = [_counted("Shuffle()", s, [0.5, 0.7, 0.9], 100, 100, flops=1000) for s in range(3)]
    records += [_counted("Filter()", s, [0.6, 0.9, 0.95], 200, 50, flops=1000) for s in range(3)]
    table = tables.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=200).set_index("selector")
    assert tables.counts_to_target(records[3], {"val_accuracy": (0.9, "max")}) == (400.0, 100.0)
    assert table.loc["Filter()", "forward_to_target"] == 400 and table.loc["Filter()", "backprop_to_target"] == 100
    # optimizer steps at the first evaluation that meets the target (the toy history's step is the epoch)
    assert tables.counts_to_target(records[3], {"val_accuracy": (0.9, "max")}, ("step",)) == (2.0,)
    assert table.loc["Filter()", "steps_to_target"] == 2 and table.loc["Shuffle()", "steps_to_target"] == 3
    assert table.loc["Filter()", "forward_speedup"] == pytest.approx(300 / 400)
    assert table.loc["Filter()", "backprop_speedup"] == pytest.approx(300 / 100)
    assert table.loc["Filter()", "backprop_speedup_ci_low"] == pytest.approx(3.0)
    # training FLOPs f * (F + 2 B): Shuffle 1000 * (300 + 600), the filter 1000 * (400 + 200)
    assert table.loc["Shuffle()", "train_gflops_to_target"] == pytest.approx(9e-4)
    assert table.loc["Filter()", "train_gflops_to_target"] == pytest.approx(6e-4)
    shown = tables.display(table.reset_index())
    assert "fwd saving [95% CI]" in shown and "train GFLOPs to target" in shown
    assert list(shown["steps to target"]) == ["3", "2"]


def test_runs_stored_without_forward_counts_leave_the_forward_columns_empty():
    records = [_run("Shuffle()", s, [0.5, 0.9]) for s in range(2)] + [_run("Other()", s, [0.9, 0.9]) for s in range(2)]
    for r in records:
        r["frame"]["samples_backpropagated"] = 10 * r["frame"]["step"]
    table = tables.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=100).set_index("selector")
    assert math.isnan(table.loc["Other()", "forward_to_target"]) and math.isnan(table.loc["Other()", "forward_speedup"])
    assert table.loc["Other()", "backprop_speedup"] == pytest.approx(2.0)


def test_verdict_reads_the_interval_against_1():
    assert tables.verdict(1.2, 3.0) == "win"
    assert tables.verdict(0.2, 0.9) == "loss"
    assert tables.verdict(0.9, 1.1) == "no difference"
    assert tables.verdict(1.0, 1.0) == "no difference" and tables.verdict(1.0, 2.0) == "no difference"
    assert tables.verdict(math.inf, math.inf) == "win" and tables.verdict(0.0, 0.0) == "loss"
    assert tables.verdict(math.nan, math.nan) == "n/a" and tables.verdict(None, None) == "n/a"
    assert set(tables.VERDICTS) == {"win", "loss", "no difference", "n/a"}


def test_the_table_marks_each_speedup_as_win_loss_or_no_difference():
    records = [_counted("Shuffle()", s, [0.5, 0.7, 0.9], 100, 100) for s in range(4)]
    records += [_counted("Fast()", s, [0.9, 0.9, 0.9], 200, 50) for s in range(4)]       # 3x sooner, 1/6 backprop
    records += [_counted("Slow()", s, [0.5, 0.5, 0.5], 100, 100) for s in range(4)]      # never reaches it
    mixed = [_counted("Mixed()", s, [0.5, 0.7, 0.9] if s % 2 else [0.9, 0.9, 0.9], 100, 100) for s in range(4)]
    records += mixed                                                                     # 1x and 3x: undecided
    table = tables.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=500).set_index("selector")
    assert table.loc["Fast()", "verdict"] == "win" and table.loc["Fast()", "backprop_verdict"] == "win"
    assert table.loc["Slow()", "verdict"] == "loss" and table.loc["Slow()", "backprop_verdict"] == "loss"
    assert table.loc["Mixed()", "verdict"] == "no difference"
    assert table.loc["Shuffle()", "verdict"] == "no difference"  # itself: interval [1, 1]
    shown = tables.display(table.reset_index())
    columns = list(shown.columns)
    assert columns.index("verdict") == columns.index("speedup [95% CI]") + 1
    assert columns.index("bwd verdict") == columns.index("bwd saving [95% CI]") + 1
    assert "fwd verdict" not in columns
    text = tables.to_markdown(shown)
    assert "| win |" in text and "| loss |" in text and "| no difference |" in text


def test_a_row_without_pairs_has_no_verdict():
    records = [_run("Shuffle()", 0, [0.5, 0.9]), _run("Other()", 5, [0.9, 0.9])]  # seed 5: no Shuffle() run to pair
    table = tables.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=50).set_index("selector")
    assert table.loc["Other()", "verdict"] == "n/a" and table.loc["Other()", "backprop_verdict"] == "n/a"


def test_one_paired_seed_is_no_verdict():
    """One pair has no spread: its 'interval' would be the value itself, and a 3x ratio would read as a win."""
    assert all(math.isnan(v) for v in tables.bootstrap_ci([3.0]))
    assert tables.bootstrap_ci([3.0], min_values=1) == (3.0, 3.0)
    records = [_counted("Shuffle()", 0, [0.5, 0.7, 0.9], 100, 100), _counted("Fast()", 0, [0.9, 0.9, 0.9], 200, 50)]
    table = tables.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=50).set_index("selector")
    assert table.loc["Fast()", "speedup"] == 3.0  # the point estimate stays
    assert table.loc["Fast()", "verdict"] == "n/a" and table.loc["Fast()", "backprop_verdict"] == "n/a"
    records += [_counted("Shuffle()", 1, [0.5, 0.7, 0.9], 100, 100), _counted("Fast()", 1, [0.9, 0.9, 0.9], 200, 50)]
    table = tables.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=50).set_index("selector")
    assert table.loc["Fast()", "verdict"] == "win"


def test_full_tables_prints_one_table_per_dataset_in_the_suites_order(tmp_path, capsys):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "benchmarks", "full_tables.py")
    spec = importlib.util.spec_from_file_location("full_tables", path)
    full_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(full_tables)

    records = []
    for dataset, seeds in (("mnist", {"Shuffle()": 3, "Fast()": 3}), ("spirals", {"Shuffle()": 5, "Fast()": 2})):
        for selector, n in seeds.items():
            for s in range(n):
                record = _counted(selector, s, [0.5, 0.9, 0.9] if selector == "Shuffle()" else [0.9, 0.9, 0.9], 10, 10)
                record["dataset"] = dataset
                records.append(record)
    tables.summarize(records, targets={None: {"val_accuracy": 0.9}}, n_boot=50).to_csv(tmp_path / "table.csv",
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


def test_compact_table_shows_five_columns_per_dataset_within_the_width():
    long = "DynamicBatchSize(base=DyBAT(delta=0.5, order='loss', shuffle=True), k0=16, k1=512, schedule='geometric')"
    records = []
    for dataset in ("toy", "other"):
        for seed in range(3):
            records.append(_run("Shuffle()", seed, [0.5, 0.8, 0.9], dataset=dataset))
            records.append(_run(long, seed, [0.85, 0.9, 0.9], dataset=dataset, step_s=0.5))
            records.append(_run("Slow()", seed, [0.1, 0.2, 0.3], dataset=dataset))
    table = tables.summarize(records, n_boot=200)
    text = tables.compact(table, width=100)
    blocks = text.split("\n\n")
    assert [b.splitlines()[0].split(":")[0] for b in blocks] == ["toy", "other"]
    assert blocks[0].splitlines()[0].startswith("toy: target val_accuracy >= ")
    lines = blocks[0].splitlines()
    assert lines[1].split() == ["selector", "reached", "time", "to", "target", "(s)", "speedup", "[95%", "CI]",
                                "verdict"]
    assert max(len(line) for line in text.splitlines()) <= 100
    rows = {line.split()[0]: line for line in lines[3:]}
    assert rows["Shuffle()"].split()[1:] == ["3/3", "3", "1", "(reference)", "–"]
    assert rows["Slow()"].split()[1:3] == ["0/3", "not"] and rows["Slow()"].endswith("loss")
    cut = next(key for key in rows if key.startswith("DynamicBatchSize("))
    assert cut.endswith("…") or rows[cut].split("  ")[1].rstrip().endswith("…")
    assert rows[cut].split()[-1] == "win"  # the truncated label keeps its row's verdict
    assert "| toy |" in tables.to_markdown(tables.display(table))  # the full table is unchanged
    with pytest.raises(ValueError, match="width=60"):
        tables.compact(table, width=60)
    assert tables.compact(table.iloc[:0]) == "(no runs)"


def test_to_text_aligns_columns():
    frame = pd.DataFrame({"name": ["a", "bbb"], "value": [1.5, 12.25]})
    assert tables.to_text(frame, right=("value",), indent="").splitlines() == [
        "name  value", "----  -----", "a       1.5", "bbb   12.25"]
