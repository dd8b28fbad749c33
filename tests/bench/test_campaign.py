"""The campaign loop on tiny trainings: pairing by study, atomic files, resumption, the skip rule over stored
results of every layout, claims, failures, workload variants and ``--seeds auto``."""

import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from loop import datasets
from loop.bench import auto_seeds, labels, records as records_lib, scoring, store, training
from loop.bench.campaign import run_campaign
from loop.bench.suites import Entry, entry
from loop.bench.workloads import Hyperparameters, Workload
from loop.datasets.dataset import Dataset
from loop.datasets.models import mlp_regressor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: What ``run_campaign`` returns when it trained nothing and found nothing.
EMPTY = {"ran": 0, "skipped": 0, "claimed": 0, "failed": 0, "pruned": 0, "not_applicable": 0, "unloadable": []}


def run_files(out):
    found = []
    for root, _, files in os.walk(os.path.join(out, "runs")):
        found += [os.path.join(root, f) for f in files]
    return sorted(found)


def no_training(monkeypatch):
    """Makes any training fail the test: what must be skipped is never trained."""
    def train_one(*args, **kwargs):
        raise AssertionError("a stored trial was trained again")

    monkeypatch.setattr(training, "train_one", train_one)


def test_tiny_campaign_pairs_trials_by_study_and_stores_full_histories(tmp_path, tiny_entry):
    out = str(tmp_path / "out")
    summary = run_campaign([tiny_entry], ["shuffle", "dybat:delta=0.3"], 2, out, progress=False)
    assert summary == {**EMPTY, "ran": 4}
    for selector in ("Shuffle()", "DyBAT(delta=0.3)"):
        for study in (0, 1):
            assert os.path.exists(store.trial_path(out, "spirals", selector, study, 0))
    records = store.load(out)
    assert len(records) == 4 and len(run_files(out)) == 4
    for study in (0, 1):
        prints = {r["init_fingerprint"] for r in records if r["study"] == study}
        assert len(prints) == 1, "every selector of a study must start from the same weights"
    assert len({r["init_fingerprint"] for r in records}) == 2  # another study, other weights
    for r in records:
        assert r["layout"] == records_lib.LAYOUT and r["trial"] == 0 and r["status"] == "ok"
        assert r["workload"] == r["dataset"] == "spirals"
        assert r["workload_config"] == tiny_entry.workload.config()
        assert r["hyperparameters"] == tiny_entry.hyperparameters.config() and r["knobs"] == {}
        assert r["costs"]["wall_s"] > 0 and r["costs"]["flops_per_sample"] > 0 and r["machine"]["cores"] >= 1
        assert 0 <= r["costs"]["other_cpu_share"] <= 1  # measured (Linux): loop.bench.contention
        assert len(r["frame"]) == r["loop_epochs"]
        assert (r["frame"]["train_time_s"] >= r["frame"]["selection_time_s"]).all()
    shuffle = [r for r in records if r["selector"] == "Shuffle()"]
    dybat = [r for r in records if r["selector"] != "Shuffle()"]
    assert all(list(r["frame"]["epoch"]) == [1.0, 2.0] for r in shuffle)
    # DyBAT trains a fraction of its (drop_last) batches per epoch; it gets about the baseline's gradient steps.
    assert all(r["loop_epochs"] > 2 and r["frame"]["step"].iloc[-1] >= 0.8 * shuffle[0]["frame"]["step"].iloc[-1]
               for r in dybat)
    assert {r["selector"] for r in records} == {r["trial_selector"] for r in records} == {"Shuffle()",
                                                                                          "DyBAT(delta=0.3)"}
    table = scoring.summarize(records, n_boot=100)
    assert list(table["seeds"]) == [2, 2] and list(table["selector"]) == ["Shuffle()", "DyBAT(delta=0.3)"]


def test_resumption_trains_only_what_is_missing_and_sweeps_dead_writers_temp_files(tmp_path, tiny_entry):
    out = str(tmp_path / "out")
    run_campaign([tiny_entry], ["shuffle", "freeze"], 2, out, progress=False)
    files = run_files(out)
    assert len(files) == 4
    before = {f: os.stat(f).st_mtime_ns for f in files}
    deleted = files[1]
    os.remove(deleted)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a writer that is gone (killed mid-write): its temporary file is swept
    stale = f"{files[2]}.tmp-{gone.pid}"
    with open(stale, "w") as f:
        f.write('{"layout": 2, "trunc')
    live = f"{files[3]}.tmp-{os.getpid()}"  # a writer still at work: left alone
    with open(live, "w") as f:
        f.write("{")
    summary = run_campaign([tiny_entry], ["shuffle", "freeze"], 2, out, progress=False)
    assert summary == {**EMPTY, "ran": 1, "skipped": 3}
    assert not os.path.exists(stale) and os.path.exists(live)
    os.remove(live)
    for f in files:
        assert os.path.exists(f)
        if f != deleted:
            assert os.stat(f).st_mtime_ns == before[f]
    assert len(store.load(out)) == 4


def test_an_unreadable_result_file_is_named_left_out_and_trained_again(tmp_path, tiny_entry):
    out = str(tmp_path / "out")
    run_campaign([tiny_entry], ["shuffle"], 2, out, progress=False)
    broken = store.trial_path(out, "spirals", "Shuffle()", 1, 0)
    with open(broken, "w") as f:
        f.write('{"layout": 2, "workload": "spir')  # truncated by hand
    with pytest.warns(store.StoreWarning, match=re.escape(f"result file {broken!r}: truncated or not JSON")):
        assert [r["study"] for r in store.load(out)] == [0]
    with pytest.warns(store.StoreWarning, match="its trial is trained again and the file rewritten"):
        summary = run_campaign([tiny_entry], ["shuffle"], 2, out, progress=False)
    assert summary["ran"] == 1 and summary["skipped"] == 1
    assert sorted(r["study"] for r in store.load(out)) == [0, 1]


