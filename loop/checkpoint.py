"""Checkpoint and resume for ``Loop.fit``: a thin wrapper over ``tf.train.CheckpointManager``.

What one checkpoint holds, all in one ``tf.train.Checkpoint`` (so it is written
and becomes the latest as a whole, or not at all):

* TensorFlow state: the model's variables (weights and the Keras
  ``SeedGenerator`` states of e.g. ``Dropout``), the optimizer (a
  ``keras.optimizers.LossScaleOptimizer`` whole: its dynamic loss scale and
  growth counter with the wrapped optimizer's slots), the train and
  validation metrics, and the :class:`loop.tables.Tables` module whole (the
  per-sample loss table, ``loss_step``, trained counts and the step, seen,
  backpropagated and candidate-batch counters).  A checkpoint written before
  ``Tables.candidates`` existed still restores: the candidate counter, which
  seeds the random draws of SelectiveBackprop and RandomDrop, then starts at
  the restored step count plus one, past every step that seeded the older
  code's draws, so no draw of the checkpointed run is repeated.
* Python state, as one ``tf.train.experimental.PythonState`` blob (an in-memory
  ``.npz`` of arrays plus JSON, packed by :mod:`loop.python_state`): the run's
  identity (selector, seed, batch size, number of samples, the model's dtype
  policy and whether the loss is scaled, and a digest of ``fit``'s sample
  weights), where the loop is (epoch and batch), the history rows, the timing
  counters, the last logs, the selector's ``get_state()`` and, for a
  checkpoint taken mid-epoch, the epoch's plan.

``CheckpointManager`` writes the data files first and switches its
``checkpoint`` index file with an atomic rename last, so a process killed while
saving (even with SIGKILL) leaves the previous checkpoint as the latest.

When checkpoints are saved: at the end of every epoch, and when the fit gets
SIGTERM or SIGINT (Ctrl-C).  :meth:`Checkpointer.guard` installs handlers for
both for the duration of the fit only; they set a flag that the eager loop reads
between compiled chunks, so the checkpoint is taken at a chunk boundary (at most
``steps_per_execution`` steps later) with the plan and position of the current
epoch, and a resumed fit continues with the next batch of that plan: the run is
the same as one that was never stopped.  Then SIGINT raises
``KeyboardInterrupt`` and SIGTERM calls the previous handler (the default one
exits with status 143).  A second Ctrl-C stops at once without saving.  A fit
killed without warning (SIGKILL, power loss) resumes from the end of the last
completed epoch.  The handlers are only installed from the main thread.

What a damaged directory does (:meth:`Checkpointer.restore`): the checkpoints
are tried newest first, those the ``checkpoint`` index file lists (the
``max_to_keep`` last), or, when that file is garbage or missing, every
``ckpt-<n>`` in the directory.  A checkpoint that cannot be read whole (a truncated or
corrupt data or index file) or that holds other variables (another model's
architecture, another optimizer) is skipped, and the fit resumes from the
newest intact one with a warning that names the files skipped and why.  When
the directory holds checkpoint files but none can be read (or its index file
is garbage), ``restore`` raises ``ValueError`` naming each file and its fault,
and nothing is written there: pass a fresh ``checkpoint_dir`` or delete that
one.  A ``checkpoint_dir`` that is a file is refused in the same way.  A
checkpoint of another run (selector, seed, batch size, ...) is refused, never
skipped.
"""

import glob
import hashlib
import json
import os
import re
import signal
import warnings

import numpy as np
import tensorflow as tf

from loop.protocol import describe
from loop.python_state import PythonBlob, pack, selector_state, unpack

#: Keys of a checkpoint's identity; a resumed fit must match all of them.
IDENTITY = ("selector", "seed", "batch_size", "num_samples", "loss", "replicas", "precision", "loss_scale",
            "sample_weight")

#: The checkpoint key of ``Tables.candidates`` (absent from checkpoints written before it existed).
CANDIDATES_KEY = "tables/candidates/.ATTRIBUTES/VARIABLE_VALUE"

#: The identity of a checkpoint written before a key existed (all of them trained in float32, unscaled, unweighted).
IDENTITY_DEFAULTS = {"precision": "float32", "loss_scale": False, "sample_weight": None}


