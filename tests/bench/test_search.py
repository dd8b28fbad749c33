"""The search (``run_campaign(..., trials=K)``, ``--tune K``): paired quasirandom points, exact pruning, the range
test's cache, resumption (also of the committed layout-1 tuning trials), and the command line of a tuned run.
Tiny spirals workloads, a couple of seconds per trial."""

import dataclasses
import json
import math
import os
import shutil
import time

import numpy as np
import pytest

from loop.bench import records as records_lib, scoring, search, store, training
from loop.bench.campaign import run_campaign
from loop.bench.suites import SUITES, entry
from loop.bench.workloads import Hyperparameters
from loop.selectors import Shuffle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: What ``run_campaign`` returns when it trained nothing and found nothing.
EMPTY = {"ran": 0, "skipped": 0, "claimed": 0, "failed": 0, "pruned": 0, "not_applicable": 0, "unloadable": []}


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


class SlowWhenStalled(Shuffle):
    """A shuffle that sleeps 4 s in each plan when its learning rate is too small to learn anything."""

    def __call__(self, state):
        if float(state.optimizer.learning_rate) < 1e-6:
            time.sleep(4.0)
        return super().__call__(state)


@pytest.fixture
def tuned_entry():
    """Spirals (240 training points), a 3-epoch cap and a target that Shuffle meets after an epoch or two."""
    return entry("spirals", 3, load_options={"n_samples": 300}, target={"val_accuracy": 0.5}, stop_at_target=True)


def trial_files(out):
    found = []
    for root, _, files in os.walk(os.path.join(out, "runs")):
        found += [os.path.join(root, f) for f in files if f.endswith(".json")]
    return sorted(found)


def no_training(monkeypatch):
    """Makes any data loading or training fail the test: what must be skipped is never trained."""
    def fail(*args, **kwargs):
        raise AssertionError("a stored trial was trained again")

    monkeypatch.setattr(training, "train_one", fail)
    monkeypatch.setattr(training, "prepare_dataset", fail)


# ------------------------------------------------------------------------------------------- space and points
def test_shared_points_are_paired_across_selectors_and_own_points_come_from_another_stream():
    plain_shared, plain_own = search.search_space(0.01, Shuffle())
    knob_shared, knob_own = search.search_space(0.01, Knobbed())
    assert plain_own == [] and [name for name, *_ in knob_own] == ["ratio", "width"]
    assert plain_shared == knob_shared
    for study in (0, 1):
        plain = search.trial_points(plain_shared, plain_own, 6, study)
        knobbed = search.trial_points(knob_shared, knob_own, 6, study)
        assert [s for s, _ in plain] == [s for s, _ in knobbed]  # same lr, shape, horizon, warm-up per trial
        for shared, own in knobbed:
            assert 0.001 <= shared["learning_rate"] <= 0.03
            assert shared["schedule"] in ("constant", "cosine", "linear")
            assert 0.3 <= shared["horizon"] <= 1.0 and 0.0 <= shared["warmup"] <= 0.1
            assert 0.1 <= own["ratio"] <= 0.5 and own["width"] in (1, 2, 3)
        assert len({s["learning_rate"] for s, _ in plain}) == 6  # quasirandom: no repeats
    # Studies differ; the same study draws the same points again (fixed seeds).
    assert search.trial_points(plain_shared, [], 6, 0) != search.trial_points(plain_shared, [], 6, 1)
    assert search.trial_points(plain_shared, [], 6, 0) == search.trial_points(plain_shared, [], 6, 0)
    # The learning rates of 6 points spread over the log range: at least one in each half.
    rates = np.log([s["learning_rate"] for s, _ in plain])
    assert rates.min() < np.log(0.01 * math.sqrt(0.3)) < rates.max()


def test_points_are_hyper_parameters_that_keep_the_entrys_batch_size():
    shared, own = search.search_space(0.01, Knobbed())
    chosen = search.points(Hyperparameters(batch_size=16, learning_rate=0.5), shared, own, 3, 0)
    assert len(chosen) == 3
    for (hp, knobs, units), (point, own_point) in zip(chosen, search.trial_points(shared, own, 3, 0)):
        assert isinstance(hp, Hyperparameters) and hp.batch_size == 16
        assert {k: getattr(hp, k) for k in point} == point and knobs == own_point and units is None
    text = search.describe_point(*chosen[0][:2])
    assert text.startswith(f"lr {chosen[0][0].learning_rate:.3g}, {chosen[0][0].schedule}, horizon ")
    assert "ratio=" in text and "width=" in text