@pytest.mark.parametrize("content", [
    '{"layout": 2}',                                                   # a record's fields edited away
    '{"layout": 2, "workload": "toy", "workload_config": {}, "hyperparameters": {}, "selector": "Shuffle()", '
    '"trial_selector": "Shuffle()", "study": "zero", "trial": 0, "status": "ok"}',
    '{"format": 1, "budget": {"dataset": "toy", "epochs": 1}}',      # a layout-1 run without selector and seed
    '{"format": 1, "budget": {"dataset": "toy", "epochs": "one"}, "selector": "Shuffle()", "seed": 0}',
    "[1, 2]",
])
def test_a_file_that_is_no_record_is_named_not_a_traceback_and_trained_again(content, tmp_path, monkeypatch):
    fake = FakeRuns(monkeypatch)
    out = str(tmp_path / "out")
    path = store.trial_path(out, "toy", "Shuffle()", 0, 0)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write(content)
    with pytest.warns(store.StoreWarning, match="not a trial record this build reads; left out of the tables"):
        assert store.load(out) == []
    with pytest.warns(store.StoreWarning, match="its trial is trained again and the file rewritten"):
        assert run_campaign([TOY], ["shuffle"], 1, out, progress=False) == {**EMPTY, "ran": 1}
    assert fake.calls == [("Shuffle()", 0)] and [r["status"] for r in store.load(out)] == ["ok"]


def test_a_changed_workload_or_hyper_parameter_is_trained_again(tmp_path, tiny_entry):
    out = str(tmp_path / "out")
    run_campaign([tiny_entry], ["shuffle"], 1, out, progress=False)
    longer = dataclasses.replace(tiny_entry, workload=dataclasses.replace(tiny_entry.workload, epochs=3))
    assert run_campaign([longer], ["shuffle"], 1, out, progress=False)["ran"] == 1
    (record,) = store.load(out)  # the trial's file, rewritten
    assert len(record["frame"]) == 3 and record["workload_config"]["epochs"] == 3
    faster = dataclasses.replace(longer, hyperparameters=Hyperparameters(learning_rate=0.02))
    assert run_campaign([faster], ["shuffle"], 1, out, progress=False)["ran"] == 1
    (record,) = store.load(out)
    assert record["hyperparameters"]["learning_rate"] == 0.02 and record["schedule"]["learning_rate"] == 0.02
    assert run_campaign([faster], ["shuffle"], 1, out, progress=False) == {**EMPTY, "skipped": 1}


# ----------------------------------------------------------------------------- results stored by layout 1
#: A layout-1 budget of the tiny spirals entry, as the runner wrote it (fields at their defaults left out).
LAYOUT1_BUDGET = {"dataset": "spirals", "epochs": 2, "n_train": None, "n_test": None, "model": None,
                  "batch_size": None, "learning_rate": None, "load_options": {"n_samples": 300}, "target": None,
                  "stop_at_target": False}


def layout1_run(out, study, budget=LAYOUT1_BUDGET, selector="Shuffle()", **fields):
    """Writes a small layout-1 run (``runs/<dataset>/<slug>/seed_<s>.json``, no precision: before they were
    recorded) and returns its path."""
    path = store.legacy_run_path(out, budget.get("workload") or budget["dataset"], selector, study)
    frame = [{"epoch": float(e), "step": 8 * e, "samples_seen": 240 * e, "samples_forwarded": 240 * e,
              "samples_backpropagated": 240 * e, "train_time_s": 0.5 * e, "selection_time_s": 0.0,
              "eval_time_s": 0.1, "loss": 0.7, "accuracy": 0.5 + 0.1 * e, "val_loss": 0.7,
              "val_accuracy": 0.5 + 0.1 * e} for e in (1, 2)]
    record = {"format": 1, "dataset": budget["dataset"], "selector": selector, "seed": study, "budget": budget,
              "task": "classification", "metrics": ["accuracy"], "loss": "sparse_categorical_crossentropy",
              "target_metric": "val_accuracy", "n_train": 240, "n_test": 60, "status": "ok", "error": None,
              "frame": frame, "wall_s": 1.25, "model": "mlp", "init_fingerprint": 1.0 + study, "loop_epochs": 2,
              "flops_per_sample": 8844, **fields}
    store.write_json_atomic(path, record)
    return path


def test_a_stored_layout1_run_is_found_by_the_skip_rule_and_not_trained_again(tmp_path, tiny_entry, monkeypatch):
    out = str(tmp_path / "out")
    paths = [layout1_run(out, study) for study in (0, 1)]
    before = {p: open(p).read() for p in paths}
    no_training(monkeypatch)
    assert run_campaign([tiny_entry], ["shuffle"], 2, out, progress=False) == {**EMPTY, "skipped": 2}
    assert {p: open(p).read() for p in paths} == before  # read in place, never rewritten
    assert not glob.glob(os.path.join(out, "runs", "*", "*", "study_*"))
    records = sorted(store.load(out), key=lambda r: r["study"])
    assert [(r["study"], r["trial"]) for r in records] == [(0, 0), (1, 0)]
    for r in records:  # upgraded: today's fields, with their defaults filled in
        assert r["layout"] == records_lib.LAYOUT and r["upgraded_from"] == "run, layout 1"
        assert r["workload"] == "spirals" and r["selector"] == r["trial_selector"] == "Shuffle()"
        assert r["workload_config"] == tiny_entry.workload.config()
        assert r["hyperparameters"] == tiny_entry.hyperparameters.config()
        assert r["precision"] == "float32" and r["machine"] is None
        assert r["costs"] == {"wall_s": 1.25, "flops_per_sample": 8844} and len(r["frame"]) == 2
    assert store.precisions(out) == {"float32": os.path.relpath(paths[0], out)}
    with pytest.raises(ValueError, match="holds trials trained in another precision than mixed_bfloat16: float32"):
        run_campaign([tiny_entry], ["shuffle"], 2, out, progress=False, precision="mixed_bfloat16")


