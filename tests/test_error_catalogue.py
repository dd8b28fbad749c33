"""The error catalogue (loop.error_catalogue): every case raises its type and message; docs/errors.md matches it.

Plan and data errors are also checked not to touch a checkpoint already written.
"""

import hashlib
import pathlib

import keras
import numpy as np
import pytest

from loop import Loop
from loop import error_catalogue as errors
from loop import error_triggers as triggers

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "errors.md"
_raised = {}


@pytest.mark.parametrize("case", errors.CATALOGUE, ids=[c.case for c in errors.CATALOGUE])
def test_catalogue_case_raises_its_error(case):
    err = errors.run(case)  # asserts the type and the message fragment
    _raised[case.case] = err
    assert str(err).strip(), "an error without a message"


def test_selector_error_keeps_its_traceback():
    case = next(c for c in errors.CATALOGUE if c.case.startswith("selector raises"))
    err = errors.run(case)
    assert isinstance(err, KeyError) and err.__notes__ == ["raised by selector _raises_mid_fit (__call__) at epoch 1"]
    frames = [frame.name for frame in __import__("traceback").extract_tb(err.__traceback__)]
    assert frames[-1] == "_raises_mid_fit"  # the selector's own frame, not a wrapper's


def test_docs_match_the_catalogue():
    raised = {c.case: _raised.get(c.case) or errors.run(c) for c in errors.CATALOGUE}
    assert DOCS.read_text() == errors.render(raised), "regenerate: python -m loop.error_catalogue > docs/errors.md"


def _digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


BAD_AT_EPOCH_1 = {
    "non-integer indices": lambda n: [np.array([0.0, 1.0])],
    "out of range": lambda n: [np.array([0, n])],
    "empty plan": lambda n: [],
    "nan weight": lambda n: [(np.arange(4), np.array([1.0, np.nan, 1.0, 1.0]))],
    "selector raises": lambda n: {}["boom"],
    # Huge weights overflow the weights within a few steps; then the loss is NaN.
    "nan loss": lambda n: [(np.arange(i, i + 8), np.full(8, 3e38)) for i in range(0, n, 8)],
}


@pytest.mark.parametrize("name", list(BAD_AT_EPOCH_1))
def test_errors_leave_the_last_checkpoint_intact(name, tmp_path):
    x, y = triggers.tiny_data()

    def run(bad_from_epoch):
        def plan(state):  # the same name in both runs, so the checkpoint's identity matches
            if state.epoch >= bad_from_epoch:
                return BAD_AT_EPOCH_1[name](state.num_samples)
            weight = 0.0 if name == "nan loss" else 1.0  # at a learning rate of 1e38 only zero weights are safe
            return [(np.arange(i, i + 8), np.full(8, weight)) for i in range(0, state.num_samples, 8)]
        loop = Loop(triggers.tiny_model(), loss="sparse_categorical_crossentropy", batch_size=8, selector=plan,
                    optimizer=keras.optimizers.SGD(_lr(name)))
        return loop, loop.fit((x, y), epochs=2, verbose=0, checkpoint_dir=tmp_path)

    with pytest.raises((ValueError, KeyError, FloatingPointError)):
        run(bad_from_epoch=0)
    assert not list(tmp_path.glob("ckpt-*")), "an error in the first epoch must not write a checkpoint"
    loop, _ = run(bad_from_epoch=99)  # epochs=2 completes; keep epoch 1's checkpoint, then extend
    before = _digest(tmp_path)
    with pytest.raises((ValueError, KeyError, FloatingPointError)):
        Loop(triggers.tiny_model(), loss="sparse_categorical_crossentropy", batch_size=8,
             selector=_named("plan", BAD_AT_EPOCH_1[name]),
             optimizer=keras.optimizers.SGD(_lr(name))).fit((x, y), epochs=3, verbose=0, checkpoint_dir=tmp_path)
    assert _digest(tmp_path) == before
    # The intact checkpoint still resumes: epochs 0-1 come from it, epoch 2 is trained now.
    resumed = Loop(triggers.tiny_model(), loss="sparse_categorical_crossentropy", batch_size=8,
                   selector=_named("plan", lambda n: [np.arange(8)]), optimizer=keras.optimizers.SGD(0.1))
    hist = resumed.fit((x, y), epochs=3, verbose=0, checkpoint_dir=tmp_path)
    assert [row["epoch"] for row in hist.rows] == [1.0, 2.0, 3.0]
    for a, b in zip(loop.model.get_weights()[:1], resumed.model.get_weights()[:1]):
        assert not np.array_equal(a, b)  # epoch 2 trained on top of the restored weights


def _lr(name):  # the second run's optimizer is restored from the checkpoint, learning rate included
    return 1e38 if name == "nan loss" else 0.1


def _named(name, make):
    def selector(state):
        return make(state.num_samples)
    selector.__name__ = name
    return selector