@pytest.mark.parametrize("space,match", [
    ({"ratio": ("normal", 0, 1)}, "not a dimension"),
    ({"ratio": ("uniform", 0.5, 0.1)}, "low <= high"),
    ({"ratio": ("log-uniform", 0.0, 0.1)}, "low > 0"),
    ({"width": ("int", 1.5, 3)}, "int needs integer bounds"),
    ({"ratio": ("choice",)}, "a choice needs at least one value"),
    ({"depth": ("int", 1, 3)}, "'depth', which is not one of its constructor arguments"),
])
def test_a_bad_tune_space_is_named(space, match):
    bad = type("Bad", (Knobbed,), {"tune_space": space})
    with pytest.raises(ValueError, match=match):
        search.search_space(0.01, bad())


def test_choice_and_int_dimensions_map_the_unit_interval_evenly():
    assert [search.map_unit("choice", ("a", "b", "c"), u) for u in (0.0, 0.34, 0.99, 1.0)] == ["a", "b", "c", "c"]
    assert [search.map_unit("int", (1, 3), u) for u in (0.0, 0.5, 0.999)] == [1, 2, 3]
    assert search.map_unit("log-uniform", (0.01, 1.0), 0.5) == pytest.approx(0.1)
    assert search.check_dimension("shape", ("choice", ["a", "b"])) == ("choice", ("a", "b"))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_trials_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="trials \\(--tune\\) must be a positive integer"):
        search.check_trials(bad)
    assert search.check_trials(np.int64(3)) == 3


# ------------------------------------------------------------------------------------------------ the campaign
def test_a_search_stores_trials_resumes_and_feeds_the_tables(tmp_path, tuned_entry):
    out = str(tmp_path / "out")
    summary = run_campaign([tuned_entry], ["shuffle", Knobbed()], 2, out, trials=2, progress=False)
    assert summary == {**EMPTY, "ran": 8, "pruned": summary["pruned"]}
    files = trial_files(out)
    assert len(files) == 8
    cached = os.path.join(out, "lr_range", "spirals.json")
    with open(cached) as f:
        centre = json.load(f)["center_lr"]
    low, high = centre * search.LR_RANGE[0], centre * search.LR_RANGE[1]
    trials = store.load(out)
    by_key = {(r["selector"], r["study"], r["trial"]): r for r in trials}
    assert len(by_key) == 8
    shared = ("learning_rate", "schedule", "horizon", "warmup")
    for study in (0, 1):
        for k in (0, 1):
            plain, knob = by_key[("Shuffle()", study, k)], by_key[("Knobbed()", study, k)]
            assert {n: plain["hyperparameters"][n] for n in shared} == {n: knob["hyperparameters"][n] for n in shared}
            assert low * 0.999 <= plain["hyperparameters"]["learning_rate"] <= high * 1.001
            assert plain["init_fingerprint"] == knob["init_fingerprint"]  # a study's trials start alike
            assert knob["trial_selector"].startswith("Knobbed(") and "ratio=" in knob["trial_selector"]
            assert set(knob["knobs"]) == {"ratio", "width"} and plain["knobs"] == {}
            assert plain["trial_selector"] == "Shuffle()"
            assert plain["schedule"]["learning_rate"] == plain["hyperparameters"]["learning_rate"]  # what trained
            assert plain["schedule"]["step_budget"] == 3 * 8  # 3 epochs of ceil(240 / 32) steps
            assert plain["status"] in ("ok", "pruned") and plain["target"] == {"val_accuracy": 0.5}
            assert (plain["time_limit_s"] is None) == (k == 0)  # trial 0 has no best to prune against yet
    # A rerun skips every stored trial (and the cached range test); a deleted trial is trained again, alone.
    before = {f: os.stat(f).st_mtime_ns for f in files + [cached]}
    os.remove(files[0])
    again = run_campaign([tuned_entry], ["shuffle", Knobbed()], 2, out, trials=2, progress=False)
    assert again["ran"] == 1 and again["skipped"] == 7
    assert all(os.stat(f).st_mtime_ns == before[f] for f in files[1:] + [cached])
    # Each study scores by its fastest trial; the tables pair the studies' winners by study.
    winners = scoring.study_winners(store.load(out))
    assert sorted((w["selector"], w["study"]) for w in winners) == [("Knobbed()", 0), ("Knobbed()", 1),
                                                                    ("Shuffle()", 0), ("Shuffle()", 1)]
    table = scoring.summarize(winners, n_boot=200)
    assert list(table["selector"]) == ["Shuffle()", "Knobbed()"] and list(table["seeds"]) == [2, 2]
    assert table["target_source"].iloc[0] == "fixed in the suite"


