"""The store under faults: unreadable files, two processes on one results directory, kill -9 mid-trial."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from loop.bench import records, store
from loop.bench.campaign import run_campaign
from loop.bench.suites import entry

#: Spirals with 240 training points, 2 epochs: a trial takes about a second.
TINY = dict(dataset="spirals", epochs=2, load_options={"n_samples": 300})


def tiny():
    return entry(TINY["dataset"], TINY["epochs"], load_options=TINY["load_options"])


def result_files(out):
    return sorted(str(p) for p in (out / "runs").rglob("trial_*.json"))


def test_paths_and_atomic_writes_leave_no_temporary_file(tmp_path):
    path = store.trial_path(str(tmp_path), "iris", "Shuffle()", 2, 3)
    assert path.endswith(os.path.join("iris", store.slug("Shuffle()"), "study_2", "trial_3.json"))
    store.write_json_atomic(path, {"a": 1})
    assert json.loads(open(path).read()) == {"a": 1}
    assert os.listdir(os.path.dirname(path)) == ["trial_3.json"]


def test_a_truncated_result_is_named_left_out_of_the_tables_and_re_run(tmp_path):
    out = tmp_path / "out"
    run_campaign([tiny()], ["shuffle"], 2, str(out), progress=False)
    first, second = result_files(out)
    kept = open(second, "rb").read()
    with open(first, "r+") as f:  # a file cut in the middle, as a full disk or a bad copy leaves it
        f.truncate(40)
    with pytest.warns(store.StoreWarning, match=r"truncated or not JSON.*left out") as caught:
        loaded = store.load(str(out))
    named = [str(w.message) for w in caught if issubclass(w.category, store.StoreWarning)]
    assert len(loaded) == 1 and len(named) == 1 and first in named[0]
    with pytest.warns(store.StoreWarning, match="trained again and the file rewritten"):
        summary = run_campaign([tiny()], ["shuffle"], 2, str(out), progress=False)
    assert summary["ran"] == 1 and summary["skipped"] == 1
    assert records.upgrade(json.load(open(first)))["status"] == "ok"
    assert open(second, "rb").read() == kept


def test_a_file_that_is_no_record_is_named_too(tmp_path):
    path = store.trial_path(str(tmp_path), "iris", "Shuffle()", 0, 0)
    store.write_json_atomic(path, {"something": "else"})
    with pytest.warns(store.StoreWarning, match="not a trial record"):
        assert store.load(str(tmp_path)) == []


def test_a_claimed_trial_is_left_to_its_owner_and_stored_once(tmp_path):
    out = tmp_path / "out"
    planned = records.new(tiny().workload, tiny().hyperparameters, selector="Shuffle()", study=1)
    with store.Store(str(out)).claim(planned) as mine:  # another process holds study 1's trial
        assert mine
        summary = run_campaign([tiny()], ["shuffle"], 2, str(out), progress=False)
    assert summary["ran"] == 1 and summary["claimed"] == 1
    assert [os.path.basename(os.path.dirname(p)) for p in result_files(out)] == ["study_0"]
    summary = run_campaign([tiny()], ["shuffle"], 2, str(out), progress=False)  # the owner died: it is free again
    assert summary["ran"] == 1 and summary["skipped"] == 1


def test_a_claim_is_exclusive_and_released(tmp_path):
    planned = records.new(tiny().workload, tiny().hyperparameters, selector="Shuffle()", study=0)
    first, second = store.Store(str(tmp_path)), store.Store(str(tmp_path))
    with first.claim(planned) as mine:
        with second.claim(planned) as theirs:
            assert mine and not theirs
    with second.claim(planned) as theirs:
        assert theirs
    assert not (tmp_path / "runs").exists()  # a claim writes no result


#: A campaign in a child process; prints its summary as JSON.
CHILD = textwrap.dedent("""
    import json, sys
    from loop.bench.campaign import run_campaign
    from loop.bench.suites import entry
    e = entry("spirals", {epochs}, load_options={{"n_samples": 300}})
    summary = run_campaign([e], ["shuffle", "random_drop"], {studies}, sys.argv[1], progress=False)
    print("SUMMARY " + json.dumps(summary))
""")


def child(out, epochs=2, studies=3):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.getcwd()}
    code = CHILD.format(epochs=epochs, studies=studies)
    return subprocess.Popen([sys.executable, "-c", code, str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def summary_of(proc):
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads(next(line for line in stdout.splitlines() if line.startswith("SUMMARY "))[8:])


def test_two_processes_on_one_out_neither_lose_nor_duplicate_a_trial(tmp_path):
    out = tmp_path / "out"
    first, second = child(out), child(out)
    summaries = [summary_of(first), summary_of(second)]
    planned = 2 * 3
    files = result_files(out)
    assert len(files) == planned
    assert sum(s["ran"] for s in summaries) == planned  # each trial trained by exactly one of them
    assert all(s["ran"] + s["skipped"] + s["claimed"] == planned for s in summaries)
    loaded = store.load(str(out))
    assert sorted((r["selector"], r["study"]) for r in loaded) == sorted(
        (s, k) for s in ("RandomDrop()", "Shuffle()") for k in range(3))
    assert not [p for p in (out / "runs").rglob("*") if ".tmp-" in p.name]


def test_after_kill_9_mid_trial_every_finished_result_is_kept_byte_for_byte(tmp_path):
    out = tmp_path / "out"
    proc = child(out, epochs=30, studies=3)
    deadline = time.time() + 180
    while len(result_files(out)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p: open(p, "rb").read() for p in result_files(out)}
    assert 2 <= len(done) < 6, "the campaign must be killed mid-way"
    stale = out / "runs" / "spirals" / "x.json.tmp-999999999"  # what a writer killed mid-write leaves
    stale.write_text("{")
    e = entry("spirals", 30, load_options={"n_samples": 300})
    summary = run_campaign([e], ["shuffle", "random_drop"], 3, str(out), progress=False)
    assert summary["skipped"] == len(done) and summary["ran"] == 6 - len(done)
    for path, content in done.items():
        assert open(path, "rb").read() == content
    assert len(result_files(out)) == 6 and not stale.exists()
