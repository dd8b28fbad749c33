"""What the command line checks before anything trains: the results and data directories, and the targets.

Each function returns the checked value or raises ``ValueError`` with a message that names the offending value and
how to fix it; the command line turns it into ``parser.error`` (exit status 2, no traceback).  Nothing here trains,
and nothing is written except :func:`writable_out`'s probe of the results directory.
"""

import os
import tempfile

#: What a results directory holds: name -> whether it is a directory.
OUTPUTS = {"runs": True, "plots": True, "table.csv": False, "table.md": False, "seed000.csv": False}


def directory_problem(path):
    """Why ``path`` cannot be (made) a directory this process writes in, or None when it can."""
    if os.path.isdir(path):
        return None if os.access(path, os.W_OK | os.X_OK) else "is a directory you cannot write in"
    if os.path.lexists(path):
        return "is a file, not a directory" if os.path.isfile(path) else "exists and is not a directory"
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot be created: {parent!r} is {'a file' if os.path.isfile(parent) else 'not a directory'}"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: you cannot write in {parent!r}"
    return None


def out_layout_problem(out, plots=True):
    """Why ``out`` cannot hold the results (a file where a directory goes, or the reverse), or None."""
    for name, is_dir in OUTPUTS.items():
        path = os.path.join(out, name)
        if os.path.lexists(path) and os.path.isdir(path) != is_dir and not (name == "plots" and not plots):
            return (f"cannot hold the results: {path!r} is {'not a directory' if is_dir else 'a directory'}; move "
                    "it away or give another --out")
    return None


def writable_out(out, flag="--out"):
    """Creates ``out`` if missing and proves a file can be written in it; returns ``out``.

    ``os.access`` says yes to root everywhere, even where the kernel then refuses (``/proc``, a read-only mount), so
    the directory is made and a temporary file written and removed.

    Raises:
        ValueError: the directory cannot be created or written, naming it and the system's reason.
    """
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise ValueError(f"{flag} {out!r} cannot be used as a results directory ({err.strerror or err}); give a "
                         "directory you can write in (it is created if missing)") from None
    return out


def data_dir(given, environ=None):
    """The data directory: ``given`` (``--data-dir``), else ``$LOOP_DATA_DIR``, else None.

    Raises:
        ValueError: it does not exist or is not a directory, naming where it came from.
    """
    environ = os.environ if environ is None else environ
    if given is not None:
        chosen, named = given, "--data-dir"
    else:
        chosen, named = environ.get("LOOP_DATA_DIR") or None, "$LOOP_DATA_DIR"
    if chosen is None:
        return None
    path = os.path.expanduser(chosen)  # as loop.datasets.load reads it
    if not os.path.isdir(path):
        state = "does not exist" if not os.path.lexists(path) else "is not a directory"
        fix = "leave --data-dir out" if named == "--data-dir" else "unset $LOOP_DATA_DIR"
        raise ValueError(f"{named} {chosen!r} {state}; give the directory of the original data files (layout in "
                         f"docs/datasets.md), or {fix} to use only the Keras cache and bundled data")
    return chosen


def targets(parsed, entries=()):
    """Checks every ``--target`` value against its metric's range and the workloads it names; returns ``parsed``.

    Args:
        parsed: ``{workload or None: {metric: value}}`` from :func:`loop.bench.scoring.targets.parse_targets`.
        entries: the suite entries to run (for a report: none), so that a target naming a workload that is not
            run is refused.

    Raises:
        ValueError: a threshold no metric can reach (an accuracy above 1, a negative error), or a target for a
            workload that is not run.
    """
    from loop import history

    names = [item.name for item in entries]
    for where, chosen in parsed.items():
        if where is not None and names and where not in names:
            raise ValueError(f"--target {where}:...: {where!r} is not a workload of this run; choose from "
                             f"{', '.join(names)}, or leave the workload out to target every one")
        try:
            history.parse_target(chosen)
        except ValueError as err:
            raise ValueError(f"--target {(where + ':') if where else ''}{', '.join(chosen)}: {err}") from None
    return parsed