def test_pruning_stops_a_trial_that_can_no_longer_win_and_stores_it_as_pruned(tmp_path, tuned_entry, monkeypatch):
    """Study best so far from a fast trial; a slow selector's trial passes that time and is stopped there."""
    out = str(tmp_path / "out")
    run_campaign([tuned_entry], ["shuffle"], 1, out, trials=1, progress=False)
    (fast,) = store.load(out)
    best = scoring.time_to(fast, tuned_entry.workload.target)
    assert math.isfinite(best)
    never = dataclasses.replace(tuned_entry.workload, epochs=6, target={"val_accuracy": 0.999})  # never met
    ds, train, test = training.prepare_dataset(never)
    planned = records_lib.new(never, Hyperparameters(), selector="Slow()", study=0, time_limit_s=best)
    record = training.train_one(ds, train, test, never, Hyperparameters(), planned, lambda: Slow(delay=best + 0.05),
                                time_limit_s=best)
    assert record["status"] == records_lib.PRUNED and "pruned" in record["error"]
    assert len(record["frame"]) == 1 < record["loop_epochs"]  # stopped at its first evaluation past the limit
    assert record["frame"][-1]["train_time_s"] > best
    # Through the campaign: trial 0 sets the best; trial 1 (a learning rate too small to learn, in a selector that
    # then sleeps) passes it before the target and is pruned, stored with the time it ran.
    fixed = {"schedule": "constant", "horizon": 1.0, "warmup": 0.0}
    monkeypatch.setattr(search, "trial_points", lambda shared, own, count, study: [
        ({"learning_rate": 0.04, **fixed}, {}), ({"learning_rate": 1e-9, **fixed}, {})][:count])
    slow_out = str(tmp_path / "slow")
    spec = SlowWhenStalled()
    target = dataclasses.replace(tuned_entry, workload=dataclasses.replace(
        tuned_entry.workload, target={"val_accuracy": 0.65}))  # study 0 starts at 0.3, 0.7 after epoch 1
    summary = run_campaign([target], [spec], 1, slow_out, trials=2, progress=False)
    assert summary["pruned"] == 1 and summary["ran"] == 2
    trials = {r["trial"]: r for r in store.load(slow_out)}
    assert trials[0]["status"] == "ok" and trials[1]["status"] == records_lib.PRUNED
    assert trials[1]["time_limit_s"] == pytest.approx(scoring.time_to(trials[0], target.workload.target))
    assert trials[1]["frame"]["train_time_s"].iloc[-1] > trials[1]["time_limit_s"]
    assert len(trials[1]["frame"]) < trials[1]["loop_epochs"] and trials[1]["costs"]["wall_s"] > 0
    # The pruned trial never wins, and on resume nothing is trained again, under the same limit.
    assert [w["winner"] for w in scoring.study_winners(store.load(slow_out))] == [0]
    assert run_campaign([target], [spec], 1, slow_out, trials=2, progress=False) == {**EMPTY, "skipped": 2}


def test_a_study_without_a_hit_is_not_pruned_and_scores_as_a_miss(tmp_path, tuned_entry):
    out = str(tmp_path / "out")
    never = dataclasses.replace(tuned_entry, workload=dataclasses.replace(
        tuned_entry.workload, epochs=1, target={"val_accuracy": 0.9999}))
    summary = run_campaign([never], ["shuffle"], 1, out, trials=2, progress=False)
    assert summary == {**EMPTY, "ran": 2}  # no best time: nothing to prune against
    trials = store.load(out)
    assert all(r["status"] == "ok" and r["time_limit_s"] is None for r in trials)
    winners = scoring.study_winners(trials)
    assert len(winners) == 1 and winners[0]["trials"] == 2
    table = scoring.summarize(winners, n_boot=100)
    assert table["reached"].iloc[0] == 0.0 and math.isinf(table["time_to_target_s"].iloc[0])


