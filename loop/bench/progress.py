"""A campaign's progress: one bar that updates in place on a terminal, a few lines elsewhere.

On a terminal (``stream.isatty()``) a ``tqdm`` bar counts the trials left to train, with the elapsed time, the ETA
(from the trials trained so far: stored trials that are skipped take no time and leave the bar's total) and the
current workload, selector, study and trial.  Elsewhere (a log file, CI) it prints one line per finished
workload and selector: its trials trained, stored before, pruned, failed and trained beside another busy process
(:mod:`loop.bench.contention`), and the campaign's ETA; and, so that a
long workload's log is not silent for hours, a short line for a finished trial once :data:`HEARTBEAT_S` have passed
since the last line.
"""

import math
import sys
import time

from loop.bench.contention import is_contended

#: Away from a terminal, the longest silence (seconds) before a finished trial prints a line of its own.
HEARTBEAT_S = 300.0


def format_seconds(seconds):
    """``"4m05s"``, ``"42s"``, or ``"?"`` for None or a non-finite value."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Counts a campaign's trials.

    Args:
        planned: ``{(workload, selector): trials planned}``.
        stream: where it writes (default stderr); a terminal gets the bar.
        enabled: False writes nothing.
    """

    def __init__(self, planned, stream=None, enabled=True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.left = dict(planned)
        self.counts = {key: {"trained": 0, "stored": 0, "pruned": 0, "failed": 0, "other": 0, "contended": 0,
                            "seconds": 0.0}
                       for key in planned}
        self.start_time = time.perf_counter()
        self.trained, self.trained_s = 0, 0.0
        self.to_train = sum(planned.values())
        self.bar = None
        self.current = None
        self.last_line = self.start_time
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.to_train, file=self.stream, unit="trial", dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")

    def eta(self):
        """Seconds left: the trials left to train at the mean seconds of those trained so far (None before one)."""
        return self.trained_s / self.trained * (self.to_train - self.trained) if self.trained else None

    def begin(self, workload, selector, study, trial):
        """Shows the trial now training."""
        self.current = (study, trial)
        if self.bar is not None:
            self.bar.set_description_str(f"{workload} {selector} study {study} trial {trial}", refresh=True)

    def end(self, workload, selector, record=None, *, how="trained"):
        """Counts one planned trial as done: ``how`` is ``"trained"`` (with its ``record``), ``"stored"`` (skipped:
        already in the store), ``"claimed"`` (another process trains it) or ``"unloadable"``."""
        key = (workload, selector)
        count = self.counts[key]
        if how == "trained":
            seconds = float((record.get("costs") or {}).get("wall_s") or 0.0)
            self.trained += 1
            self.trained_s += seconds
            count["trained"] += 1
            count["seconds"] += seconds
            count["pruned"] += record["status"] == "pruned"
            count["failed"] += record["status"] == "failed"
            count["contended"] += is_contended(record)
            if self.bar is not None:
                self.bar.update(1)
        else:
            count["stored" if how == "stored" else "other"] += 1
            self.to_train -= 1
            if self.bar is not None:
                self.bar.total -= 1
                self.bar.refresh()
        self.left[key] -= 1
        if self.left[key] == 0 and self.enabled and self.bar is None and (count["trained"] or count["other"]):
            self._line(key, count)
        elif how == "trained" and self.enabled and self.bar is None and \
                time.perf_counter() - self.last_line >= HEARTBEAT_S:
            study, trial = self.current or ("?", "?")
            print(f"{workload} {selector} study {study} trial {trial}: {record['status']} in "
                  f"{format_seconds(float((record.get('costs') or {}).get('wall_s') or 0.0))} | "
                  f"{self._totals()}", file=self.stream, flush=True)
            self.last_line = time.perf_counter()

    def _line(self, key, count):
        parts = [f"{count['trained']} trained in {format_seconds(count['seconds'])}"]
        parts += [f"{count[name]} {word}" for name, word in (("stored", "already stored"), ("pruned", "pruned"),
                                                             ("failed", "FAILED"), ("other", "not trained here"),
                                                             ("contended", "under contention (see the report)"))
                  if count[name]]
        print(f"{key[0]} {key[1]}: {', '.join(parts)} | {self._totals()}", file=self.stream, flush=True)
        self.last_line = time.perf_counter()

    def _totals(self):
        elapsed = time.perf_counter() - self.start_time
        return (f"{self.trained}/{self.to_train} trained, elapsed {format_seconds(elapsed)}, ETA "
                f"{format_seconds(self.eta())}")

    def note(self, text):
        """A line that stays above the bar (a range test's result, a dataset that does not load)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self):
        """Closes the bar."""
        if self.bar is not None:
            self.bar.close()
