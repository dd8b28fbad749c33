"""Regression pin: five selectors train as the pre-refactor loop did (bit for bit on the recorded CPU).

What it pins
------------
For each of ``Shuffle()``, ``DyBAT()``, ``InfoBatch()``, ``SelectiveBackprop()``
and ``OrderedSGD()`` as they were when the file was made, one small
deterministic fit is run (see :data:`SELECTORS` for how each is built today):
192 training and 64 validation samples of 8 float32 features from
``np.random.default_rng(0)`` (label = argmax of the first 3 features), a
Dense(16, relu) -> Dense(3, softmax) model built right after
``keras.utils.set_random_seed(0)``, and ``Loop(..., batch_size=16, seed=0,
deterministic=True, steps_per_execution=4).fit(..., epochs=4)``.  The test
compares, against ``tests/data/reference_histories.json``:

* every history row's ``epoch, step, samples_seen, samples_backpropagated,
  loss, accuracy, val_loss, val_accuracy`` (not the time columns),
* ``loop.losses`` (the per-sample last-seen loss table; NaN stored as null),
* ``loop.trained_counts``.

On this small problem the train accuracy stays below 80%, so ``OrderedSGD()``
keeps q = s throughout and its pinned values equal ``Shuffle()``'s: it pins the
mask-mode step, not the top-q choice.

Some defaults have since changed on purpose, to follow the methods' reference
code; the entries still pin the old behaviour, built through explicit options:
``DyBAT()`` then trained each round's batches highest loss first, which is
``DyBAT(order="loss")`` now; ``InfoBatch()`` then dropped each well-learned
sample independently and pruned every epoch ``e < 0.875 * 4``, i.e. all four,
which is ``InfoBatch(pruning="bernoulli", delta=1.0)`` now (its pruning epochs
are ``e + 1 <= delta * epochs``).  ``SelectiveBackprop()``'s entry could not be
kept: its percentile rule, its backward batches (queued to exactly
``batch_size``), its priming epoch and the source of a filtered step's train
metrics all changed together to follow the reference, so that entry alone was
re-run from the new code (``--regenerate --only SelectiveBackprop --why ...``;
the file records the commit and the reason under ``regenerated``), and re-run
again when its keep draws became seeded by candidate batch instead of by
optimizer step (issue 23; the other four entries stayed bit-identical).  ``OrderedSGD()``'s new rule (q only shrinks,
the last stage halves the weights) changes nothing below 80% accuracy, so it
is still built with its defaults.

How values are compared
-----------------------
Integers and counts (``epoch``, ``step``, ``samples_seen``,
``samples_backpropagated``, ``trained_counts``) and the positions of NaN
losses (null) are compared exactly everywhere.  Floats (``loss``,
``accuracy``, ``val_loss``, ``val_accuracy``, ``losses``) are compared exactly
only when the running environment equals the recorded one, the CPU's
instruction set included (:func:`environment`); elsewhere within
``rtol = 1e-5`` and ``atol = 1e-6`` (:data:`RTOL`, :data:`ATOL`).

Why exact where the environment matches: two runs of the generator in separate
processes gave bit-identical files (``deterministic=True`` enables TensorFlow
op determinism, and the only randomness is the seeded model initialisation and
the selectors' seeded ``state.rng`` / stateless draws).  Nothing else calls
``set_random_seed``: a Dense model without dropout does not depend on the
global seed during fit.

Why a tolerance elsewhere: the float32 kernels (oneDNN's matrix products,
Eigen's reductions) pick their code path by the CPU's instruction set, and
another path sums in another order.  With AVX2 and FMA but no AVX-512 (on the
AVX-512 machine the file was made on, ``ONEDNN_MAX_CPU_ISA=AVX2`` reproduces
it) all five entries differ, by at most 4.8e-7 absolute and 6.1e-7 relative
(:func:`run` against the file, every float, measured so), a few float32 ulps
(2**-23 = 1.2e-7 relative).  ``rtol = 1e-5`` allows about 80 ulps, 16 times
the measured difference: room for other kernels' rounding over the 48 steps,
yet far below any change of behaviour (one
sample kept or dropped differently moves a loss by 1e-3 or more, and changes
the exact counts anyway).  ``atol = 1e-6`` is for values near 0 (a per-sample
loss of a well-classified sample, an accuracy of 0), where a relative
tolerance shrinks to nothing while the rounding error stays that of the
order-1 logits the value was computed from.

The recorded environment is the Python, TensorFlow, Keras and NumPy versions
and ``cpu``: the machine, the x86 SIMD flags of ``/proc/cpuinfo`` (SSE4.2,
AVX*, FMA, F16C, AMX*) and the ``ONEDNN_MAX_CPU_ISA`` and
``TF_ENABLE_ONEDNN_OPTS`` variables that change oneDNN's kernels.  The
``cpu`` entry was added after the file was made, for an AVX-512 machine: on
that machine with those variables unset every value reproduces bit for bit.
A failure message prints the recorded and running environments.  If the
stack changes, regenerate from the *reference* code (the commit recorded in
the file, e.g. a ``git worktree`` of it), never from code whose behaviour this
test is meant to check.

Regenerating (deliberately only; the test never writes the file)::

    # in a checkout of the reference commit, with that checkout's loop imported:
    PYTHONPATH=. python tests/test_reference_histories.py --regenerate
    # or write elsewhere:  ... --regenerate --output /tmp/reference_histories.json

Without ``--regenerate`` the script refuses to write anything.
"""