def test_a_search_needs_a_target_a_trial_a_good_space_and_one_precision(tmp_path, tuned_entry, monkeypatch):
    no_training(monkeypatch)
    untargeted = dataclasses.replace(tuned_entry, workload=dataclasses.replace(
        tuned_entry.workload, target=None, stop_at_target=False))
    with pytest.raises(ValueError, match="spirals: a search scores each study by its fastest trial to a fixed target"):
        run_campaign([untargeted], ["shuffle"], 1, str(tmp_path), trials=1, progress=False)
    with pytest.raises(ValueError, match="trials \\(--tune\\) must be a positive integer"):
        run_campaign([tuned_entry], ["shuffle"], 1, str(tmp_path), trials=0, progress=False)
    bad = type("Bad", (Knobbed,), {"tune_space": {"ratio": ("normal", 0, 1)}})
    with pytest.raises(ValueError, match="search dimension 'Bad.ratio'"):
        run_campaign([tuned_entry], ["shuffle", bad()], 1, str(tmp_path), trials=1, progress=False)
    # A layout-1 tuning trial of another precision: the directory is refused before anything trains.
    budget = {"dataset": "spirals", "epochs": 3, "n_train": None, "n_test": None, "model": None, "batch_size": None,
              "learning_rate": 0.01, "load_options": {}, "target": {"val_accuracy": 0.5}, "stop_at_target": True}
    trial = tmp_path / "runs" / "spirals" / store.slug("Shuffle()") / "study_0" / "trial_0.json"
    trial.parent.mkdir(parents=True)
    trial.write_text(json.dumps({"format": 1, "trial_format": 1, "dataset": "spirals", "selector": "Shuffle()",
                                 "seed": 0, "budget": budget, "study": 0, "trial": 0, "untuned_selector": "Shuffle()",
                                 "trial_selector": "Shuffle()", "hyperparameters": {"learning_rate": 0.01},
                                 "precision": "mixed_bfloat16", "status": "ok", "frame": []}))
    (record,) = store.load(str(tmp_path))
    assert record["upgraded_from"] == "tuning trial, layout 1" and record["precision"] == "mixed_bfloat16"
    with pytest.raises(ValueError, match="holds trials trained in another precision than float32: mixed_bfloat16"):
        run_campaign([tuned_entry], ["shuffle"], 1, str(tmp_path), trials=1, progress=False)
    assert not (tmp_path / "lr_range").exists()  # not even the range test ran


def test_the_committed_layout1_tuning_trials_resume_without_training(tmp_path, monkeypatch):
    """results/tuned-v2 (layout-1 trials and range tests, in the repository) resumes under today's search: the same
    points, the same identities, the cached range test; nothing trains again."""
    out = tmp_path / "out"
    for name in ("Shuffle-c606dfca", "RS2-7f20ce81"):
        shutil.copytree(os.path.join(REPO, "results", "tuned-v2", "runs", "spirals", name),
                        out / "runs" / "spirals" / name)
    (out / "lr_range").mkdir()
    shutil.copy(os.path.join(REPO, "results", "tuned-v2", "lr_range", "spirals.json"), out / "lr_range")
    cached = (out / "lr_range" / "spirals.json").read_bytes()
    spirals = next(item for item in SUITES["tuned-v2"].entries if item.name == "spirals")
    no_training(monkeypatch)
    summary = run_campaign([spirals], ["shuffle", "rs2"], [0, 1], str(out), trials=6, progress=False)
    assert summary == {**EMPTY, "skipped": 2 * 2 * 6}
    assert (out / "lr_range" / "spirals.json").read_bytes() == cached
    rs2 = [r for r in store.load(str(out)) if r["selector"] == "RS2()" and r["study"] < 2]
    assert len(rs2) == 12 and all(set(r["knobs"]) == {"ratio"} and r["trial_selector"].startswith("RS2(ratio=")
                                  for r in rs2)