def precision(model, optimizer):
    """``{"precision": the model's dtype policy name, "loss_scale": optimizer is a LossScaleOptimizer}``.

    A checkpoint of one precision does not resume a fit of another: a
    ``LossScaleOptimizer`` holds other variables than the optimizer it wraps,
    and the two would not train alike.
    """
    import keras

    policy = getattr(getattr(model, "dtype_policy", None), "name", None) or "float32"
    return {"precision": str(policy), "loss_scale": isinstance(optimizer, keras.optimizers.LossScaleOptimizer)}


def run_identity(*, selector, seed, batch_size, num_samples, loss, strategy, sample_weight):
    """The values of :data:`IDENTITY` that a fit's arguments fix (the rest is :func:`precision`'s).

    Args:
        selector: the selector's name (``loop.protocol.describe``).
        seed, batch_size, num_samples, loss: the loop's seed and batch size, the number of training samples and the
            loss's name.
        strategy: the ``tf.distribute`` strategy, or None (one replica).
        sample_weight: the fit's per-sample weights, or None; a resumed fit must weight its samples alike, so a
            digest of them is kept.

    Returns:
        ``{key: value}`` for those keys, to pass as ``Checkpointer(identity=...)``.
    """
    replicas = 1 if strategy is None else strategy.num_replicas_in_sync
    weights = None if sample_weight is None else hashlib.sha256(sample_weight.tobytes()).hexdigest()[:16]
    return {"selector": selector, "seed": seed, "batch_size": batch_size, "num_samples": int(num_samples),
            "loss": loss, "replicas": replicas, "sample_weight": weights}


class Resume:
    """Where a restored run continues.

    Attributes:
        epoch: the epoch to run next (or to continue, when ``plan`` is set).
        batch: the next batch of ``plan`` (0 at an epoch boundary).
        plan: ``(indices, weights, bounds)`` of the interrupted epoch, or None.
        start_step: the optimizer step at which the interrupted epoch began.
        rows, timer, logs, last_val: the history rows, timing counters and
            last train/validation logs.
        stopped: the checkpointed fit stopped early (at its target or by a
            callback); a resumed fit then trains no further.
    """

    def __init__(self, blob):
        self.epoch = int(blob["epoch"])
        self.batch = int(blob["batch"])
        self.plan = blob.get("plan")
        self.start_step = blob.get("start_step")
        self.rows = blob["rows"]
        self.timer = blob["timer"]
        self.logs = blob["logs"]
        self.last_val = blob["last_val"]
        self.stopped = bool(blob["stopped"])


def _worker_directory(directory, strategy):
    """Non-chief workers of a multi-worker strategy write to a directory of their own (TF requires all to save)."""
    if strategy is None or getattr(strategy.extended, "should_checkpoint", True):
        return directory
    resolver = strategy.cluster_resolver
    return os.path.join(directory, f".{resolver.task_type}-{resolver.task_id}")


#: The file-name prefix of the checkpoints ``tf.train.CheckpointManager`` writes (``ckpt-<n>.index``, ...).
PREFIX = "ckpt"


class UnreadableCheckpoint(Exception):
    """A checkpoint that cannot be restored: truncated, corrupt, or holding another model's variables."""


class _DifferentRun(ValueError):
    """A readable checkpoint of another run: refused, never skipped."""


def _fault(err):
    """What is wrong with a checkpoint, in words, from the exception its reading raised."""
    if isinstance(err, UnreadableCheckpoint):
        return str(err)
    text = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    shapes = re.search(r"incompatible tensor with shape (\(.*?\)) when attempting to restore variable with shape "
                       r"(\(.*?\))", text)
    if shapes:
        return (f"it holds another model: a variable of shape {shapes.group(2)} here has shape {shapes.group(1)} "
                "there (another architecture)")
    if isinstance(err, AssertionError):
        return "it holds other variables than this fit's model and optimizer (another architecture or optimizer)"
    if isinstance(err, tf.errors.NotFoundError) or "No such file" in text:
        return f"files are missing ({text})"
    return f"it is truncated or corrupt ({type(err).__name__}: {text})"


