"""Regression pin: five selectors train exactly as the pre-refactor loop did.

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
the file records the commit and the reason under ``regenerated``).  ``OrderedSGD()``'s new rule (q only shrinks,
the last stage halves the weights) changes nothing below 80% accuracy, so it
is still built with its defaults.

Integers and floats are compared exactly (bit for bit).  That is sound here
because two runs of the generator in separate processes gave bit-identical
files (``deterministic=True`` enables TensorFlow op determinism, and the only
randomness is the seeded model initialisation and the selectors' seeded
``state.rng`` / stateless draws).  Nothing else calls ``set_random_seed``: a
Dense model without dropout does not depend on the global seed during fit.

Exact equality is tied to the numeric stack the file was made with
(TensorFlow, Keras, NumPy versions and the CPU's kernels, e.g. oneDNN); the
file records those versions and a failure message prints them next to the
running ones.  If the stack changes, regenerate from the *reference* code (the
commit recorded in the file, e.g. a ``git worktree`` of it), never from code
whose behaviour this test is meant to check.

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


def environment():
    import tensorflow as tf

    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__}


def _load():
    with open(REFERENCE) as f:
        return json.load(f)


def _mismatches(name, expected, actual):
    """Human-readable differences between stored and fresh values (exact comparison)."""
    out = []
    if len(actual["rows"]) != len(expected["rows"]):
        out.append(f"{name}: {len(actual['rows'])} history rows, reference has {len(expected['rows'])}")
    for i, (exp, act) in enumerate(zip(expected["rows"], actual["rows"])):
        for c in ROW_COLUMNS:
            if exp[c] != act[c]:
                out.append(f"{name}: rows[{i}][{c!r}] = {act[c]!r}, reference {exp[c]!r}")
    for field in ("losses", "trained_counts"):
        exp, act = expected[field], actual[field]
        if len(exp) != len(act):
            out.append(f"{name}: {field} has {len(act)} entries, reference {len(exp)}")
            continue
        bad = [i for i, (e, a) in enumerate(zip(exp, act)) if e != a]  # None == None for NaN
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
    problems = _mismatches(name, reference["selectors"][name], run(name))
    if problems:
        pytest.fail(f"{len(problems)} difference(s) from the pinned reference (made with "
                    f"{reference['environment']} from commit {reference.get('commit')}; running on "
                    f"{environment()}):\n" + "\n".join(problems[:40]))


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
