"""How much of the machine other processes took while a trial trained: the check that a timing was measured alone.

On the seconds clock a trial's budget, schedule and time to target are training
seconds, so anything else running on the machine (a test suite, a second
benchmark, a notebook) slows the trial down and moves its result.  Every trial
therefore records ``costs["other_cpu_share"]``: the CPU time the rest of the
machine used while it trained, as a share of the machine's capacity
(``(busy - own) / (wall * cpus)``, busy from ``/proc/stat`` with steal time,
which a hypervisor took from this machine's CPUs, counted as busy; own is this
process's CPU time, every thread).  0 is a machine to itself; 0.5 on a 2-core
machine is one core taken by something else.  It is machine-wide: on a shared
host it counts other tenants too.  It is None where ``/proc/stat`` does not
exist (not Linux) and for trials stored before it was recorded.

:func:`contended` lists the studies with a trial over :data:`CONTENDED`; the
report names them with their directories
(``runs/<workload>/<selector slug>/study_<s>``); deleting one and running
again re-measures it.
A whole study, not one trial, because a study's later trials are pruned against
its earlier ones.
"""

import os
import time

#: Where the machine's CPU times are read (Linux).
PROC_STAT = "/proc/stat"

#: The share of the machine's CPU that other processes may take before a trial counts as measured under contention.
CONTENDED = 0.1


def _busy_seconds():
    """The machine's busy CPU seconds so far and its CPU count, from :data:`PROC_STAT`; None where it cannot be
    read."""
    try:
        with open(PROC_STAT) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    try:
        fields = [int(v) for v in lines[0].split()[1:]]
    except (IndexError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user and nice.
    busy = sum(fields[:8]) - fields[3] - (fields[4] if len(fields) > 4 else 0)
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return busy / os.sysconf("SC_CLK_TCK"), max(cpus, 1)


class CpuMeter:
    """Measures, from its creation, the share of the machine's CPU that processes other than this one used.

    >>> meter = CpuMeter()
    >>> ...  # train
    >>> share = meter.share()  # None where /proc/stat cannot be read
    """

    def __init__(self):
        self._start = (_busy_seconds(), time.process_time(), time.perf_counter())

    def share(self):
        """The other processes' share of the machine's CPU since creation (0 to 1), or None when unknown."""
        busy0, own0, wall0 = self._start
        now = _busy_seconds()
        wall = time.perf_counter() - wall0
        if busy0 is None or now is None or wall <= 0:
            return None
        other = (now[0] - busy0[0]) - (time.process_time() - own0)
        return float(min(max(other / (wall * now[1]), 0.0), 1.0))


def is_contended(record, threshold=CONTENDED):
    """Whether ``record`` trained beside processes that took more than ``threshold`` of the machine's CPU (False
    when its share is not known)."""
    share = (record.get("costs") or {}).get("other_cpu_share")
    return share is not None and share > threshold


def contended(records, threshold=CONTENDED):
    """The studies with a trial measured under contention: ``[(workload, selector, study, trials, worst share)]``.

    Args:
        records: trial records (``costs["other_cpu_share"]`` missing or None: not known, left out).
        threshold: the largest share of the machine's CPU other processes may take (:data:`CONTENDED`).
    """
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold={threshold!r}: give the share of the machine's CPU (0 <= threshold < 1) that "
                         f"other processes may take, e.g. {CONTENDED}")
    found = {}
    for record in filter(lambda r: is_contended(r, threshold), records):
        key = (record["workload"], record["selector"], record["study"])
        trials, worst = found.get(key, ((), 0.0))
        found[key] = (trials + (record["trial"],), max(worst, record["costs"]["other_cpu_share"]))
    return [(*key, tuple(sorted(trials)), worst) for key, (trials, worst) in sorted(found.items())]


def lines(records, threshold=CONTENDED):
    """The report's note on :func:`contended` studies (empty when there are none)."""
    found = contended(records, threshold)
    if not found:
        return []
    from loop.bench.store import slug

    listed = "; ".join(f"{workload} {selector} study {study} (trial{'s' if len(trials) > 1 else ''} "
                       f"{', '.join(map(str, trials))}: up to {worst:.0%}; runs/{workload}/{slug(selector)}/"
                       f"study_{study})" for workload, selector, study, trials, worst in found)
    return [f"Measured under contention (other processes took more than {threshold:.0%} of the machine's CPU while "
            f"a trial trained, so its times are too slow): {listed}. Delete those study directories and run again "
            "to re-measure them.", ""]


__all__ = ["CONTENDED", "CpuMeter", "contended", "is_contended", "lines"]