class Checkpointer:
    """Saves and restores everything a ``Loop.fit`` needs to resume exactly.

    Args:
        directory: the checkpoint directory; created if missing.
        model: the Keras model.
        optimizer: its optimizer (a ``LossScaleOptimizer`` is saved whole).
        metrics: the Keras metric objects of the fit (train and validation).
        tables: the :class:`loop.tables.Tables` module, saved whole.
        selector: a zero-argument function returning the selector whose
            ``get_state``/``set_state`` hold its learned state.
        identity: the values a resumed fit must share with this one (see :data:`IDENTITY`).
        strategy: the ``tf.distribute`` strategy, or None.
        max_to_keep: checkpoints kept by the ``CheckpointManager``.
    """

    def __init__(self, directory, *, model, optimizer, metrics, tables, selector, identity, strategy=None,
                 max_to_keep=2):
        self.directory = os.fspath(directory)
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise ValueError(f"checkpoint_dir {self.directory!r} is a file, not a directory; pass the path of a "
                             "directory (it is created if missing), e.g. a fresh one next to that file")
        self._selector = selector
        self._tables = tables
        self._identity = {**precision(model, optimizer), **identity}
        self._blob = PythonBlob()
        self._parts = {"model_variables": list(model.variables), "optimizer": optimizer,
                       "metric_variables": [v for m in metrics for v in m.variables], "tables": tables,
                       "python": self._blob}
        self._checkpoint = tf.train.Checkpoint(**self._parts)
        write_dir = _worker_directory(self.directory, strategy)
        self._manager = tf.train.CheckpointManager(self._checkpoint, write_dir, max_to_keep=max_to_keep)
        self._read_manager = (self._manager if write_dir == self.directory else
                              tf.train.CheckpointManager(self._checkpoint, self.directory, max_to_keep=None))
        self.signal = None
        self._previous = {}

    def identity(self):
        """The values a checkpoint must share with the fit that resumes it."""
        return dict(self._identity)

    @property
    def latest(self):
        """The path prefix of the latest checkpoint, or None."""
        return self._read_manager.latest_checkpoint

    def restore(self):
        """Restores the newest intact checkpoint into the loop and its selector.

        The checkpoints are tried newest first (see the module docstring); when
        the newest is damaged an older one is used, with a ``UserWarning``
        naming the files skipped and why.

        Returns:
            A :class:`Resume`, or None when the directory holds no checkpoint.

        Raises:
            ValueError: the checkpoint belongs to a different run (another
                selector, seed, batch size, dataset size, loss, replica
                count, dtype policy or loss scaling), naming the difference;
                or the directory holds checkpoint files of which none can be
                read (truncated, corrupt, another model's), or an unreadable
                ``checkpoint`` index file, naming each file and its fault.
        """
        candidates, index_fault = self._candidates()
        if not candidates and index_fault is None:
            return None
        faults = [] if index_fault is None else [index_fault]
        for path in candidates:
            try:
                blob = self._read(path)
            except _DifferentRun as err:
                raise ValueError(str(err)) from None
            except Exception as err:  # noqa: BLE001 - any failure to read it is the checkpoint's; try an older one
                faults.append(f"{os.path.basename(path)}: {_fault(err)}")
                continue
            if faults:
                warnings.warn(f"checkpoint_dir {self.directory!r}: skipped what could not be read "
                              f"({'; '.join(faults)}); resumed from the previous checkpoint "
                              f"{os.path.basename(path)}", stacklevel=3)
            return blob
        raise ValueError(f"checkpoint_dir {self.directory!r} holds no checkpoint this fit can read "
                         f"({'; '.join(faults)}); the fit does not write over it: pass a fresh checkpoint_dir, "
                         "or delete that one to start over")

    def _candidates(self):
        """The checkpoint prefixes to try, newest first, and what is wrong with the index file (or None).

        Those the ``checkpoint`` index file lists when it is readable (a
        checkpoint whose save was cut short before the index named it is not
        resumed); every ``ckpt-<n>`` in the directory when the index file is
        unreadable or missing.
        """
        index = os.path.join(self.directory, "checkpoint")
        found = [path[:-len(".index")] for path in glob.glob(os.path.join(self.directory, f"{PREFIX}-*.index"))]
        if os.path.isfile(index) and tf.train.get_checkpoint_state(self.directory) is None:
            index_fault = ("checkpoint: the index file is unreadable (not a CheckpointState text proto; "
                           "garbage or truncated)")
        elif not os.path.isfile(index) and found:
            index_fault = "checkpoint: the index file is missing"
        else:
            return list(reversed(self._read_manager.checkpoints)), None

        def number(path):
            match = re.search(r"-(\d+)$", path)
            return int(match.group(1)) if match else -1

        return sorted(found, key=number, reverse=True), index_fault

    def _read(self, path):
        """Restores the checkpoint ``path`` whole, or raises: read every tensor first, then check, then assign.

        Raises:
            ValueError: the checkpoint is of another run (not caught by :meth:`restore`).
            UnreadableCheckpoint, and TensorFlow's errors: the checkpoint is damaged or of another model.
        """
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
        for key in shapes:  # a truncated or corrupt data file fails here, before any variable is assigned
            reader.get_tensor(key)
        blob_key = [k for k in shapes if k.startswith("python/")]
        if not blob_key:
            raise UnreadableCheckpoint("it was not written by loop.Loop.fit (no Python state)")
        blob = unpack(reader.get_tensor(blob_key[0]))
        saved = {**IDENTITY_DEFAULTS, **json.loads(blob["identity"])}
        here = self.identity()
        different = [f"{k}: {saved.get(k)!r} there, {here[k]!r} here" for k in IDENTITY if saved.get(k) != here[k]]
        if different:
            raise _DifferentRun(f"checkpoint_dir {self.directory!r} holds a checkpoint of a different run "
                                f"({'; '.join(different)}); pass a fresh checkpoint_dir or delete that one")
        if reader.has_tensor(CANDIDATES_KEY):
            self._checkpoint.restore(path).assert_existing_objects_matched()
        else:  # written before the candidate counter existed: all else must match (see the module docstring)
            older = tf.Module(name="tables")
            for name, value in vars(self._tables).items():
                if isinstance(value, tf.Variable) and name != "candidates":
                    setattr(older, name, value)
            tf.train.Checkpoint(**{**self._parts, "tables": older}).restore(path).assert_existing_objects_matched()
            self._tables.candidates.assign(self._tables.steps.read_value() + 1)
        state = blob.get("selector_state")
        if state is not None:
            saved_state = unpack(state)
            selector = self._selector()
            if not hasattr(selector, "set_state"):
                raise _DifferentRun(f"checkpoint {path} holds selector state but {describe(selector)} "
                                    "has no set_state()")
            selector.set_state(saved_state)
        plan = None
        if "plan_indices" in blob:
            plan = (blob["plan_indices"], blob["plan_weights"], blob["plan_bounds"])
        progress = json.loads(blob["progress"])
        return Resume({**progress, "plan": plan})

    def save(self, *, epoch, batch, rows, timer, logs, last_val, stopped=False, plan=None, start_step=None):
        """Writes a checkpoint; ``batch > 0`` with ``plan`` marks a mid-epoch position.

        Returns:
            The path prefix of the checkpoint written.
        """
        blob = {"identity": json.dumps(self.identity()),
                "progress": json.dumps({"epoch": int(epoch), "batch": int(batch), "rows": rows, "timer": timer,
                                        "logs": logs, "last_val": last_val, "stopped": bool(stopped),
                                        "start_step": None if start_step is None else int(start_step)})}
        state = selector_state(self._selector())
        if state is not None:
            blob["selector_state"] = np.frombuffer(pack(state), np.uint8)
        if plan is not None:
            blob["plan_indices"], blob["plan_weights"], blob["plan_bounds"] = plan
        self._blob.value = pack(blob)
        return self._manager.save()

    # --------------------------------------------------------------- signals
    @property
    def interrupted(self):
        """True once SIGTERM or SIGINT arrived during the fit."""
        return self.signal is not None

    def guard(self):
        """A context manager that installs the SIGTERM/SIGINT handlers for the fit's duration."""
        return _Guard(self)

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.signal == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without saving
        self.signal = signum

    def stop(self):
        """After the interrupt's checkpoint: re-delivers the signal the way the previous handler would."""
        signum, previous = self.signal, self._previous.get(self.signal)
        self._restore_handlers()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt(f"fit interrupted; checkpoint saved to {self.latest}")
        if callable(previous):
            previous(signum, None)
        raise SystemExit(128 + signum)

    def _install_handlers(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                previous = signal.getsignal(signum)
                if previous is signal.SIG_IGN:
                    continue
                signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: no handlers, checkpoints at epoch ends only
                continue
            self._previous[signum] = previous

    def _restore_handlers(self):
        while self._previous:
            signum, previous = self._previous.popitem()
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)


class _Guard:
    def __init__(self, checkpointer):
        self.checkpointer = checkpointer

    def __enter__(self):
        if self.checkpointer is not None:
            self.checkpointer._install_handlers()
        return self.checkpointer

    def __exit__(self, *exc):
        if self.checkpointer is not None:
            self.checkpointer._restore_handlers()
        return False


def guard(checkpointer):
    """``checkpointer.guard()``, or a no-op context when there is no checkpointer."""
    return _Guard(checkpointer)