import json
import math
import os
import pathlib
import platform
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from loop import Loop
from loop.selectors import DyBAT, InfoBatch, OrderedSGD, SelectiveBackprop, Shuffle

REFERENCE = pathlib.Path(__file__).resolve().parent / "data" / "reference_histories.json"

#: name -> factory; each fit gets a fresh selector that behaves as the name's default did when pinned.
SELECTORS = {
    "Shuffle": Shuffle,
    "DyBAT": lambda: DyBAT(order="loss"),
    "InfoBatch": lambda: InfoBatch(pruning="bernoulli", delta=1.0),
    "SelectiveBackprop": SelectiveBackprop,
    "OrderedSGD": OrderedSGD,
}

ROW_COLUMNS = ("epoch", "step", "samples_seen", "samples_backpropagated",
               "loss", "accuracy", "val_loss", "val_accuracy")
INT_COLUMNS = ("step", "samples_seen", "samples_backpropagated")
#: Compared exactly everywhere: counts (``epoch`` is a float that counts epochs).
EXACT_COLUMNS = ("epoch",) + INT_COLUMNS
#: Float tolerance where the environment differs from the recorded one (see the module docstring).
RTOL, ATOL = 1e-5, 1e-6
#: The ``/proc/cpuinfo`` flags that choose float kernels' code paths.
ISA_FLAGS = re.compile(r"sse4_2|avx\w*|fma|f16c|amx\w*")


def make_problem():
    """The fixed data: 192 training and 64 validation samples, 8 features, 3 classes."""
    rng = np.random.default_rng(0)

    def draw(n):
        x = rng.normal(size=(n, 8)).astype("float32")
        y = np.argmax(x[:, :3], axis=1).astype("int32")
        return x, y

    return draw(192), draw(64)


def run(name):
    """Fits one selector on the fixed problem; returns the values the reference file stores."""
    (x, y), (vx, vy) = make_problem()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    loop = Loop(model, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                selector=SELECTORS[name](), batch_size=16, seed=0, deterministic=True, steps_per_execution=4)
    history = loop.fit((x, y), epochs=4, validation_data=(vx, vy), verbose=0)
    rows = []
    for row in history.rows:
        missing = [c for c in ROW_COLUMNS if c not in row]
        assert not missing, f"{name}: history row lacks {missing}; it has {sorted(row)}"
        rows.append({c: int(row[c]) if c in INT_COLUMNS else float(row[c]) for c in ROW_COLUMNS})
    losses = [None if math.isnan(v) else float(v) for v in np.asarray(loop.losses, np.float64).tolist()]
    counts = [int(v) for v in np.asarray(loop.trained_counts).tolist()]
    return {"rows": rows, "losses": losses, "trained_counts": counts}