def test_a_changed_workload_field_trains_a_stored_layout1_run_again_and_replaces_it(tmp_path, tiny_entry,
                                                                                     monkeypatch):
    out = str(tmp_path / "out")
    legacy = layout1_run(out, 0)
    longer = dataclasses.replace(tiny_entry, workload=dataclasses.replace(tiny_entry.workload, epochs=3))
    summary = run_campaign([longer], ["shuffle"], 1, out, progress=False)
    assert summary == {**EMPTY, "ran": 1}
    assert os.path.exists(store.trial_path(out, "spirals", "Shuffle()", 0, 0))
    (record,) = store.load(out)  # one trial per study: the stale layout-1 run does not stay beside it
    assert not os.path.exists(legacy)
    assert record["layout"] == records_lib.LAYOUT and record["workload_config"]["epochs"] == 3
    assert len(record["frame"]) == 3
    # A field added after layout 1, away from its default, is another workload too.
    layout1_run(out, 1)
    no_training(monkeypatch)
    split = dataclasses.replace(tiny_entry, workload=dataclasses.replace(tiny_entry.workload, validation="split"))
    with pytest.raises(AssertionError, match="trained again"):
        run_campaign([split], ["shuffle"], [1], out, progress=False)
    assert run_campaign([tiny_entry], ["shuffle"], [1], out, progress=False) == {**EMPTY, "skipped": 1}


def test_the_full_suites_committed_runs_are_found_by_the_skip_rule(tmp_path, monkeypatch):
    """results/full (layout 1, in the repository) resumes under today's workloads: nothing trains again."""
    from loop.bench.suites import FULL

    out = tmp_path / "out"
    for name in ("Shuffle-c606dfca", "DyBAT-4ae5d099"):
        shutil.copytree(os.path.join(REPO, "results", "full", "runs", "spirals", name),
                        out / "runs" / "spirals" / name)
    spirals = next(item for item in FULL.entries if item.name == "spirals")
    no_training(monkeypatch)
    assert run_campaign([spirals], ["shuffle", "dybat"], FULL.studies, str(out), progress=False) == {
        **EMPTY, "skipped": 2 * FULL.studies}
    stored = [r for r in store.load(str(out)) if r["study"] < FULL.studies]
    assert len(stored) == 2 * FULL.studies
    assert all(r["workload_config"] == spirals.workload.config() for r in stored)
    assert all(r["hyperparameters"] == spirals.hyperparameters.config() for r in stored)


# ------------------------------------------------------------------------------------------------ claims
class FakeRuns:
    """Stands in for ``training.train_one`` and ``training.prepare_dataset``: no training, a record per call.

    Seconds to target per selector label and study: Freeze() is clearly twice as fast, Homogeneous() is as fast
    as Shuffle() up to noise on either side of 1.
    """

    def __init__(self, monkeypatch, stop_after=None):
        self.calls, self.stop_after = [], stop_after
        monkeypatch.setattr(training, "prepare_dataset", lambda workload, data_dir=None: (None, None, None))
        monkeypatch.setattr(training, "train_one", self.train_one)

    @staticmethod
    def seconds(label, study):
        base = 10.0 + 0.3 * ((study * 7) % 5)
        if label == "Freeze()":
            return base / (2.0 + 0.05 * (-1) ** study)
        if label == "Homogeneous()":
            return base * (1.0 + 0.08 * (-1) ** study * (1 + study % 3))
        return base

    def train_one(self, ds, train, test, workload, hyperparameters, record, make_selector, *, time_limit_s=None,
                  calibration=None, irreducible_dir=None):
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            raise KeyboardInterrupt("killed")
        label, study = record["trial_selector"], record["study"]
        self.calls.append((label, study))
        seconds = self.seconds(label, study)
        record.update({"task": "classification", "metrics": ["accuracy"], "loss": "sparse_categorical_crossentropy",
                       "target_metric": "val_accuracy", "n_train": 100, "n_test": 20, "loop_epochs": 1,
                       "frame": [{"epoch": 1.0, "step": 10, "samples_seen": 100, "samples_forwarded": 100,
                                  "samples_backpropagated": 100, "train_time_s": seconds, "selection_time_s": 0.0,
                                  "setup_time_s": 0.0, "eval_time_s": 0.1, "loss": 0.3, "accuracy": 0.9,
                                  "val_loss": 0.3, "val_accuracy": 0.95}]})
        record["costs"]["wall_s"] = seconds
        return record


TOY = Workload(dataset="toy", epochs=1)


def test_a_trial_another_process_has_claimed_is_left_to_it(tmp_path, monkeypatch):
    fake = FakeRuns(monkeypatch)
    out = str(tmp_path / "out")
    planned = records_lib.new(TOY, Hyperparameters(), selector="Shuffle()", study=0)
    with store.Store(out).claim(planned) as mine:  # as another process would hold it while it trains
        assert mine
        summary = run_campaign([TOY], ["shuffle"], 2, out, progress=False)
        with store.Store(out).claim(planned) as theirs:
            assert not theirs
    assert summary == {**EMPTY, "ran": 1, "claimed": 1} and fake.calls == [("Shuffle()", 1)]
    assert [r["study"] for r in store.load(out)] == [1]
    assert run_campaign([TOY], ["shuffle"], 2, out, progress=False) == {**EMPTY, "ran": 1, "skipped": 1}
    assert fake.calls == [("Shuffle()", 1), ("Shuffle()", 0)]  # the claim is gone with its owner


