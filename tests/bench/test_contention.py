"""The check that a trial trained alone: other processes' share of the machine's CPU (``loop.bench.contention``)."""

import os
import subprocess
import sys
import time

import pytest

from loop.bench import contention
from loop.bench.store import slug


def _stat(path, user, system, idle, steal=0, cpus=2):
    """A ``/proc/stat`` in the kernel's format: the total line, one line per CPU, then other counters."""
    per = [f"cpu{i} {user // cpus} 0 {system // cpus} {idle // cpus} 0 0 0 {steal // cpus} 0 0" for i in range(cpus)]
    path.write_text("\n".join([f"cpu  {user} 0 {system} {idle} 7 0 0 {steal} 0 0", *per, "intr 1 2 3",
                               "ctxt 99", "btime 1"]) + "\n")


def test_the_share_is_the_others_busy_time_over_the_machines_capacity(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    monkeypatch.setattr(contention, "PROC_STAT", str(stat))
    tick = os.sysconf("SC_CLK_TCK")
    clocks = {"own": 10.0, "wall": 100.0}
    monkeypatch.setattr(contention.time, "process_time", lambda: clocks["own"])
    monkeypatch.setattr(contention.time, "perf_counter", lambda: clocks["wall"])
    _stat(stat, user=1000 * tick, system=0, idle=0)
    meter = contention.CpuMeter()
    # 4 s of wall on 2 CPUs (8 CPU-seconds): the machine was busy 3 s (user 2 + system 0.5 + steal 0.5); iowait
    # and idle are not busy; this process used 1 s of them, so the others took 2 of 8.
    _stat(stat, user=1002 * tick, system=tick // 2, idle=5 * tick, steal=tick // 2)
    clocks.update(own=11.0, wall=104.0)
    assert meter.share() == pytest.approx(2 / 8, abs=0.01)
    clocks.update(own=13.0)  # everything busy was this process: nobody else
    assert meter.share() == 0.0


def test_an_unreadable_stat_gives_none(tmp_path, monkeypatch):
    monkeypatch.setattr(contention, "PROC_STAT", str(tmp_path / "missing"))
    assert contention.CpuMeter().share() is None
    (tmp_path / "garbled").write_text("not a stat file\n")
    monkeypatch.setattr(contention, "PROC_STAT", str(tmp_path / "garbled"))
    assert contention.CpuMeter().share() is None


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat (Linux)")
def test_a_busy_process_beside_this_one_is_seen():
    meter = contention.CpuMeter()
    busy = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    spin = subprocess.Popen([sys.executable, "-c", busy])
    spin.wait(timeout=30)
    time.sleep(0.05)
    share = meter.share()
    # One core of the machine's busy for about 1.5 s of the ~1.6 s: other load only adds to it.
    assert share >= 0.5 / os.cpu_count() and share <= 1


def test_contended_studies_are_listed_with_their_trials_worst_share_and_directory():
    def trial(selector, study, k, share):
        return {"workload": "spirals", "selector": selector, "study": study, "trial": k,
                "costs": {"wall_s": 1.0, **({} if share == "absent" else {"other_cpu_share": share})}}

    records = [trial("Shuffle()", 0, 0, 0.02), trial("Shuffle()", 0, 1, 0.4), trial("Shuffle()", 0, 2, 0.15),
               trial("Shuffle()", 1, 0, None), trial("RS2()", 2, 3, "absent"), trial("RS2()", 2, 4, 0.1),
               trial("RS2()", 3, 0, 0.11)]
    assert contention.contended(records) == [("spirals", "RS2()", 3, (0,), 0.11),
                                             ("spirals", "Shuffle()", 0, (1, 2), 0.4)]
    assert contention.contended(records, threshold=0.3) == [("spirals", "Shuffle()", 0, (1,), 0.4)]
    text = " ".join(contention.lines(records))
    assert "more than 10% of the machine's CPU" in text
    assert f"spirals Shuffle() study 0 (trials 1, 2: up to 40%; runs/spirals/{slug('Shuffle()')}/study_0)" in text
    assert f"runs/spirals/{slug('RS2()')}/study_3" in text and "study 2" not in text
    assert contention.lines(records[:1]) == []


@pytest.mark.parametrize("bad", [-0.1, 1, 1.5])
def test_a_threshold_outside_zero_to_one_is_refused(bad):
    with pytest.raises(ValueError, match=rf"threshold={bad!r}: give the share"):
        contention.contended([], threshold=bad)


def test_the_progress_line_counts_the_trials_trained_under_contention():
    import io

    from loop.bench.progress import Progress

    stream = io.StringIO()
    meter = Progress({("spirals", "Shuffle()"): 3}, stream=stream)
    for share in (0.05, 0.5, None):
        meter.end("spirals", "Shuffle()", {"status": "ok", "costs": {"wall_s": 1.0, "other_cpu_share": share}})
    line = stream.getvalue().splitlines()[-1]
    assert line.startswith("spirals Shuffle(): 3 trained in 3s, 1 under contention (see the report) | 3/3 trained")