def cpu():
    """The CPU as far as float32 kernels see it: machine, SIMD flags and oneDNN's ISA switches."""
    flags = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = sorted({flag for flag in line.split(":", 1)[1].split() if ISA_FLAGS.fullmatch(flag)})
                    break
    except OSError:
        flags = None  # not Linux: unknown, so never equal to a recorded list
    return {"machine": platform.machine(), "isa_flags": flags,
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}


def environment():
    """What exact float equality depends on: library versions and :func:`cpu`."""
    import tensorflow as tf

    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "cpu": cpu()}


def _load():
    with open(REFERENCE) as f:
        return json.load(f)


def _close(expected, actual, exact):
    """Float equality: bit for bit when ``exact``, else within :data:`RTOL` and :data:`ATOL`."""
    return expected == actual if exact else math.isclose(actual, expected, rel_tol=RTOL, abs_tol=ATOL)


def _mismatches(name, expected, actual, exact=True):
    """Human-readable differences between stored and fresh values.

    Counts and NaN positions (null losses) are always compared exactly; floats
    bit for bit when ``exact``, else within :data:`RTOL` and :data:`ATOL`.
    """
    out = []
    if len(actual["rows"]) != len(expected["rows"]):
        out.append(f"{name}: {len(actual['rows'])} history rows, reference has {len(expected['rows'])}")
    for i, (exp, act) in enumerate(zip(expected["rows"], actual["rows"])):
        for c in ROW_COLUMNS:
            same = exp[c] == act[c] if c in EXACT_COLUMNS else _close(exp[c], act[c], exact)
            if not same:
                out.append(f"{name}: rows[{i}][{c!r}] = {act[c]!r}, reference {exp[c]!r}")
    for field in ("losses", "trained_counts"):
        exp, act = expected[field], actual[field]
        if len(exp) != len(act):
            out.append(f"{name}: {field} has {len(act)} entries, reference {len(exp)}")
            continue
        if field == "trained_counts":
            bad = [i for i, (e, a) in enumerate(zip(exp, act)) if e != a]
        else:  # NaN (None) where the reference has NaN, and close floats elsewhere
            bad = [i for i, (e, a) in enumerate(zip(exp, act))
                   if (e is None) != (a is None) or (e is not None and not _close(e, a, exact))]
        if bad:
            diffs = [abs(exp[i] - act[i]) for i in bad if exp[i] is not None and act[i] is not None]
            worst = f", largest |difference| {max(diffs)!r}" if diffs else ""
            first = ", ".join(f"[{i}] {act[i]!r} vs {exp[i]!r}" for i in bad[:5])
            out.append(f"{name}: {field} differs at {len(bad)} of {len(exp)} samples{worst} (first: {first})")
    return out


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.exists():
        pytest.fail(f"{REFERENCE} is missing; see this module's docstring for how it was generated")
    return _load()


@pytest.mark.parametrize("name", list(SELECTORS))
def test_history_matches_reference(reference, name):
    assert name in reference["selectors"], f"{REFERENCE.name} has no entry for {name}"
    exact = reference["environment"] == environment()
    problems = _mismatches(name, reference["selectors"][name], run(name), exact=exact)
    if problems:
        how = "bit for bit" if exact else f"floats within rtol={RTOL}, atol={ATOL}"
        pytest.fail(f"{len(problems)} difference(s) from the pinned reference, compared {how} (made with "
                    f"{reference['environment']} from commit {reference.get('commit')}; running on "
                    f"{environment()}):\n" + "\n".join(problems[:40]))