def test_the_tuned_suite_validates_on_splits_at_the_split_pilots_targets_and_names_unknown_selectors(capsys):
    """Each tuned workload reads a validation split, with the target and cap the committed split pilot chose."""
    from loop.bench.__main__ import _available

    tuned = SUITES["tuned-v2"]
    assert tuned.tune == 6 and tuned.studies == 3
    pilot_dir = os.path.join(REPO, "results", "split-pilot")
    for item in tuned.entries:
        w, hp = item.workload, item.hyperparameters
        assert w.validation == "split" and w.stop_at_target and hp.learning_rate is None
        assert hp.schedule == "constant"  # the schedule is a searched dimension, not the entry's
        with open(os.path.join(pilot_dir, f"{item.name}.json")) as f:
            pilot = json.load(f)
        assert pilot["validation"] == "split", item.name
        assert w.target == {pilot["metric"]: pilot["target"]}, item.name
        assert w.epochs == pilot["epoch_cap"], item.name
        assert {"shuffle", "rs2", "selective_backprop", "infobatch", "random_drop"} <= set(item.selectors)
    kept = _available(["shuffle", "no_such_selector", "infobatch:prune_ratio=0.3"])
    assert kept == ["shuffle", "infobatch:prune_ratio=0.3"]
    assert "'no_such_selector' is not a registered selector" in capsys.readouterr().err


def test_hyperparameters_refuse_bad_values_and_are_the_identitys_other_half():
    plain = Hyperparameters()
    assert plain.config() == {"learning_rate": None, "batch_size": None, "schedule": "constant", "warmup": 0.0,
                              "horizon": 1.0}
    cosine = dataclasses.replace(plain, schedule="cosine", horizon=0.5)
    assert cosine.config()["schedule"] == "cosine" and cosine.config()["horizon"] == 0.5
    for kwargs, message in [(dict(schedule="step"), "schedule 'step' is not a schedule shape"),
                            (dict(horizon=2), "horizon 2 must be a fraction of the step budget in \\(0, 1\\]"),
                            (dict(warmup=1.0), "warmup 1.0 must be a fraction of the horizon in \\[0, 1\\)"),
                            (dict(learning_rate=0), "learning_rate must be a positive number or None"),
                            (dict(batch_size=0), "batch_size must be a positive integer")]:
        with pytest.raises(ValueError, match=message):
            Hyperparameters(**kwargs)


def test_a_scheduled_trial_records_its_schedule(tiny_entry):
    hp = Hyperparameters(schedule="linear", warmup=0.1, learning_rate=0.02)
    ds, train, test = training.prepare_dataset(tiny_entry.workload)
    planned = records_lib.new(tiny_entry.workload, hp, selector="Shuffle()", study=0)
    record = training.train_one(ds, train, test, tiny_entry.workload, hp, planned, Shuffle)
    assert record is planned and record["status"] == "ok"
    assert record["schedule"] == {"class_name": "WarmupDecay", "learning_rate": 0.02, "horizon": 16,
                                  "shape": "linear", "warmup": 2, "alpha": 0.0, "step_budget": 16}


