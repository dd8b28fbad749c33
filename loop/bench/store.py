"""The results directory: where each trial is stored, how it is written and read back, and the skip rule.

Layout: ``<out>/runs/<workload>/<selector>/study_<s>/trial_<k>.json``, one layout-2 record per file
(:mod:`loop.bench.records`).  Results stored by earlier layouts stay where they are and are read in place: a
layout-1 run at ``<out>/runs/<workload>/<selector>/seed_<s>.json`` is trial 0 of study ``s`` (a trial 0 trained
anew there, for another identity or a retried failure, replaces it, as a layout-2 trial is overwritten).

The store under faults:

* **Atomic writes.**  A record is written to ``<path>.tmp-<pid>``, flushed and fsynced, then moved into place with
  ``os.replace``: a reader sees the whole file or none, and a process killed mid-write (even by ``kill -9``)
  leaves a finished result byte for byte as it was.  Temporary files of processes that are gone are swept away
  when a campaign opens the store.
* **Unreadable files.**  A result file that does not parse (truncated, hand-edited) or is no record this build
  reads is named in a :class:`StoreWarning`; :func:`load` leaves it out, and a campaign re-runs that trial and
  writes it anew.  It is never skipped silently and never a traceback.
* **Two processes on one results directory.**  Each trial is claimed with an exclusive, non-blocking
  ``fcntl.flock`` on its own lock file under ``<out>/.locks/`` while it trains.  A process that finds a trial
  claimed leaves it to its owner and goes on; a process that wins the claim first reads the store again, so a
  trial finished meanwhile is not trained twice.  The kernel drops the lock of a process that dies, so a killed
  campaign never leaves a trial locked.  (``flock`` needs a local file system, or NFS v4 locks.)  A search that
  leaves a claimed trial to another process prunes its later trials against a best time without it: pruning
  stays exact (it only ever stops a trial that cannot win), it may just stop fewer.
"""

import contextlib
import glob
import json
import os
import re
import warnings

import numpy as np

from loop.bench import records as records_lib


class StoreWarning(UserWarning):
    """A result file that could not be read: it is left out of the tables and re-run by the next campaign."""


def slug(text):
    """A file-system-safe, collision-free name for ``text`` (a selector's label)."""
    import hashlib

    readable = re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")[:60] or "selector"
    return f"{readable}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def trial_path(out, workload, selector, study, trial):
    """Where trial ``trial`` of study ``study`` of the method ``selector`` on ``workload`` is stored."""
    return os.path.join(out, "runs", workload, slug(selector), f"study_{int(study)}", f"trial_{int(trial)}.json")


def legacy_run_path(out, workload, selector, study):
    """Where layout 1 stored an untuned run: the one trial of study ``study``."""
    return os.path.join(out, "runs", workload, slug(selector), f"seed_{int(study)}.json")


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def read_cached(path, *keys):
    """The JSON dict cached at ``path`` when its ``"key"`` is one of ``keys``; None when missing, unreadable or
    stale (the caller computes it again and writes it with :func:`write_json_atomic`)."""
    try:
        with open(path) as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) and stored.get("key") in keys else None