def test_comparison_is_exact_for_counts_and_nan_and_tolerant_for_floats():
    """The comparison itself: the rounding of another ISA passes, a changed count or NaN position never does."""
    row = {"epoch": 1.0, "step": 12, "samples_seen": 192, "samples_backpropagated": 48, "loss": 1.3843517303466797,
           "accuracy": 0.25, "val_loss": 1.25, "val_accuracy": 0.0}
    expected = {"rows": [row], "losses": [1.4590290784835815, None, 3e-7], "trained_counts": [1, 0, 2]}
    rounded = {"rows": [{**row, "loss": 1.3843516111373901}], "losses": [1.459028959274292, None, 1e-7],
               "trained_counts": [1, 0, 2]}
    assert _mismatches("x", expected, rounded, exact=False) == []
    assert len(_mismatches("x", expected, rounded, exact=True)) == 2
    assert _mismatches("x", expected, {**rounded, "trained_counts": [1, 1, 2]}, exact=False)
    assert _mismatches("x", expected, {**rounded, "losses": [1.459028959274292, 0.5, 1e-7]}, exact=False)
    assert _mismatches("x", expected, {**rounded, "rows": [{**row, "samples_backpropagated": 49}]}, exact=False)
    assert _mismatches("x", expected, {**rounded, "rows": [{**row, "loss": row["loss"] * (1 + 3 * RTOL)}]},
                       exact=False)


def test_environment_records_the_cpu(reference):
    """The file records the CPU whose instruction set its exact floats depend on."""
    assert "cpu" in reference["environment"], "the reference file's environment lacks the cpu entry"
    here = cpu()
    assert set(here) == set(reference["environment"]["cpu"])
    if platform.system() == "Linux":
        assert here["isa_flags"], "no SIMD flags read from /proc/cpuinfo"


# ------------------------------------------------------------- regeneration
def _commit():
    """The commit (and whether its tree was dirty) of the checkout whose ``loop`` is imported."""
    import loop

    where = os.path.dirname(os.path.abspath(loop.__file__))
    try:
        sha = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")


def regenerate(output, only=None, why=None):
    """Writes every entry, or with ``only`` re-runs just those names and keeps the others (with ``why``)."""
    import loop

    if only:
        data = _load()
        if data["environment"] != environment():
            raise SystemExit(f"the file was made with {data['environment']}, this is {environment()}: entries made "
                             "in another environment would not compare bit for bit; regenerate them all")
        unknown = [name for name in only if name not in SELECTORS]
        if unknown:
            raise SystemExit(f"unknown entries {unknown}; choose from {list(SELECTORS)}")
        for name in only:
            data["selectors"][name] = run(name)
            data.setdefault("regenerated", {})[name] = {"commit": _commit(), "why": why}
    else:
        data = {
            "description": "Pinned histories of tests/test_reference_histories.py; regenerate only deliberately.",
            "commit": _commit(),
            "environment": environment(),
            "selectors": {name: run(name) for name in SELECTORS},
        }
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"wrote {output} from loop at {os.path.dirname(loop.__file__)} (commit {_commit()})")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Regenerates the pinned reference histories.")
    parser.add_argument("--regenerate", action="store_true", help="really (re)write the reference file")
    parser.add_argument("--output", default=str(REFERENCE), help=f"where to write (default {REFERENCE})")
    parser.add_argument("--only", nargs="+", help="re-run only these entries, keeping the others")
    parser.add_argument("--why", help="with --only: why the entry changed on purpose (stored in the file)")
    args = parser.parse_args()
    if not args.regenerate:
        parser.error("refusing to write without --regenerate; see the module docstring")
    if args.only and not args.why:
        parser.error("--only needs --why: say what changed on purpose")
    regenerate(args.output, args.only, args.why)