def test_two_campaigns_on_one_out_share_the_work(tmp_path, monkeypatch):
    """Two campaigns at once on one --out (threads here: each claim opens its own lock file, so they exclude each
    other as two processes do) train every trial once between them."""
    import threading
    import time

    fake = FakeRuns(monkeypatch)
    quick = fake.train_one

    def slow(*args, **kwargs):
        time.sleep(0.1)  # long enough for the other campaign to meet the claim
        return quick(*args, **kwargs)

    monkeypatch.setattr(training, "train_one", slow)
    out = str(tmp_path / "out")
    summaries = [None, None]

    def campaign(i):
        summaries[i] = run_campaign([TOY], ["shuffle", "freeze"], 4, out, progress=False)

    threads = [threading.Thread(target=campaign, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(s is not None for s in summaries)
    assert sorted(fake.calls) == sorted(set(fake.calls)) and len(fake.calls) == 8  # every trial trained once
    assert sum(s["ran"] for s in summaries) == 8
    assert all(s["ran"] + s["skipped"] + s["claimed"] == 8 for s in summaries)
    assert len(store.load(out)) == 8 and len(run_files(out)) == 8


# ------------------------------------------------------------------------------------ failures, not applicable
def _diverging_regression(workload, data_dir=None):
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x.sum(axis=1) * 100).astype("float32")
    ds = Dataset(name="toy", x_train=x, y_train=y, x_test=x[:16], y_test=y[:16], task="regression",
                 num_classes=1, source="test", info="", models={"mlp": mlp_regressor}, default_model="mlp",
                 loss="mse", metrics=("mae",), batch_size=16, optimizer="sgd", learning_rate=1e6,
                 target_metric="val_mae")
    return ds, (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)


def test_failed_trials_are_recorded_the_campaign_goes_on_and_retry_failed_trains_them_again(tmp_path, monkeypatch,
                                                                                            tiny_entry):
    out = str(tmp_path / "out")

    def broken(state):
        raise KeyError("no such thing")

    summary = run_campaign([tiny_entry], ["shuffle", broken], 1, out, progress=False)
    assert summary["ran"] == 2 and summary["failed"] == 1
    monkeypatch.setattr(training, "prepare_dataset", _diverging_regression)
    summary = run_campaign([Workload(dataset="toy", epochs=2)], ["shuffle"], 1, out, progress=False)
    assert summary["failed"] == 1
    records = {(r["workload"], r["selector"]): r for r in store.load(out)}
    assert records[("spirals", "Shuffle()")]["status"] == "ok"
    assert records[("spirals", "broken")]["status"] == "failed"
    assert "KeyError" in records[("spirals", "broken")]["error"]
    assert "Traceback" in records[("spirals", "broken")]["traceback"]
    nan = records[("toy", "Shuffle()")]
    assert nan["status"] == "failed" and nan["error"].startswith("FloatingPointError")
    table = scoring.summarize(list(records.values()), n_boot=50).set_index(["dataset", "selector"])
    assert table.loc[("spirals", "broken"), "reached"] == 0.0
    assert table.loc[("spirals", "broken"), "speedup"] == 0.0
    assert table.loc[("toy", "Shuffle()"), "failed"] == 1
    # A failed trial is a result: skipped on resume, trained again only with retry_failed.
    assert run_campaign([Workload(dataset="toy", epochs=2)], ["shuffle"], 1, out, progress=False) == {
        **EMPTY, "skipped": 1}
    again = run_campaign([Workload(dataset="toy", epochs=2)], ["shuffle"], 1, out, progress=False,
                         retry_failed=True)
    assert again["ran"] == 1 and again["failed"] == 1


def test_a_workload_that_does_not_load_is_named_and_the_campaign_goes_on(tmp_path, monkeypatch, tiny_entry):
    out = str(tmp_path / "out")
    real = training.prepare_dataset

    def prepare(workload, data_dir=None):
        if workload.dataset == "toy":
            raise OSError("toy.npz: no such file")
        return real(workload, data_dir)

    monkeypatch.setattr(training, "prepare_dataset", prepare)
    summary = run_campaign([Workload(dataset="toy", epochs=1), tiny_entry], ["shuffle", "freeze"], 1, out,
                           progress=False)
    assert summary["unloadable"] == [("toy", "OSError: toy.npz: no such file")] and summary["ran"] == 2
    assert {r["workload"] for r in store.load(out)} == {"spirals"}


def _sane_regression(workload, data_dir=None):
    ds, train, test = _diverging_regression(workload, data_dir)
    return dataclasses.replace(ds, learning_rate=1e-3), train, test


def test_class_based_selectors_are_not_applicable_to_regression(tmp_path, monkeypatch, capsys):
    from loop.bench.reporting import report

    out = str(tmp_path / "out")
    monkeypatch.setattr(training, "prepare_dataset", _sane_regression)
    specs = ["shuffle", "homogeneous", "heterogeneous", "loss_sorted:per_class=True", "loss_sorted", "ordered_sgd",
             "ordered_sgd:q=16"]
    toy = Workload(dataset="toy", epochs=2)
    summary = run_campaign([toy], specs, 2, out, progress=False)
    assert summary["ran"] == 14 and summary["failed"] == 0 and summary["not_applicable"] == 8
    records = store.load(out)
    skipped = [r for r in records if r["status"] == "not_applicable"]
    # OrderedSGD's default rule follows the train accuracy; with a fixed q it trains on regression too.
    assert {r["selector"] for r in skipped} == {"Homogeneous()", "Heterogeneous()", "LossSorted(per_class=True)",
                                                "OrderedSGD()"}
    assert all(r["frame"].empty and "regression" in r["error"] for r in skipped)  # never trained
    assert scoring.not_applicable(records) == {s: ["toy"] for s in ("Heterogeneous()", "Homogeneous()",
                                                                    "LossSorted(per_class=True)", "OrderedSGD()")}
    table = report(out, plots=False, n_boot=50)
    assert sorted(table["selector"]) == ["LossSorted()", "OrderedSGD(q=16)", "Shuffle()"]
    assert (table["failed"] == 0).all()
    assert "Not applicable (not trained): " in capsys.readouterr().out
    # Stored as not applicable: a re-run, even retrying failures, trains nothing again.
    again = run_campaign([toy], specs, 2, out, progress=False, retry_failed=True)
    assert again == {**EMPTY, "skipped": 14}


# ------------------------------------------------------------------------------------------ the store, the data
def test_write_json_atomic_leaves_no_temp_file(tmp_path):
    path = str(tmp_path / "a" / "b.json")
    store.write_json_atomic(path, {"x": np.float32(1.5), "y": [np.int64(2)], "z": np.arange(2)})
    assert os.listdir(tmp_path / "a") == ["b.json"]
    with open(path) as f:
        assert json.load(f) == {"x": 1.5, "y": [2], "z": [0, 1]}


def test_subsets_are_shared_and_seeded(tiny_entry):
    workload = dataclasses.replace(tiny_entry.workload, epochs=1, n_train=50, n_test=20)
    _, (x1, _), (t1, _) = training.prepare_dataset(workload)
    _, (x2, _), _ = training.prepare_dataset(workload)
    assert len(x1) == 50 and len(t1) == 20 and np.array_equal(x1, x2)
    assert len(datasets.load("spirals", n_samples=300).y_train) > 50
    keras.backend.clear_session()


def test_a_campaign_refuses_bad_arguments_before_anything_trains(tmp_path, tiny_entry, monkeypatch):
    no_training(monkeypatch)
    out = str(tmp_path / "out")
    with pytest.raises(ValueError, match="repeat a selector"):
        run_campaign([tiny_entry], ["shuffle", "shuffle"], 1, out, progress=False)
    with pytest.raises(ValueError, match="unknown selector 'nope'"):
        run_campaign([tiny_entry], ["shuffle", "nope"], 1, out, progress=False)
    with pytest.raises(ValueError, match="precision 'bf16' is not a precision"):
        run_campaign([tiny_entry], ["shuffle"], 1, out, progress=False, precision="bf16")
    with pytest.raises(ValueError, match="a campaign runs suite entries or workloads"):
        run_campaign(["spirals"], ["shuffle"], 1, out, progress=False)
    assert run_files(out) == []


def test_progress_prints_one_line_per_finished_workload_and_selector(tmp_path, monkeypatch):
    import io

    FakeRuns(monkeypatch)
    out, stream = str(tmp_path / "out"), io.StringIO()  # not a terminal: lines, no bar
    run_campaign([TOY], ["shuffle", "freeze"], 2, out, stream=stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("toy Shuffle(): 2 trained in 21s | 3/4 trained, elapsed ")  # study by study
    assert lines[1].startswith("toy Freeze(): 2 trained in 10s | 4/4 trained") and lines[1].endswith("ETA 0s")
    stream = io.StringIO()
    run_campaign([TOY], ["shuffle", "freeze"], 3, out, stream=stream)
    assert stream.getvalue().splitlines()[0].startswith("toy Shuffle(): 1 trained in 11s, 2 already stored | 1/2")
    stream = io.StringIO()
    run_campaign([TOY], ["shuffle", "freeze"], 3, out, stream=stream)
    assert stream.getvalue() == ""  # everything stored: nothing to say


def test_a_long_silence_in_a_log_is_broken_by_a_trials_line(tmp_path, monkeypatch):
    import io

    from loop.bench import progress

    FakeRuns(monkeypatch)
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)  # every finished trial is "after a long silence"
    stream = io.StringIO()
    run_campaign([TOY], ["shuffle", "freeze"], 2, str(tmp_path / "out"), stream=stream)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("toy Shuffle() study 0 trial 0: ok in 10s | 1/4 trained, elapsed ")
    assert lines[1].startswith("toy Freeze() study 0 trial 0: ok in 5s | 2/4 trained")
    assert lines[2].startswith("toy Shuffle(): 2 trained in 21s | 3/4 trained")  # the selector's line instead
    assert len(lines) == 4


# ----------------------------------------------------------------------------------------- --seeds auto:MIN:MAX
AUTO_SPECS = ["shuffle", "freeze", "homogeneous"]


def studies_of(out, label):
    return sorted(r["study"] for r in store.load(out) if r["selector"] == label)


def test_parse_seeds():
    assert auto_seeds.parse_seeds("5") == 5 and auto_seeds.parse_seeds(" 3 ") == 3
    assert auto_seeds.parse_seeds("auto:5:15") == auto_seeds.AutoSeeds(5, 15)
    assert auto_seeds.parse_seeds("AUTO:2:2") == auto_seeds.AutoSeeds(2, 2)
    assert str(auto_seeds.AutoSeeds(5, 15)) == "auto:5:15"
    for bad, message in [("auto:0:3", "needs 1 <= MIN <= MAX, got MIN=0, MAX=3"),
                         ("auto:6:5", "needs 1 <= MIN <= MAX, got MIN=6, MAX=5"),
                         ("auto:5", "is not auto:MIN:MAX with two integers"),
                         ("auto:a:b", "is not auto:MIN:MAX with two integers"),
                         ("auto:1:2:3", "is not auto:MIN:MAX"),
                         ("autox:1:2", "is not auto:MIN:MAX"),
                         ("five", "is neither a number of seeds nor auto:MIN:MAX")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            auto_seeds.parse_seeds(bad)
    with pytest.raises(ValueError, match="1 <= MIN <= MAX"):
        auto_seeds.AutoSeeds(3, 2)


def test_auto_seeds_add_studies_only_where_the_verdict_is_undecided_and_stop_at_max(tmp_path, monkeypatch):
    fake = FakeRuns(monkeypatch)
    out = str(tmp_path / "out")
    summary = auto_seeds.run_auto([TOY], AUTO_SPECS, auto_seeds.AutoSeeds(5, 9), out, progress=False)
    assert studies_of(out, "Freeze()") == [0, 1, 2, 3, 4]                # a clear win after the first 5 studies
    assert studies_of(out, "Homogeneous()") == list(range(9))            # undecided: up to MAX
    assert studies_of(out, "Shuffle()") == list(range(9))                # paired by study with the undecided pair
    assert summary["rounds"] == 4 and summary["ran"] == 3 * 5 + 2 * 4 and summary["skipped"] == 0
    assert summary["seeds"] == {("toy", "Shuffle()"): 9, ("toy", "Freeze()"): 5, ("toy", "Homogeneous()"): 9}
    assert len(fake.calls) == len(set(fake.calls)) == 23                 # no trial twice
    table = scoring.summarize(store.load(out)).set_index("selector")
    assert table.loc["Freeze()", "verdict"] == "win"
    assert table.loc["Homogeneous()", "verdict"] == "no difference"
    # Everything is stored: running it again trains nothing and decides the same.
    again = auto_seeds.run_auto([TOY], AUTO_SPECS, auto_seeds.AutoSeeds(5, 9), out, progress=False)
    assert again["ran"] == 0 and len(fake.calls) == 23 and again["seeds"] == summary["seeds"]


def test_too_few_studies_for_the_sign_test_are_undecided(tmp_path, monkeypatch):
    FakeRuns(monkeypatch)
    out = str(tmp_path / "out")
    run_campaign([TOY], AUTO_SPECS, 3, out, progress=False)
    # Freeze() is faster in 3 of 3 studies, but 3 studies cannot carry a claim at 5%: every pair gets study 3.
    assert auto_seeds.undecided(store.load(out), min_seeds=3, max_seeds=10) == {
        ("toy", 3): ["Shuffle()", "Freeze()", "Homogeneous()"]}


def test_auto_seeds_with_min_equal_max_is_a_fixed_count(tmp_path, monkeypatch):
    fake = FakeRuns(monkeypatch)
    out = str(tmp_path / "out")
    summary = auto_seeds.run_auto([TOY], AUTO_SPECS, auto_seeds.AutoSeeds(2, 2), out, n_boot=200, progress=False)
    assert summary["rounds"] == 0 and len(fake.calls) == 6


def test_undecided_pairs_the_baseline_and_picks_the_smallest_missing_study(tmp_path, monkeypatch):
    FakeRuns(monkeypatch)
    out = str(tmp_path / "out")
    run_campaign([TOY], AUTO_SPECS, [0, 1, 2, 3, 5], out, progress=False)
    records = store.load(out)
    assert auto_seeds.undecided(records, min_seeds=3, max_seeds=10) == {("toy", 4): ["Shuffle()", "Homogeneous()"]}
    assert auto_seeds.undecided(records, min_seeds=3, max_seeds=5) == {}  # at MAX: no more
    baseline_has_it = [r for r in records if not (r["selector"] == "Homogeneous()" and r["study"] == 3)]
    assert auto_seeds.undecided(baseline_has_it, min_seeds=2, max_seeds=10) == {
        ("toy", 3): ["Homogeneous()"]}  # Shuffle() already has study 3


def test_a_killed_auto_run_resumes_from_what_is_stored(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    killed = FakeRuns(monkeypatch, stop_after=18)  # killed in the second added round
    with pytest.raises(KeyboardInterrupt):
        auto_seeds.run_auto([TOY], AUTO_SPECS, auto_seeds.AutoSeeds(5, 9), out, progress=False)
    assert len(store.load(out)) == 18
    resumed = FakeRuns(monkeypatch)
    summary = auto_seeds.run_auto([TOY], AUTO_SPECS, auto_seeds.AutoSeeds(5, 9), out, progress=False)
    assert not set(resumed.calls) & set(killed.calls)                   # nothing stored is trained again
    assert len(killed.calls) + len(resumed.calls) == 23                  # the same trials as without the kill
    assert summary["seeds"] == {("toy", "Shuffle()"): 9, ("toy", "Freeze()"): 5, ("toy", "Homogeneous()"): 9}


def test_auto_seeds_need_the_baseline(tmp_path):
    with pytest.raises(ValueError, match=re.escape("need the baseline Shuffle()")):
        auto_seeds.run_auto([TOY], ["freeze"], auto_seeds.AutoSeeds(1, 2), str(tmp_path), progress=False)


# ------------------------------------------------------------------------------------- targets and workloads
def test_a_fixed_target_stops_trials_and_is_the_tables_target(tmp_path, tiny_entry):
    out = str(tmp_path / "out")
    workload = dataclasses.replace(tiny_entry.workload, epochs=30, target={"val_accuracy": 0.3},
                                   stop_at_target=True)
    run_campaign([workload], ["shuffle"], 1, out, progress=False)
    (record,) = store.load(out)
    frame = record["frame"]
    assert len(frame) < 30 and frame["val_accuracy"].iloc[-1] >= 0.3  # stopped at its first evaluation past 0.3
    assert (frame["val_accuracy"].iloc[:-1] < 0.3).all()
    assert record["target"] == record["workload_config"]["target"] == {"val_accuracy": 0.3}
    assert record["workload_config"]["stop_at_target"]
    table = scoring.summarize([record], n_boot=10)
    assert table["target"].iloc[0] == "val_accuracy >= 0.3" and table["target_source"].iloc[0] == "fixed in the suite"
    assert table["reached"].iloc[0] == 1
    given = scoring.summarize([record], targets=scoring.parse_targets(["val_accuracy=0.2"]), n_boot=10)
    assert given["target"].iloc[0] == "val_accuracy >= 0.2"  # --target still overrides the suite's


@pytest.mark.parametrize("kwargs, message", [
    (dict(target={"val_accuracy": "high"}), "spirals: target\\['val_accuracy'\\] threshold 'high' is not a number"),
    (dict(target={"val_accuracy": 1.5}), "spirals: target\\['val_accuracy'\\] = 1.5 can never be reached"),
    (dict(stop_at_target=True), "spirals: stop_at_target=True needs a target"),
    (dict(validation="holdout"), "validation='holdout'"),
    (dict(n_val=100), "n_val=100 needs validation='split'"),
    (dict(label_noise=1.5, name="noisy"), "label_noise=1.5"),
    (dict(label_noise=0.2), "give it a name"),
    (dict(name="not a name"), "name='not a name'"),
    (dict(n_train=0), "n_train must be a positive integer"),
])
def test_a_workload_refuses_bad_fields(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Workload(dataset="spirals", epochs=2, **kwargs)
    with pytest.raises(ValueError, match=message):
        entry("spirals", 2, **kwargs)


def test_an_entry_runs_only_its_selectors_and_the_list_is_not_the_identity(tmp_path, tiny_entry):
    out = str(tmp_path / "out")
    few = dataclasses.replace(tiny_entry, selectors=("shuffle", "freeze"), note="few selectors")
    assert few.runs("freeze") and not few.runs("homogeneous")
    summary = run_campaign([few], ["shuffle", "freeze", "homogeneous"], 1, out, progress=False)
    assert summary["ran"] == 2
    assert {r["selector"] for r in store.load(out)} == {"Shuffle()", "Freeze()"}
    config = {**few.workload.config(), **few.hyperparameters.config()}
    assert "selectors" not in config and "note" not in config
    wider = dataclasses.replace(few, selectors=None)
    summary = run_campaign([wider], ["shuffle", "freeze", "homogeneous"], 1, out, progress=False)
    assert summary == {**EMPTY, "ran": 1, "skipped": 2}


def test_the_full_suite_has_fixed_targets_caps_and_known_selectors():
    from loop.bench.suites import FULL, FULL_SELECTORS
    from loop.selectors import from_string

    assert FULL.studies == 5 and FULL.selectors == FULL_SELECTORS and FULL.tune == 0
    for spec in FULL_SELECTORS:
        from_string(spec)  # every name is registered
    names = {item.workload.dataset for item in FULL.entries}
    assert names == {"spirals", "iris", "wine", "boston", "music_genre", "sentiment140", "mnist", "fashion_mnist",
                     "cifar10"}
    for item in FULL.entries:
        w = item.workload
        assert isinstance(item, Entry) and item.name == w.dataset
        assert w.target and w.stop_at_target and item.hyperparameters.learning_rate and w.n_train is None
        assert w.n_test is None  # the complete test sets
        if item.selectors is not None:
            assert "shuffle" in item.selectors and set(item.selectors) <= set(FULL_SELECTORS)
            assert item.note.startswith("left out")
    mnist = next(item for item in FULL.entries if item.name == "mnist")
    assert mnist.workload.target == {"val_accuracy": 0.99}


def test_the_full_suite_entries_are_the_committed_pilot_results():
    """Each entry's learning rate, target and cap are what benchmarks/full_pilot.py chose (results/full-pilot)."""
    from loop.bench.suites import FULL

    pilot_dir = os.path.join(REPO, "results", "full-pilot")
    for item in FULL.entries:
        with open(os.path.join(pilot_dir, f"{item.name}.json")) as f:
            pilot = json.load(f)
        assert item.hyperparameters.learning_rate == pilot["learning_rate"], item.name
        assert item.workload.target == {pilot["metric"]: pilot["target"]}, item.name
        assert item.workload.epochs == pilot["epoch_cap"], item.name
        assert item.workload.model in (None, pilot["model"]), item.name


def test_a_validation_split_workload_validates_on_the_split_and_reports_the_test_set(tmp_path, tiny_entry):
    from loop.bench.reporting import display

    out = str(tmp_path / "out")
    workload = dataclasses.replace(tiny_entry.workload, epochs=30, validation="split", target={"val_accuracy": 0.3},
                                   stop_at_target=True)
    ds, train, test = training.prepare_dataset(workload)
    plain, plain_train, plain_test = training.prepare_dataset(tiny_entry.workload)
    assert len(ds.y_val) == 48 and len(train[1]) == 192 and len(plain_train[1]) == 240  # 20% of spirals' 240
    assert np.array_equal(test[1], plain_test[1])  # the test set is untouched
    run_campaign([workload], ["shuffle"], 1, out, progress=False)
    (record,) = store.load(out)
    frame = record["frame"]
    assert record["n_val"] == 48 and record["n_test"] == len(test[1]) and record["n_train"] == 192
    assert record["workload_config"]["validation"] == "split"
    assert {"test_loss", "test_accuracy", "val_accuracy"} <= set(frame.columns)
    assert frame["val_accuracy"].iloc[-1] >= 0.3 and (frame["val_accuracy"].iloc[:-1] < 0.3).all()
    table = scoring.summarize([record], n_boot=10)
    assert table["test_at_target"].iloc[0] == pytest.approx(frame["test_accuracy"].iloc[-1])
    assert table["test_at_end"].iloc[0] == pytest.approx(frame["test_accuracy"].iloc[-1])
    assert table["best_test"].iloc[0] == pytest.approx(frame["test_accuracy"].max())
    assert "test at target" in display(table).columns


def test_a_new_workload_field_is_part_of_the_identity():
    plain = Workload(dataset="spirals", epochs=2)
    split = Workload(dataset="spirals", epochs=2, validation="split", n_val=0.25)
    assert split.config()["validation"] == "split" and split.config()["n_val"] == 0.25
    assert split.config() != plain.config() and split.label == plain.label == "spirals"
    first = records_lib.new(plain, Hyperparameters(), selector="Shuffle()", study=0)
    assert records_lib.identity(first) != records_lib.identity(
        records_lib.new(split, Hyperparameters(), selector="Shuffle()", study=0))
    assert records_lib.identity(first) != records_lib.identity(
        records_lib.new(plain, Hyperparameters(schedule="cosine"), selector="Shuffle()", study=0))
    # What is not the trial's setup (the pruning limit) is not its identity.
    assert records_lib.identity(first) == records_lib.identity(
        records_lib.new(plain, Hyperparameters(), selector="Shuffle()", study=0, time_limit_s=3.0))


def test_a_noisy_label_workload_is_stored_under_its_name_with_clean_validation_labels(tmp_path):
    out = str(tmp_path / "out")
    noisy = entry("iris", 2, validation="split", name="iris_noisy20", label_noise=0.2)
    ds, train, _ = training.prepare_dataset(noisy.workload)
    clean = datasets.validation_split(datasets.load("iris"))
    assert np.array_equal(ds.y_val, clean.y_val) and np.array_equal(ds.x_train, clean.x_train)
    assert ds.extras["label_noise"]["replaced"] == round(0.2 * 96) and not np.array_equal(train[1], clean.y_train)
    run_campaign([noisy], ["shuffle"], 1, out, progress=False)
    assert os.path.exists(store.trial_path(out, "iris_noisy20", "Shuffle()", 0, 0))
    (record,) = store.load(out)
    assert record["workload"] == "iris_noisy20" and record["dataset"] == "iris"
    assert record["workload_config"]["name"] == "iris_noisy20"
    assert record["label_noise"]["fraction"] == 0.2 and record["label_noise"]["replaced"] == 19
    assert scoring.summarize([record], n_boot=10)["dataset"].iloc[0] == "iris_noisy20"


def test_the_variant_workloads_are_workloads_of_their_own():
    from loop.bench.suites import FULL, SUITES, VARIANTS
    from loop.selectors import from_string

    assert SUITES["variants"] is VARIANTS
    by_name = {item.name: item.workload for item in VARIANTS.entries}
    assert set(by_name) == {"mnist_noisy20", "fashion_mnist_half_width"}
    assert not set(by_name) & {item.name for item in FULL.entries}
    noisy, narrow = by_name["mnist_noisy20"], by_name["fashion_mnist_half_width"]
    assert noisy.dataset == "mnist" and noisy.label_noise == 0.2 and noisy.config()["name"] == "mnist_noisy20"
    assert narrow.dataset == "fashion_mnist" and narrow.model_kwargs == {"width": 0.5}
    assert all(item.workload.validation == "split" for item in VARIANTS.entries)
    for spec in VARIANTS.selectors:
        from_string(spec)


def test_model_kwargs_reach_the_reference_model(tmp_path, tiny_entry):
    out = str(tmp_path / "out")
    narrow = dataclasses.replace(tiny_entry, workload=dataclasses.replace(
        tiny_entry.workload, name="spirals_narrow", model_kwargs={"hidden": [8]}))
    run_campaign([narrow, tiny_entry], ["shuffle"], 1, out, progress=False)
    narrow, plain = sorted(store.load(out), key=lambda r: r["workload"] != "spirals_narrow")
    assert narrow["status"] == plain["status"] == "ok" and narrow["workload"] == "spirals_narrow"
    assert narrow["workload_config"]["model_kwargs"] == {"hidden": [8]} and plain["workload_config"]["model_kwargs"] == {}
    # one hidden layer of 8 units, not 64 and 64
    assert narrow["costs"]["flops_per_sample"] < plain["costs"]["flops_per_sample"]


class _PlainSampler:
    """A selector object without a repr of its own (Python's default repr holds a memory address)."""

    def __init__(self, power):
        self.power = power

    def __call__(self, state):
        return [np.arange(state.num_samples)]


def test_an_object_with_the_default_repr_gets_a_stable_label_so_resumed_trials_are_found():
    label, factory = labels.selector_key(_PlainSampler(2))
    assert " at 0x" not in label and label.endswith(")") and "_PlainSampler(#" in label
    assert labels.selector_key(_PlainSampler(2))[0] == label  # another object, the same attributes: the same label
    assert labels.selector_key(_PlainSampler(3))[0] != label  # other attributes: another label
    assert isinstance(factory(), _PlainSampler) and factory().power == 2
    assert factory() is not factory()  # a fresh copy for every trial
