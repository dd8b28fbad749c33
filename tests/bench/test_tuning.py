"""Tuning (``--tune K``): paired quasirandom points, exact pruning, resumption, and study-best records that the
tables read as runs.  Tiny spirals workloads, a couple of seconds per trial."""

import dataclasses
import glob
import json
import math
import os
import time

import numpy as np
import pytest

from loop.bench import runner, tables, tuned_report, tuning
from loop.bench.suites import SUITES, Budget
from loop.selectors import Shuffle


class Knobbed(Shuffle):
    """A shuffle with a tunable knob that changes nothing but its label (tests the selector's own dimensions)."""

    tune_space = {"ratio": ("uniform", 0.1, 0.5), "width": ("int", 1, 3)}

    def __init__(self, ratio=0.3, width=2):
        super().__init__()
        self.ratio, self.width = ratio, width


class Slow(Shuffle):
    """A shuffle that sleeps in every plan (selection time counts as training time): it cannot beat Shuffle."""

    def __init__(self, delay=0.4):
        super().__init__()
        self.delay = delay

    def __call__(self, state):
        time.sleep(self.delay)
        return super().__call__(state)


@pytest.fixture
def workload():
    """Spirals (240 training points), a 3-epoch cap and a target that Shuffle meets after an epoch or two."""
    return Budget(dataset="spirals", epochs=3, load_options={"n_samples": 300}, target={"val_accuracy": 0.5},
                  stop_at_target=True)


def trial_files(out):
    found = []
    for root, _, files in os.walk(os.path.join(out, "runs")):
        found += [os.path.join(root, f) for f in files if f.endswith(".json")]
    return sorted(found)


def test_shared_points_are_paired_across_selectors_and_own_points_come_from_another_stream():
    plain_shared, plain_own = tuning.search_space(0.01, Shuffle())
    knob_shared, knob_own = tuning.search_space(0.01, Knobbed())
    assert plain_own == [] and [name for name, *_ in knob_own] == ["ratio", "width"]
    assert plain_shared == knob_shared
    for study in (0, 1):
        plain = tuning.trial_points(plain_shared, plain_own, 6, study)
        knobbed = tuning.trial_points(knob_shared, knob_own, 6, study)
        assert [s for s, _ in plain] == [s for s, _ in knobbed]  # same lr, shape, horizon, warm-up per trial
        for shared, own in knobbed:
            assert 0.001 <= shared["learning_rate"] <= 0.03
            assert shared["schedule"] in ("constant", "cosine", "linear")
            assert 0.3 <= shared["horizon"] <= 1.0 and 0.0 <= shared["warmup"] <= 0.1
            assert 0.1 <= own["ratio"] <= 0.5 and own["width"] in (1, 2, 3)
        assert len({s["learning_rate"] for s, _ in plain}) == 6  # quasirandom: no repeats
    # Studies differ; the same study draws the same points again (fixed seeds).
    assert tuning.trial_points(plain_shared, [], 6, 0) != tuning.trial_points(plain_shared, [], 6, 1)
    assert tuning.trial_points(plain_shared, [], 6, 0) == tuning.trial_points(plain_shared, [], 6, 0)
    # The learning rates of 6 points spread over the log range: at least one in each half.
    rates = np.log([s["learning_rate"] for s, _ in plain])
    assert rates.min() < np.log(0.01 * math.sqrt(0.3)) < rates.max()


@pytest.mark.parametrize("space,match", [
    ({"ratio": ("normal", 0, 1)}, "not a dimension"),
    ({"ratio": ("uniform", 0.5, 0.1)}, "low <= high"),
    ({"ratio": ("log-uniform", 0.0, 0.1)}, "low > 0"),
    ({"depth": ("int", 1, 3)}, "'depth', which is not one of its constructor arguments"),
])
def test_a_bad_tune_space_is_named(space, match):
    bad = type("Bad", (Knobbed,), {"tune_space": space})
    with pytest.raises(ValueError, match=match):
        tuning.search_space(0.01, bad())


def test_choice_and_int_dimensions_map_the_unit_interval_evenly():
    assert [tuning.map_unit("choice", ("a", "b", "c"), u) for u in (0.0, 0.34, 0.99, 1.0)] == ["a", "b", "c", "c"]
    assert [tuning.map_unit("int", (1, 3), u) for u in (0.0, 0.5, 0.999)] == [1, 2, 3]
    assert tuning.map_unit("log-uniform", (0.01, 1.0), 0.5) == pytest.approx(0.1)