# ------------------------------------------------------------------------------------------- the command line
def test_tuned_cli_run_prints_the_study_table_and_resumes(tmp_path, capsys):
    from loop.bench.__main__ import main

    out = str(tmp_path / "out")
    args = ["--tune", "2", "--datasets", "spirals", "--selectors", "shuffle", "--seeds", "1", "--epochs", "2",
            "--n-train", "100", "--n-test", "40", "--target", "val_accuracy=0.5", "--out", out, "--no-plots",
            "--bootstrap", "10"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "Time to target of each study's winning trial" in captured.out and "Shuffle()" in captured.out
    assert "Tuning cost and pruning" in captured.out
    assert max(len(line) for line in captured.out.splitlines() if out not in line) <= 120  # every column: table.md
    with open(os.path.join(out, "table.md")) as f:
        markdown = f.read()
    assert "| spirals | Shuffle() |" in markdown and "### spirals: winning hyper-parameters" in markdown
    assert os.path.exists(os.path.join(out, "analysis", "analysis.md"))
    assert "1 workloads x 1 selectors x 1 studies x 2 trials in float32" in captured.err
    assert "spirals: range test suggests lr " in captured.err
    assert "loop.bench: trained 2 trials (" in captured.err and "skipped 0 already stored" in captured.err
    records = store.load(out)
    assert len(records) == 2 and all(r["target"] == {"val_accuracy": 0.5} for r in records)  # --target is fixed
    assert main(args) == 0
    assert "trained 0 trials (0 pruned, 0 failed, 0 not applicable), skipped 2 already stored" in \
        capsys.readouterr().err
    assert main(["report", "--out", out, "--no-plots"]) == 0
    assert "winning trial" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--schedule", "cosine", "--horizon", "2"], "horizon 2.0 must be a fraction of the step budget in (0, 1]"),
    (["--warmup", "1.0"], "warmup 1.0 must be a fraction of the horizon in [0, 1)"),
    (["--tune", "2", "--seeds", "auto:2:3"], "does not combine with a search"),
    (["--tune", "-1"], "--tune must be at least 0"),
    (["--suite", "untuned", "--tune", "2"], "spirals: a search scores each study by its fastest trial to a fixed target"),
])
def test_bad_schedule_and_search_arguments_exit_2(args, message, capsys, tmp_path):
    from loop.bench.__main__ import main

    assert main(args + ["--datasets", "spirals", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "x")


def test_a_dataset_named_on_the_command_line_keeps_the_full_suites_entry():
    import argparse

    from loop.bench.__main__ import _entries

    args = argparse.Namespace(datasets="mnist,spirals", epochs=None, n_train=None, n_test=None, selectors=None,
                              schedule=None, warmup=None, horizon=None)
    full = {item.name: item for item in SUITES["full"].entries}
    assert _entries(args, SUITES["default"]) == [full["mnist"], SUITES["default"].entries[0]]
    tuned = {item.name: item for item in SUITES["tuned-v2"].entries}
    args.datasets = "music_genre,spirals"
    assert _entries(args, SUITES["tuned-v2"]) == [tuned["music_genre"], tuned["spirals"]]
    args.datasets = "mnist,spirals"
    args.schedule, args.horizon, args.epochs = "cosine", 0.5, 3
    chosen = _entries(args, SUITES["default"])
    assert {(item.hyperparameters.schedule, item.hyperparameters.horizon) for item in chosen} == {("cosine", 0.5)}
    assert [item.workload.epochs for item in chosen] == [3, 3]
    assert chosen[0].hyperparameters.learning_rate == full["mnist"].hyperparameters.learning_rate  # kept
    assert chosen[0].selectors == full["mnist"].selectors  # the entry's selectors, unless --selectors names some
    args.selectors = "shuffle,freeze"
    assert all(item.selectors is None for item in _entries(args, SUITES["default"]))


def test_a_workloads_pool_is_dealt_to_studies_without_repeats_and_shared_across_selectors():
    shared, own = search.search_space(0.01, Knobbed(), clock="seconds")
    plain_shared, _ = search.search_space(0.01, object(), clock="seconds")
    studies = [search.pooled_points(shared, own, 8, s, "spirals") for s in range(5)]
    rates = [p[0]["learning_rate"] for study in studies for p in study]
    assert len(set(rates)) == 40  # one pool, dealt without replacement
    for s, study in enumerate(studies):
        plain = search.pooled_points(plain_shared, [], 8, s, "spirals")
        assert [p[0] for p in study] == [p[0] for p in plain]  # trial k shares its point across selectors
        for values, knobs, units in study:
            assert 0.003 <= values["learning_rate"] <= 0.05 and 0.1 <= values["horizon"] <= 1.0
            assert set(units) == {"learning_rate", "schedule", "horizon", "warmup", "ratio", "width"}
            assert all(0.0 <= u < 1.0 for u in units.values())
    # Another workload gets another deal, even one whose name shares a prefix.
    assert search.pooled_points(shared, own, 8, 0, "mnist") != search.pooled_points(shared, own, 8, 0, "mnist_noisy20")
    # No trial index is tied to one corner: the first trial's rate varies across studies over the range's halves.
    first = np.log([study[0][0]["learning_rate"] for study in studies])
    assert len(set(first)) == 5
    with pytest.raises(ValueError, match="needs 264 points of the search pool, which has 256"):
        search.pooled_points(shared, own, 8, 32, "spirals")