def write_json_atomic(path, payload):
    """Writes ``payload`` as JSON to ``path`` through a temporary file, ``fsync`` and ``os.replace``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(payload, f, default=_jsonable)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read(path):
    """``(record, problem)``: the layout-2 record stored at ``path`` (frame as a list), or None and why not.

    ``problem`` is None when the file does not exist (nothing stored) and a short reason when it exists but cannot
    be used ("truncated or not JSON", "not a trial record").
    """
    try:
        with open(path) as f:
            raw = json.load(f)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as err:
        return None, f"truncated or not JSON ({type(err).__name__}: {str(err)[:80]})"
    record = records_lib.upgrade(raw)
    return (record, None) if record is not None else (None, "not a trial record this build reads")


def _warn(path, problem, then):
    warnings.warn(f"result file {path!r}: {problem}; {then}", StoreWarning, stacklevel=3)


def result_files(out):
    """Every result file under ``out``: trials of layout 2 and runs of layout 1, sorted."""
    found = glob.glob(os.path.join(out, "runs", "*", "*", "study_*", "trial_*.json"))
    found += glob.glob(os.path.join(out, "runs", "*", "*", "seed_*.json"))
    return sorted(found)


def load(out):
    """Every record stored under ``out`` (layout 2, older layouts upgraded), ``frame`` as a ``pandas.DataFrame``.

    A file that cannot be read is named in a :class:`StoreWarning` and left out.
    """
    import pandas as pd

    loaded = []
    for path in result_files(out):
        record, problem = read(path)
        if record is None:
            _warn(path, problem, "left out of the tables (a campaign on this --out re-runs it)")
            continue
        record["frame"] = pd.DataFrame(record.get("frame") or [])
        loaded.append(record)
    return loaded


def precisions(out):
    """``{precision: example path}`` of the records stored under ``out`` (unreadable files are left out)."""
    found = {}
    for path in result_files(out):
        record, _ = read(path)
        if record is not None:
            found.setdefault(record.get("precision") or records_lib.DEFAULT_PRECISION, os.path.relpath(path, out))
    return found


def check_out_precision(out, precision):
    """Raises ``ValueError`` when ``out`` holds records of another precision than ``precision``."""
    other = {name: path for name, path in precisions(out).items() if name != precision}
    if other:
        found = "; ".join(f"{name} (e.g. {example})" for name, example in sorted(other.items()))
        raise ValueError(f"results directory (--out) {out!r} holds trials trained in another precision than "
                         f"{precision}: {found}. One results directory holds one precision, so that its tables "
                         f"compare like with like: give another --out for {precision}, or resume this one with "
                         f"--precision {sorted(other)[0]}")


def check_out_jit(out, jit_compile):
    """Raises ``ValueError`` when ``out`` holds trials compiled otherwise (with or without XLA) than ``jit_compile``:
    their times do not compare, and training them again would replace the stored ones."""
    for path in result_files(out):
        record, _ = read(path)
        if record is not None and bool(record.get("jit_compile")) != bool(jit_compile):
            stored = "with" if record.get("jit_compile") else "without"
            raise ValueError(f"results directory (--out) {out!r} holds trials trained {stored} XLA compilation "
                             f"(e.g. {os.path.relpath(path, out)}); one results directory holds one setting: give "
                             f"another --out, or resume this one {'with' if record.get('jit_compile') else 'without'}"
                             " --jit-compile")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """One results directory, as a campaign writes it: find a stored trial, claim one, save one.

    Args:
        out: the results directory (created).
    """

    def __init__(self, out):
        self.out = out
        os.makedirs(out, exist_ok=True)
        self._locks = os.path.join(out, ".locks")

    def sweep(self):
        """Removes the temporary files of writers that are gone (a process killed mid-write); returns their count."""
        removed = 0
        for tmp in glob.glob(os.path.join(self.out, "runs", "**", "*.json.tmp-*"), recursive=True):
            pid = tmp.rpartition(".tmp-")[2]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.remove(tmp)
                    removed += 1
        return removed

    def path(self, record):
        """Where ``record`` is stored."""
        return trial_path(self.out, record["workload"], record["selector"], record["study"], record["trial"])

    def find(self, planned):
        """The stored record with the identity of ``planned`` (:func:`loop.bench.records.identity`), or None.

        Looks at the trial's path and, for trial 0, at layout 1's run path.  A file there that cannot be read is
        named in a :class:`StoreWarning` and treated as absent, so the trial is trained again and the file rewritten.
        """
        paths = [self.path(planned)]
        if planned["trial"] == 0:
            paths.append(legacy_run_path(self.out, planned["workload"], planned["selector"], planned["study"]))
        want = records_lib.identity(planned)
        for path in paths:
            record, problem = read(path)
            if problem is not None:
                _warn(path, problem, "its trial is trained again and the file rewritten")
            elif record is not None and records_lib.identity(record) == want:
                return record
        return None

    @contextlib.contextmanager
    def claim(self, planned):
        """Claims ``planned``'s trial for this process while the block runs: yields True when it holds the claim,
        False when another process does (then leave the trial to it)."""
        import fcntl

        lock = os.path.join(self._locks, os.path.relpath(self.path(planned), self.out) + ".lock")
        os.makedirs(os.path.dirname(lock), exist_ok=True)
        ignore = os.path.join(self._locks, ".gitignore")
        if not os.path.exists(ignore):
            with open(ignore, "w") as f:
                f.write("*\n")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def save(self, record):
        """Writes ``record`` atomically to its path; returns the path.

        A trial 0 supersedes the layout-1 run of its study (one stored with another identity, or a failed one
        trained again), as a layout-2 trial is overwritten in place: that file is removed after the new one is
        written, so the store never holds two records of one trial.
        """
        path = self.path(record)
        write_json_atomic(path, record)
        if int(record["trial"]) == 0:
            with contextlib.suppress(FileNotFoundError):
                os.remove(legacy_run_path(self.out, record["workload"], record["selector"], record["study"]))
        return path