def test_tuning_stores_trials_resumes_and_feeds_the_tables(tmp_path, workload):
    out = str(tmp_path / "out")
    summary = tuning.run_tuned([workload], ["shuffle", Knobbed()], 2, out, 2, progress=False)
    assert summary["ran"] == 8 and summary["skipped"] == 0 and summary["failed"] == 0
    files = trial_files(out)
    assert len(files) == 8
    assert os.path.exists(os.path.join(out, "lr_range", "spirals.json"))
    trials = tuning.load_trials(out)
    by_key = {(r["selector"], r["study"], r["trial"]): r for r in trials}
    for study in (0, 1):
        for k in (0, 1):
            plain, knob = by_key[("Shuffle()", study, k)], by_key[("Knobbed()", study, k)]
            shared = ("learning_rate", "schedule", "horizon", "warmup")
            assert {n: plain["hyperparameters"][n] for n in shared} == {n: knob["hyperparameters"][n] for n in shared}
            assert plain["init_fingerprint"] == knob["init_fingerprint"]  # a study's trials start alike
            assert knob["trial_selector"].startswith("Knobbed(") and "ratio=" in knob["trial_selector"]
            assert plain["budget"]["learning_rate"] == plain["hyperparameters"]["learning_rate"]
            assert plain["schedule"]["step_budget"] == 3 * 8  # 3 epochs of ceil(240 / 32) steps
    # A rerun skips every stored trial; a deleted trial is run again, alone.
    before = {f: os.stat(f).st_mtime_ns for f in files}
    os.remove(files[0])
    again = tuning.run_tuned([workload], ["shuffle", Knobbed()], 2, out, 2, progress=False)
    assert again["ran"] == 1 and again["skipped"] == 7
    assert all(os.stat(f).st_mtime_ns == before[f] for f in files[1:])
    # Study-best records are run records: the tables pair them by study and measure speedups over tuned Shuffle.
    trials, bests = tuning.load_trials(out), tuned_report.study_bests(out)
    assert sorted((r["selector"], r["seed"]) for r in bests) == [("Knobbed()", 0), ("Knobbed()", 1),
                                                                 ("Shuffle()", 0), ("Shuffle()", 1)]
    for r in bests:
        times = [tuning.time_to_target(t, workload.target) for t in trials
                 if (t["selector"], t["study"]) == (r["selector"], r["seed"])]
        assert tuning.time_to_target(r, workload.target) == min(times)
        assert r["trials"] == 2 and r["dataset"] == "spirals"
    table = tables.summarize(bests, n_boot=200)
    assert list(table["selector"]) == ["Shuffle()", "Knobbed()"]
    assert list(table["seeds"]) == [2, 2]
    assert table["target_source"].iloc[0] == "fixed in the suite"
    shuffle_row = table[table["selector"] == "Shuffle()"].iloc[0]
    if shuffle_row["reached"] == 1.0:
        assert shuffle_row["speedup"] == pytest.approx(1.0)
    won = tuned_report.winners(out)
    assert set(won.columns) >= {"workload", "selector", "study", "trial", "learning_rate", "schedule", "ratio"}
    cost = tuned_report.costs(out)
    assert list(cost["trials"]) == [4, 4] and (cost["tuning_s"] > 0).all()


