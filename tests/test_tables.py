"""loop.tables: what one step records, and that a checkpoint saves and restores the module whole."""

import numpy as np
import pytest
import tensorflow as tf

from loop.tables import Tables


def test_account_records_losses_counters_and_trained_rows():
    tables = Tables(6)
    tables.account(tf.constant([4, 1, 4]), tf.constant([4, 4]), tf.constant([0.5, 0.25, 0.75]))
    tables.account(tf.constant([2]), tf.constant([], tf.int32), tf.constant([1.0]))
    loss = tables.loss.numpy()
    assert loss[4] == 0.75 and loss[1] == 0.25 and loss[2] == 1.0 and np.isnan(loss[[0, 3, 5]]).all()
    assert tables.loss_step.numpy().tolist() == [-1, 0, 1, -1, 0, -1]  # stamped before the step counts
    assert tables.trained.numpy().tolist() == [0, 0, 0, 0, 2, 0]
    assert tables.counts() == {"step": 2, "samples_seen": 4, "samples_forwarded": 4, "samples_backpropagated": 2}
    tables.add_forwards(3)  # e.g. a score pass: forwarded, not seen in a training step
    assert tables.counts()["samples_forwarded"] == 7 and tables.counts()["samples_seen"] == 4
    assert int(tables.first_bad_step.numpy()) == -1
    tables.account(tf.constant([0]), tf.constant([0]), tf.constant([np.nan]))
    tables.account(tf.constant([0]), tf.constant([0]), tf.constant([np.inf]))
    assert int(tables.first_bad_step.numpy()) == 2  # the first non-finite step is kept


def test_new_data_keeps_the_counters():
    tables = Tables(4, positions=True)
    tables.account(tf.constant([0, 1]), tf.constant([0, 1]), tf.constant([1.0, 2.0]))
    bigger = tables.with_samples(10)
    assert bigger.loss.shape == (10,) and np.isnan(bigger.loss.numpy()).all()
    assert bigger.counts()["step"] == 1 and bigger.steps is tables.steps and bigger.positions is None
    assert bigger.forward is tables.forward and bigger.counts()["samples_forwarded"] == 2
    tables.next_candidate()
    assert bigger.candidates is tables.candidates and int(bigger.candidates.numpy()) == 1
    assert tables.positions is not None


def test_checkpoint_saves_the_module_whole(tmp_path):
    tables = Tables(5)
    tables.account(tf.constant([1, 3]), tf.constant([3]), tf.constant([0.1, 0.2]))
    tables.next_candidate(), tables.next_candidate()
    path = tf.train.Checkpoint(tables=tables).save(str(tmp_path / "t"))
    restored = Tables(5)
    tf.train.Checkpoint(tables=restored).restore(path).assert_existing_objects_matched()
    for name in ("loss", "loss_step", "trained", "steps", "seen", "backpropagated", "first_bad_step", "candidates"):
        np.testing.assert_array_equal(getattr(restored, name).numpy(), getattr(tables, name).numpy())


def test_next_candidate_numbers_candidate_batches_from_zero():
    tables = Tables(3)
    assert [int(tables.next_candidate().numpy()) for _ in range(3)] == [0, 1, 2]
    assert int(tables.candidates.numpy()) == 3 and tables.counts()["step"] == 0  # no optimizer step counted


def test_the_nonfinite_step_and_the_position_losses_are_read_through_methods():
    tables = Tables(4, positions=True)
    assert tables.nonfinite_step() is None
    tables.account(tf.constant([0, 1]), tf.constant([0, 1]), tf.constant([1.0, 2.0]))
    tables.account(tf.constant([2]), tf.constant([2]), tf.constant([np.inf]))
    assert tables.nonfinite_step() == 1  # the step that saw it
    tables.clear_nonfinite()
    assert tables.nonfinite_step() is None
    tables.reset_positions(3)
    tables.positions[1:3].assign([0.5, 0.25])
    np.testing.assert_array_equal(tables.position_losses(), [0.0, 0.5, 0.25])
    np.testing.assert_array_equal(tables.position_losses(1, 2), [0.5])
    plain = Tables(4)
    plain.reset_positions(3)  # no positions kept: nothing to reset
    with pytest.raises(RuntimeError, match="no per-position losses"):
        plain.position_losses()
