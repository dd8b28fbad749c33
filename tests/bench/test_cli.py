"""The command line: clean errors, a tiny end-to-end run, and resumption after SIGKILL."""

import os
import signal
import subprocess
import sys
import time

import pytest

from loop.bench import store
from loop.bench.__main__ import main, split_specs


def run_files(out):
    found = []
    for root, _, files in os.walk(os.path.join(out, "runs")):
        found += [os.path.join(root, f) for f in files]
    return sorted(found)


def test_split_specs_keeps_hyper_parameters_with_their_selector():
    assert split_specs("shuffle, dybat:delta=0.5,shuffle=False,infobatch") == [
        "shuffle", "dybat:delta=0.5,shuffle=False", "infobatch"]
    assert split_specs("shuffle,dynamic:base='dybat:delta=0.5,shuffle=True',k0=16,loss_sorted") == [
        "shuffle", "dynamic:base='dybat:delta=0.5,shuffle=True',k0=16", "loss_sorted"]


@pytest.mark.parametrize("args, message", [
    (["--selectors", "nope"], "unknown selector 'nope'"),
    (["--selectors", "dybat:gamma=2"], "unknown hyper-parameter 'gamma'"),
    (["--datasets", "mnsit"], "unknown dataset 'mnsit'"),
    (["--target", "val_accuracy"], "bad target"),
])
def test_bad_arguments_exit_2_with_a_message(args, message, capsys, tmp_path):
    assert main(args + ["--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "x")


#: Arguments of a run that takes seconds, should a check fail to stop it.
TINY = ["--suite", "untuned", "--datasets", "spirals", "--selectors", "shuffle", "--seeds", "1", "--epochs", "1", "--n-train", "50",
        "--n-test", "20", "--no-plots", "--bootstrap", "10"]


def cli_error(args, capsys):
    """Runs ``main(args)``; asserts exit status 2 with argparse's usage and no traceback; returns stderr."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m loop.bench") and "Traceback" not in err
    prog = "python -m loop.bench report" if args[:1] == ["report"] else "python -m loop.bench"
    assert f"{prog}: error: " in err
    return err


def snapshot(root):
    """Every path under ``root`` with its bytes (None for a directory)."""
    return {p: (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def results_dir(root):
    """A results directory as a run leaves it: one stored trial and the tables."""
    trial = root / "runs" / "spirals" / "Shuffle-0" / "study_0" / "trial_0.json"
    trial.parent.mkdir(parents=True)
    trial.write_text('{"layout": 2}')
    for name in ("table.csv", "table.md", "seed000.csv"):
        (root / name).write_text("kept")
    return root


@pytest.mark.parametrize("flag, value", [
    ("--seeds", "0"), ("--seeds", "-2"), ("--epochs", "0"), ("--epochs", "-1"), ("--n-train", "0"),
    ("--n-test", "-5"), ("--bootstrap", "0"),
])
def test_counts_below_one_are_refused_before_anything_runs(flag, value, capsys, tmp_path):
    out = tmp_path / "x"
    err = cli_error(TINY + [flag, value, "--out", str(out)], capsys)
    assert f"{flag} must be at least 1, got {value}; leave {flag} out" in err
    assert not out.exists()


@pytest.mark.parametrize("datasets", [",", ""])
def test_datasets_naming_no_dataset_is_refused(datasets, capsys, tmp_path):
    err = cli_error(TINY + ["--datasets", datasets, "--out", str(tmp_path / "x")], capsys)
    assert f"--datasets {datasets!r} names no dataset" in err
    assert not (tmp_path / "x").exists()


def test_out_that_is_a_file_is_refused_and_left_alone(capsys, tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    err = cli_error(TINY + ["--out", str(out)], capsys)
    assert f"--out {str(out)!r} is a file, not a directory; give a directory" in err
    assert out.read_text() == "mine"


def test_out_under_a_file_is_refused(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "results"
    err = cli_error(TINY + ["--out", str(out)], capsys)
    assert f"--out {str(out)!r} cannot be created: {str(tmp_path / 'notes.txt')!r} is a file" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_default_out_that_cannot_be_created_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").write_text("not a directory")
    err = cli_error(TINY, capsys)
    assert "--out 'results/" in err and "cannot be created: " in err and "is a file" in err


@pytest.mark.parametrize("where, message", [
    ("locked", "is a directory you cannot write in"),
    ("locked/new", "cannot be created: you cannot write in"),
])
def test_out_that_cannot_be_written_is_refused(where, message, capsys, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        os.path.abspath(path) != str(locked) and real_access(path, mode, **kw)))
    err = cli_error(TINY + ["--out", str(tmp_path / where)], capsys)
    assert f"--out {str(tmp_path / where)!r} {message}" in err
    assert list(locked.iterdir()) == []


def test_out_is_empty_string(capsys):
    assert "--out is empty" in cli_error(TINY + ["--out", ""], capsys)


@pytest.mark.parametrize("command", [[], ["report"]])
@pytest.mark.parametrize("name, make", [
    ("runs", lambda p: p.write_text("x")),
    ("table.md", lambda p: p.mkdir()),
])
def test_out_whose_contents_are_not_a_results_directory_is_refused(command, name, make, capsys, tmp_path):
    out = results_dir(tmp_path / "out")
    target = out / name
    if target.is_dir():
        import shutil

        shutil.rmtree(target)
    else:
        target.unlink()
    make(target)
    before = snapshot(out)
    options = TINY if not command else TINY[-3:]  # report takes only --no-plots --bootstrap 10 of these
    err = cli_error(command + options + ["--out", str(out)], capsys)
    assert f"cannot hold the results: {str(target)!r} is" in err and "give another --out" in err
    assert snapshot(out) == before


def test_a_bad_argument_leaves_an_existing_results_directory_untouched(capsys, tmp_path):
    out = results_dir(tmp_path / "out")
    before = snapshot(out)
    for bad in (["--seeds", "0"], ["--data-dir", str(tmp_path / "missing")], ["--datasets", "mnsit"],
                ["--target", "val_accuracy"]):
        cli_error(TINY + bad + ["--out", str(out)], capsys)
        assert snapshot(out) == before


@pytest.mark.parametrize("kind, state", [("missing", "does not exist"), ("file", "is not a directory")])
def test_bad_data_dir_is_refused(kind, state, capsys, tmp_path):
    data_dir = tmp_path / "data"
    if kind == "file":
        data_dir.write_text("x")
    err = cli_error(TINY + ["--data-dir", str(data_dir), "--out", str(tmp_path / "x")], capsys)
    assert f"--data-dir {str(data_dir)!r} {state}; give the directory of the original data files" in err
    assert not (tmp_path / "x").exists()


def test_bad_loop_data_dir_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOP_DATA_DIR", str(tmp_path / "missing"))
    err = cli_error(TINY + ["--out", str(tmp_path / "x")], capsys)
    assert f"$LOOP_DATA_DIR {str(tmp_path / 'missing')!r} does not exist" in err and "unset $LOOP_DATA_DIR" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", [[], ["report"]])
def test_a_target_no_metric_can_reach_exits_2_before_anything_trains(command, capsys, tmp_path, monkeypatch):
    from loop.bench import training

    def fail(*args, **kwargs):
        raise AssertionError("trained before the arguments were checked")

    monkeypatch.setattr(training, "train_one", fail)
    monkeypatch.setattr(training, "prepare_dataset", fail)
    out = tmp_path / "x"
    if command:
        out = results_dir(out)
    before = snapshot(out) if command else None
    args = command + ([] if command else ["--datasets", "iris"]) + ["--target", "val_accuracy=1.5", "--out", str(out)]
    err = cli_error(args, capsys)
    assert "--target val_accuracy: target['val_accuracy'] = 1.5 can never be reached: val_accuracy lies in [0, 1]" \
        in err
    if command:
        assert snapshot(out) == before
    else:
        assert not out.exists()


def test_a_target_no_metric_can_reach_exits_2_from_the_shell(tmp_path):
    out = tmp_path / "x"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "loop.bench", "--datasets", "iris", "--target", "val_accuracy=1.5",
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "python -m loop.bench: error: --target val_accuracy: " in done.stderr and "can never be reached" in \
        done.stderr
    assert not out.exists() and done.stdout == ""


def test_a_target_for_a_workload_that_is_not_run_exits_2(capsys, tmp_path):
    out = tmp_path / "x"
    err = cli_error(TINY + ["--target", "nosuch:val_accuracy=0.9", "--out", str(out)], capsys)
    assert "--target nosuch:...: 'nosuch' is not a workload of this run; choose from spirals" in err
    assert not out.exists()


def test_an_out_the_system_refuses_exits_2_naming_it(capsys):
    err = cli_error(TINY + ["--out", "/proc/forbidden/x"], capsys)
    assert "--out '/proc/forbidden/x' " in err and "give a directory you can write in" in err


def test_report_needs_an_out_that_holds_runs(capsys, tmp_path):
    assert "report needs --out DIR" in cli_error(["report"], capsys)
    missing = tmp_path / "missing"
    assert f"report --out {str(missing)!r} does not exist; give the results directory" in cli_error(
        ["report", "--out", str(missing)], capsys)
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert f"report --out {str(afile)!r} is not a directory" in cli_error(["report", "--out", str(afile)], capsys)
    assert afile.read_text() == "mine"
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    assert f"report --out {str(empty)!r} holds no results" in cli_error(["report", "--out", str(empty)], capsys)
    assert snapshot(empty) == {empty / "runs": None}
    assert not missing.exists()


def test_report_with_a_bad_count_writes_nothing(capsys, tmp_path):
    out = results_dir(tmp_path / "out")
    before = snapshot(out)
    assert "--bootstrap must be at least 1, got 0" in cli_error(["report", "--out", str(out), "--bootstrap", "0"],
                                                                 capsys)
    assert snapshot(out) == before


def test_help_states_the_protocol(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # as one line: the help wraps where it likes
    assert "same weights" in text and "99% of the median best" in text and "scores 0" in text
    assert "one grid of training seconds" in text and "false-win rate of at most 5%" in text


def test_tiny_cli_run_writes_tables_and_plots(tmp_path, capsys):
    from loop.bench.reporting import SEED000_CAPTION

    out = str(tmp_path / "out")
    code = main(["--suite", "untuned", "--datasets", "spirals", "--selectors", "heterogeneous", "--seeds", "2",
                 "--epochs", "2",
                 "--n-train", "200", "--n-test", "100", "--out", out, "--bootstrap", "200"])
    assert code == 0
    captured = capsys.readouterr()
    printed, err = captured.out, captured.err.splitlines()
    # Not a terminal: one line per finished workload x selector, then the summary line.
    assert err[0] == f"loop.bench: 1 workloads x 2 selectors x 2 studies in float32 -> {out}"
    assert [line.split(":")[0] for line in err[1:3]] == ["spirals Shuffle()", "spirals Heterogeneous()"]
    assert all(": 2 trained in " in line and " trained, elapsed " in line for line in err[1:3])
    assert err[3].startswith("loop.bench: trained 4 trials (0 pruned, 0 failed, 0 not applicable), skipped 0 "
                             "already stored, in ") and len(err) == 4
    assert len(run_files(out)) == 4 and all("/study_" in f and f.endswith("/trial_0.json") for f in run_files(out))
    assert "| spirals | Shuffle() |" in open(os.path.join(out, "table.md")).read()  # the full table, in the file
    lines = printed.splitlines()
    assert any(line.startswith("spirals: target val_accuracy >= ") for line in lines)
    shuffle = next(line.split() for line in lines if line.split()[:1] == ["Shuffle()"])
    assert shuffle[1] in ("1/2", "2/2") and shuffle[-3:] == ["1", "(reference)", "–"]
    assert any(line.split()[:1] == ["Heterogeneous()"] for line in lines)
    paths = ("plots: ", "tables: ", "speedup across")  # these lines name tmp paths
    table_lines = [line for line in lines if not line.startswith(paths)]
    assert max(len(line) for line in table_lines) <= 120 and "| spirals |" not in printed
    assert SEED000_CAPTION in printed  # the seed 000 table says what it shows and why
    for name in ("table.csv", "table.md", "seed000.csv", os.path.join("plots", "spirals.png"),
                 os.path.join("plots", "wallclock.png")):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert main(["report", "--out", out, "--no-plots", "--target", "val_accuracy=0.99"]) == 0
    assert "val_accuracy >= 0.99" in capsys.readouterr().out


def test_a_suite_killed_with_sigkill_loses_no_completed_run(tmp_path):
    out = str(tmp_path / "out")
    cmd = [sys.executable, "-m", "loop.bench", "--suite", "untuned", "--datasets", "spirals", "--selectors",
           "shuffle,freeze",
           "--seeds", "3", "--epochs", "2", "--n-train", "200", "--n-test", "100", "--out", out, "--no-plots"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stored():
        return len([f for f in run_files(out) if f.endswith(".json")])

    deadline = time.time() + 120
    while stored() < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {f: open(f).read() for f in run_files(out) if f.endswith(".json")}
    assert 2 <= len(done) < 6, "the suite must be killed mid-run"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"skipped {len(done)} already stored" in rerun.stderr
    for path, content in done.items():
        assert open(path).read() == content
    records = store.load(out)
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)


def test_overhead_benchmark_reports_each_selector(capsys):
    assert main(["overhead", "--selectors", "dybat", "--n-samples", "400", "--epochs", "3",
                 "--model", "spirals_mlp"]) == 0
    printed = capsys.readouterr().out
    assert "| Shuffle() |" in printed and "| DyBAT() |" in printed  # Shuffle is added as the reference
    assert "epoch_ratio" in printed and "step_ratio" in printed and "selection_share" in printed
    assert "candidate_ratio" in printed
    assert main(["overhead", "--selectors", "nope"]) == 2


@pytest.mark.parametrize("args, message", [
    (["--epochs", "1"], "--epochs must be at least 2 (the first epoch is not counted), got 1"),
    (["--n-samples", "0"], "--n-samples must be at least 1, got 0"),
    (["--batch-size", "-3"], "--batch-size must be at least 1, got -3"),
    (["--batch-size", "500", "--n-samples", "400"], "--batch-size (500) must be at most --n-samples (400)"),
    (["--selectors", ","], "--selectors ',' names no selector"),
])
def test_overhead_arguments_exit_2_naming_the_flag(args, message, capsys):
    assert main(["overhead"] + args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ --precision
@pytest.fixture
def float32_afterwards():
    """The global dtype policy is float32 again after the test, whatever it set."""
    import keras

    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("command", [[], ["throughput"]])
@pytest.mark.parametrize("value", ["fp16", "float16", "Mixed_Float16", ""])
def test_a_bad_precision_exits_2_naming_the_value_and_the_choices(command, value, capsys, tmp_path):
    out = tmp_path / "x"
    args = command + (["--precision", value] + (TINY + ["--out", str(out)] if not command else ["--samples", "64"]))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"error: --precision {value!r} is not a precision the benchmark trains in; choose float32, " \
           "mixed_bfloat16 or mixed_float16" in err
    assert "Traceback" not in err and not out.exists()


def test_help_lists_the_precisions(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--precision {float32,mixed_bfloat16,mixed_float16}" in capsys.readouterr().out
    assert main(["throughput", "--help"]) == 0
    assert "--precision {float32,mixed_bfloat16,mixed_float16}" in capsys.readouterr().out


def test_a_run_records_its_precision_and_its_out_refuses_another(capsys, tmp_path, float32_afterwards):
    import keras

    out = tmp_path / "out"
    assert main(TINY + ["--precision", "mixed_float16", "--out", str(out)]) == 0
    assert "studies in mixed_float16 ->" in capsys.readouterr().err
    assert keras.mixed_precision.global_policy().name == "float32"  # the run put the policy back
    records = store.load(str(out))
    assert len(records) == 1 and records[0]["status"] == "ok" and records[0]["precision"] == "mixed_float16"
    assert records[0]["compute_dtype"] == "float16"  # the model was built under the policy, not just labelled
    assert "Precision (keras.mixed_precision policy): mixed_float16" in (out / "table.md").read_text()

    before = snapshot(out)
    for other in ([], ["--precision", "float32"], ["--precision", "mixed_bfloat16"]):
        err = cli_error(TINY + other + ["--out", str(out)], capsys)
        wanted = other[1] if other else "float32"
        assert f"'{out}' holds trials trained in another precision than {wanted}: mixed_float16 (e.g. runs/spirals/" \
               in err
        assert f"give another --out for {wanted}, or resume this one with --precision mixed_float16" in err
        assert snapshot(out) == before
    assert main(TINY + ["--precision", "mixed_float16", "--out", str(out)]) == 0  # the same precision resumes
    assert "skipped 1 already stored" in capsys.readouterr().err


def test_trials_stored_without_a_precision_count_as_float32(tmp_path, tiny_entry):
    import json

    from loop.bench.campaign import run_campaign

    out = str(tmp_path / "out")
    run_campaign([tiny_entry], ["shuffle"], 1, out, progress=False)
    path = run_files(out)[0]
    record = json.load(open(path))
    assert record["precision"] == "float32"
    del record["precision"]
    store.write_json_atomic(path, record)
    assert run_campaign([tiny_entry], ["shuffle"], 1, out, progress=False)["skipped"] == 1
    with pytest.raises(ValueError, match="holds trials trained in another precision than mixed_bfloat16: float32"):
        run_campaign([tiny_entry], ["shuffle"], 1, out, progress=False, precision="mixed_bfloat16")
    with pytest.raises(ValueError, match="precision 'bf16' is not a precision"):
        run_campaign([tiny_entry], ["shuffle"], 1, out, progress=False, precision="bf16")


@pytest.mark.parametrize("precision, dtype", [("float32", "float32"), ("mixed_bfloat16", "bfloat16"),
                                              ("mixed_float16", "float16")])
def test_throughput_measures_the_peak_in_the_compute_dtype(precision, dtype):
    from loop.bench.perf import throughput

    assert throughput.parse_args(["--precision", precision]).precision == precision
    assert throughput.PEAK_DTYPES[precision] == dtype
    assert throughput.matmul_peak_gflops(32, repeats=2, dtype=dtype) > 0
    assert throughput.parse_args([]).precision == "float32"


def test_throughput_in_mixed_bfloat16_reports_its_precision(capsys, float32_afterwards):
    import keras

    assert main(["throughput", "--samples", "128", "--pairs", "1", "--epochs-per-call", "1", "--matmul-size", "64",
                 "--precision", "mixed_bfloat16"]) == 0
    printed = capsys.readouterr().out
    assert "precision: mixed_bfloat16 (compute bfloat16, variables float32)" in printed
    assert "against a measured bfloat16 matmul peak" in printed
    assert keras.mixed_precision.global_policy().name == "float32"


def test_throughput_runs_the_resnet20_step_and_reports_the_pass_costs(capsys):
    from loop.bench.perf import throughput

    result = throughput.measure(throughput.parse_args(["--samples", "64", "--pairs", "1", "--epochs-per-call", "1",
                                                       "--matmul-size", "64", "--model", "resnet20"]))
    printed = capsys.readouterr().out
    assert "model: resnet20" in printed and "backward:forward cost ratio r =" in printed
    assert result["forward_us"] > 0 and result["train_us"] > result["forward_us"]
    assert result["backward_ratio"] == pytest.approx(result["train_us"] / result["forward_us"] - 1)


def test_throughput_refuses_an_unknown_model(capsys):
    assert main(["throughput", "--model", "vgg"]) == 2
    assert "invalid choice: 'vgg'" in capsys.readouterr().err


def test_throughput_jit_compile_flag_reaches_both_steps(capsys):
    from loop.bench.perf import throughput

    args = throughput.parse_args(["--samples", "64", "--pairs", "1", "--epochs-per-call", "1", "--matmul-size", "64",
                                  "--jit-compile"])
    assert args.jit_compile and not throughput.parse_args([]).jit_compile
    throughput.measure(args)
    assert "XLA on" in capsys.readouterr().out


def test_throughput_uint8_inputs_train_through_the_input_cast(capsys):
    from loop.bench.perf import throughput

    args = throughput.parse_args(["--samples", "64", "--pairs", "1", "--epochs-per-call", "1", "--matmul-size", "64",
                                  "--input-dtype", "uint8"])
    assert throughput.parse_args([]).input_dtype == "float32"
    result = throughput.measure(args)
    assert "inputs uint8" in capsys.readouterr().out and result["loop_epoch_s"][0] > 0


# ----------------------------------------------------------------------------------------- --seeds auto:MIN:MAX
@pytest.mark.parametrize("value, message", [
    ("auto:0:5", "needs 1 <= MIN <= MAX, got MIN=0, MAX=5"),
    ("auto:9:3", "needs 1 <= MIN <= MAX, got MIN=9, MAX=3"),
    ("auto:5", "is not auto:MIN:MAX with two integers"),
    ("auto:x:15", "is not auto:MIN:MAX with two integers"),
    ("many", "is neither a number of seeds nor auto:MIN:MAX"),
])
def test_a_bad_seeds_spec_exits_2_naming_it(value, message, capsys, tmp_path):
    out = tmp_path / "x"
    with pytest.raises(SystemExit) as exit_:  # argparse's own error, as for any value its type refuses
        main(TINY[:4] + ["--seeds", value, "--out", str(out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m loop.bench") and "Traceback" not in err
    assert f"python -m loop.bench: error: argument --seeds: --seeds {value!r} " in err
    assert message in err and "auto:5:15" in err
    assert not out.exists()


def test_seeds_auto_is_parsed_and_listed_in_help(capsys):
    from loop.bench.__main__ import _parser
    from loop.bench.auto_seeds import AutoSeeds

    assert _parser().parse_args(["--seeds", "auto:5:15"]).seeds == AutoSeeds(5, 15)
    assert _parser().parse_args(["--seeds", "4"]).seeds == 4
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--seeds N|auto:MIN:MAX" in text and '"no difference" when the interval contains 1' in text


def test_seeds_auto_runs_through_the_cli_and_the_table_shows_verdicts(tmp_path, capsys, monkeypatch):
    from loop.bench import training

    def fake_train_one(ds, train, test, workload, hyperparameters, record, make_selector, *, time_limit_s=None,
                       calibration=None, irreducible_dir=None):
        label, study = record["trial_selector"], record["study"]
        seconds = {"Shuffle()": 10.0, "Freeze()": 5.0}.get(label, 10.0 * (1 + 0.1 * (-1) ** study))
        record.update({"task": "classification", "metrics": ["accuracy"], "loss": "sparse_categorical_crossentropy",
                       "target_metric": "val_accuracy", "n_train": 40, "n_test": 20, "loop_epochs": 1,
                       "frame": [{"epoch": 1.0, "step": 4, "samples_forwarded": 40, "samples_backpropagated": 40,
                                  "train_time_s": seconds, "selection_time_s": 0.0, "eval_time_s": 0.1,
                                  "loss": 0.3, "accuracy": 0.9, "val_loss": 0.3, "val_accuracy": 0.9}]})
        record["costs"]["wall_s"] = seconds
        return record

    monkeypatch.setattr(training, "prepare_dataset", lambda workload, data_dir=None: (None, None, None))
    monkeypatch.setattr(training, "train_one", fake_train_one)
    out = tmp_path / "out"
    args = ["--suite", "untuned", "--datasets", "spirals", "--selectors", "freeze,homogeneous", "--seeds", "auto:5:7",
            "--out", str(out),
            "--no-plots", "--bootstrap", "200"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "x auto:5:7 studies in float32" in captured.err and "auto seeds, round 1" in captured.err
    assert "more studies for spirals Homogeneous() (7), spirals Shuffle() (7)" in captured.err
    assert "loop.bench: trained 19 trials (0 pruned, 0 failed, 0 not applicable), skipped 0 already stored" in \
        captured.err
    markdown = (out / "table.md").read_text()  # the full table
    assert "| spirals | Freeze() | 5 | 5/5 |" in markdown
    assert "| spirals | Homogeneous() | 7 | 7/7 |" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| dataset | selector |"))
    assert "| verdict |" in header and "| bwd verdict |" in header
    row = next(line for line in markdown.splitlines() if "| Freeze() |" in line)
    assert "| 2 [2, 2] | win |" in row
    assert "| no difference |" in next(line for line in markdown.splitlines() if "| Homogeneous() |" in line)
    printed = {line.split()[0]: line.split()[1:] for line in captured.out.splitlines() if line.startswith("  ")}
    assert printed["Freeze()"][0] == "5/5" and printed["Freeze()"][-4:] == ["2", "[2,", "2]", "win"]
    assert printed["Homogeneous()"][0] == "7/7" and printed["Homogeneous()"][-2:] == ["no", "difference"]
    assert "verdict" in (out / "table.csv").read_text().splitlines()[0]
    assert main(args) == 0  # resumed: everything is stored
    err = capsys.readouterr().err
    assert "loop.bench: trained 0 trials (0 pruned, 0 failed, 0 not applicable), skipped 15 already stored" in err
    assert "auto seeds, round" not in err  # the MIN studies; no round is left


# ------------------------------------------------------------------------------- usage, subcommands, start-up
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_usage_lists_the_subcommands_and_each_has_its_own_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    usage = text.split("\n\n")[0]
    for command in ("[run]", "report --out DIR", "throughput", "overhead"):
        assert f"python -m loop.bench {command}" in usage
    assert max(len(line) for line in text.splitlines()) <= 100  # no help line runs across the terminal
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m loop.bench report") and "--out DIR" in text
    assert "--full-table" in text and "--suite" not in text and "protocol:" not in text
    assert max(len(line) for line in text.splitlines()) <= 100
    assert main(["overhead", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: python -m loop.bench overhead")


def test_report_refuses_the_options_of_a_run(capsys, tmp_path):
    out = results_dir(tmp_path / "out")
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--out", str(out), "--seeds", "3"])
    assert exit_.value.code == 2 and "unrecognized arguments: --seeds 3" in capsys.readouterr().err


def test_help_does_not_import_tensorflow():
    code = ("import sys\nfrom loop.bench.__main__ import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
            "    pass\nprint('tensorflow imported:', 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "tensorflow imported: False"


def test_the_main_job_prints_no_tensorflow_start_up_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "loop.bench"] + TINY + ["--out", str(tmp_path / "out")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for noise in ("absl::InitializeLog", "cuInit", "I0000 ", "E0000 ", "cpu_feature_guard", "oneDNN"):
        assert noise not in done.stderr, done.stderr
    assert done.stderr.startswith("loop.bench: 1 workloads x 1 selectors x 1 studies in float32 -> ")
    assert "spirals: target " in done.stdout


def test_start_up_filter_keeps_lines_that_are_not_start_up_notes(capfd):
    from loop import startup

    with startup._filtered_stderr():
        for line in ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
                     "I0000 00:00:1796547390.980663    4947 port.cc:153] oneDNN custom operations are on.",
                     "E0000 00:00:1796547395.108290    4947 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
                     "E0000 00:00:1796547395.108290    4947 op_kernel.cc:1857] OP_REQUIRES failed: a real error",
                     "a Python warning"):
            os.write(2, (line + "\n").encode())
    err = capfd.readouterr().err
    assert err.splitlines() == ["E0000 00:00:1796547395.108290    4947 op_kernel.cc:1857] OP_REQUIRES failed: a "
                                "real error", "a Python warning"]