def test_pruning_stops_a_trial_that_can_no_longer_win_and_stores_it_as_pruned(tmp_path, workload, monkeypatch):
    """Study best so far from a fast trial; a slow selector's trial passes that time and is stopped there."""
    out = str(tmp_path / "out")
    slow_budget = dataclasses.replace(workload, epochs=6, target={"val_accuracy": 0.999})  # never met
    tuning.run_tuned([workload], ["shuffle"], 1, out, 1, progress=False)
    fast = tuning.load_trials(out)[0]
    best = tuning.time_to_target(fast, workload.target)
    assert math.isfinite(best)
    ds, train, test = runner.prepare_dataset(slow_budget)
    record = runner.train_one(ds, train, test, slow_budget, "Slow()", lambda: Slow(delay=best + 0.05), 0,
                              time_limit_s=best)
    assert record["status"] == runner.PRUNED and "pruned" in record["error"]
    assert len(record["frame"]) == 1 < record["loop_epochs"]  # stopped at its first evaluation past the limit
    assert record["frame"][-1]["train_time_s"] > best
    # Through the tuner: trial 0 sets the best; trial 1 (a learning rate too small to learn, in a selector that
    # then sleeps) passes it before the target and is pruned, stored with the time it ran.
    fixed = {"schedule": "constant", "horizon": 1.0, "warmup": 0.0}
    monkeypatch.setattr(tuning, "trial_points", lambda shared, own, count, study: [
        ({"learning_rate": 0.04, **fixed}, {}), ({"learning_rate": 1e-9, **fixed}, {})][:count])
    slow_out = str(tmp_path / "slow")
    spec = SlowWhenStalled()
    target = dataclasses.replace(workload, target={"val_accuracy": 0.65})  # seed 0 starts at 0.3, 0.7 after epoch 1
    summary = tuning.run_tuned([target], [spec], 1, slow_out, 2, progress=False)
    assert summary["pruned"] == 1 and summary["ran"] == 2
    trials = {r["trial"]: r for r in tuning.load_trials(slow_out)}
    assert trials[0]["status"] == "ok" and trials[1]["status"] == runner.PRUNED
    assert trials[1]["time_limit_s"] == pytest.approx(tuning.time_to_target(trials[0], target.target))
    cost = tuned_report.costs(slow_out).iloc[0]
    assert cost["pruned"] == 1 and cost["pruned_s"] > 0 and cost["saved_s"] > 0
    assert cost["pruned_full_s"] == pytest.approx(cost["pruned_s"] + cost["saved_s"])
    # The pruned trial never wins, and on resume nothing reruns.
    assert tuned_report.study_bests(slow_out)[0]["winner"] == 0
    assert tuning.run_tuned([target], [spec], 1, slow_out, 2, progress=False)["skipped"] == 2


class SlowWhenStalled(Shuffle):
    """A shuffle that sleeps 4 s in each plan when its learning rate is too small to learn anything."""

    def __call__(self, state):
        if float(state.optimizer.learning_rate) < 1e-6:
            time.sleep(4.0)
        return super().__call__(state)


def test_a_study_without_a_hit_scores_as_a_miss(tmp_path, workload):
    out = str(tmp_path / "out")
    never = dataclasses.replace(workload, epochs=1, target={"val_accuracy": 0.9999})
    tuning.run_tuned([never], ["shuffle"], 1, out, 2, progress=False)
    bests = tuned_report.study_bests(out)
    assert len(bests) == 1 and bests[0]["trials"] == 2
    table = tables.summarize(bests, n_boot=100)
    assert table["reached"].iloc[0] == 0.0 and math.isinf(table["time_to_target_s"].iloc[0])


def test_tuning_needs_a_target_and_at_least_one_trial(tmp_path, workload):
    with pytest.raises(ValueError, match="fixed target"):
        tuning.run_tuned([dataclasses.replace(workload, target=None, stop_at_target=False)], ["shuffle"], 1,
                         str(tmp_path), 1, progress=False)
    with pytest.raises(ValueError, match="trials \\(--tune\\) must be a positive integer"):
        tuning.run_tuned([workload], ["shuffle"], 1, str(tmp_path), 0, progress=False)
    trial = tmp_path / "runs" / "spirals" / "Shuffle-x" / "study_0" / "trial_0.json"
    trial.parent.mkdir(parents=True)
    trial.write_text(json.dumps({"trial_format": tuning.TRIAL_FORMAT, "precision": "mixed_bfloat16"}))
    with pytest.raises(ValueError, match="holds tuning trials trained in mixed_bfloat16, not float32"):
        tuning.run_tuned([workload], ["shuffle"], 1, str(tmp_path), 1, progress=False)


def test_the_tuned_suite_validates_on_splits_at_the_split_pilots_targets_and_names_unknown_selectors(capsys):
    """Each tuned workload reads a validation split, with the target and cap the committed split pilot chose."""
    tuned = SUITES["tuned"]
    assert tuned.tune == 6 and tuned.seeds == 3
    pilot_dir = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "results", "split-pilot")
    for budget in tuned.budgets:
        assert budget.validation == "split" and budget.stop_at_target and budget.learning_rate is None
        assert budget.schedule == "constant"  # the schedule is a tuned dimension, not the budget's
        with open(os.path.join(pilot_dir, f"{budget.name}.json")) as f:
            pilot = json.load(f)
        assert pilot["validation"] == "split", budget.name
        assert budget.target == {pilot["metric"]: pilot["target"]}, budget.name
        assert budget.epochs == pilot["epoch_cap"], budget.name
        assert {"shuffle", "rs2", "selective_backprop", "infobatch", "random_drop"} <= set(budget.selectors)
    kept = tuning.available(["shuffle", "no_such_selector", "infobatch:prune_ratio=0.3"])
    assert kept == ["shuffle", "infobatch:prune_ratio=0.3"]
    assert "'no_such_selector' is not a registered selector" in capsys.readouterr().err


def test_budget_identity_is_unchanged_at_the_default_schedule():
    plain = Budget(dataset="spirals", epochs=3)
    assert set(plain.config()) == {"dataset", "epochs", "n_train", "n_test", "model", "batch_size", "learning_rate",
                                   "load_options", "target", "stop_at_target"}
    cosine = dataclasses.replace(plain, schedule="cosine", horizon=0.5)
    assert cosine.config()["schedule"] == "cosine" and cosine.config()["horizon"] == 0.5
    assert "warmup" not in cosine.config()
    with pytest.raises(ValueError, match="spirals: schedule 'step' is not a schedule shape"):
        Budget(dataset="spirals", epochs=3, schedule="step")
    # The full suite's stored runs (results/full, in the repository) keep their identity.
    stored = glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "results", "full", "runs", "spirals", "*",
                                    "seed_0.json"))
    assert stored
    with open(stored[0]) as f:
        assert json.load(f)["budget"] == {b.dataset: b for b in SUITES["full"].budgets}["spirals"].config()


def test_a_scheduled_run_records_its_schedule(tmp_path, tiny_budget):
    budget = dataclasses.replace(tiny_budget, schedule="linear", warmup=0.1, learning_rate=0.02)
    ds, train, test = runner.prepare_dataset(budget)
    record = runner.train_one(ds, train, test, budget, "Shuffle()", Shuffle, 0)
    assert record["status"] == "ok"
    assert record["schedule"] == {"class_name": "WarmupDecay", "learning_rate": 0.02, "horizon": 16,
                                  "shape": "linear", "warmup": 2, "alpha": 0.0, "step_budget": 16}


def test_tuned_cli_run_prints_the_study_table_and_resumes(tmp_path, capsys):
    from loop.bench.__main__ import main

    out = str(tmp_path / "out")
    args = ["--tune", "2", "--datasets", "spirals", "--selectors", "shuffle", "--seeds", "1", "--epochs", "2",
            "--n-train", "100", "--n-test", "40", "--target", "val_accuracy=0.5", "--out", out, "--no-plots",
            "--bootstrap", "10"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "## spirals: studies' best times (tuned, 1 studies)" in captured.out and "Shuffle()" in captured.out
    assert max(len(line) for line in captured.out.splitlines() if out not in line) <= 120  # every column: tuned.md
    with open(os.path.join(out, "tuned.md")) as f:
        assert "| Shuffle() |" in f.read()
    assert os.path.exists(os.path.join(out, "analysis", "analysis.md"))
    assert "ran 2 trials" in captured.err
    assert main(args) == 0
    assert "ran 0 trials (0 pruned), skipped 2 already stored" in capsys.readouterr().err
    assert main(["report", "--out", out]) == 0
    assert "studies' best times" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--schedule", "cosine", "--horizon", "2"], "horizon must be a number in (0, 1]"),
    (["--warmup", "1.0"], "warmup must be a fraction of the horizon below 1"),
    (["--tune", "2", "--seeds", "auto:2:3"], "does not combine with tuning"),
    (["--tune", "-1"], "--tune must be at least 0"),
])
def test_bad_schedule_and_tuning_arguments_exit_2(args, message, capsys, tmp_path):
    from loop.bench.__main__ import main

    assert main(args + ["--datasets", "spirals", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "x")


def test_a_dataset_named_on_the_command_line_keeps_the_full_suites_budget():
    import argparse

    from loop.bench.__main__ import _budgets

    args = argparse.Namespace(datasets="mnist,spirals", epochs=None, n_train=None, n_test=None, selectors=None,
                              schedule=None, warmup=None, horizon=None)
    full = {b.dataset: b for b in SUITES["full"].budgets}
    assert _budgets(args, SUITES["default"]) == [full["mnist"], SUITES["default"].budgets[0]]
    tuned = {b.name: b for b in SUITES["tuned"].budgets}
    args.datasets = "music_genre,spirals"
    assert _budgets(args, SUITES["tuned"]) == [tuned["music_genre"], tuned["spirals"]]
    args.datasets = "mnist,spirals"
    args.schedule, args.horizon = "cosine", 0.5
    assert {(b.schedule, b.horizon) for b in _budgets(args, SUITES["default"])} == {("cosine", 0.5)}
