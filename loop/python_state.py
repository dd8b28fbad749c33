"""The Python half of a checkpoint: nested dicts of arrays and JSON values, packed into one bytes value.

Who owns what: :func:`pack` and :func:`unpack` turn the Python state of a
``Loop.fit`` (the run's identity, where the loop is, the history rows, the
timing counters, the last logs, the selector's ``get_state()`` and a mid-epoch
plan) into bytes and back: an in-memory ``.npz`` of the arrays plus one JSON
entry for everything else and for the nesting.  :class:`PythonBlob` carries
those bytes inside the ``tf.train.Checkpoint`` (a
``tf.train.experimental.PythonState``), so they are written and restored with
the TensorFlow state as one checkpoint; :func:`selector_state` reads a
selector's ``get_state()`` as NumPy.  What a checkpoint holds, and when it is
written and restored, is :mod:`loop.checkpoint`'s.
"""

import io
import json

import numpy as np
import tensorflow as tf

from loop.protocol import describe


def pack(values):
    """Serializes a dict of arrays, JSON values and nested dicts of them to bytes (an ``.npz`` with a JSON entry).

    Raises:
        TypeError: a value is neither an array, a NumPy scalar, a dict nor JSON-serializable, naming its key.
    """
    arrays, plain, kinds = {}, {}, {}
    _flatten(values, (), arrays, plain, kinds)
    buffer = io.BytesIO()
    np.savez(buffer, __json__=np.frombuffer(json.dumps({"plain": plain, "kinds": kinds}).encode(), np.uint8),
             **arrays)
    return buffer.getvalue()


def _flatten(values, path, arrays, plain, kinds):
    """Walks nested dicts; arrays go to ``arrays`` under a numbered key, the rest to ``plain``, by JSON path."""
    for key, value in values.items():
        if not isinstance(key, str):
            raise TypeError(f"state key {key!r} under {list(path)} is not a string; checkpoints need string keys")
        where = json.dumps([*path, key])
        if isinstance(value, dict) and value and not _is_json(value):
            kinds[where] = "dict"
            _flatten(value, (*path, key), arrays, plain, kinds)
            continue
        if not isinstance(value, (np.ndarray, np.generic)) and _is_json(value):
            plain[where] = value
            continue
        if isinstance(value, np.generic):
            array, kind = np.asarray(value), "scalar"
        else:
            try:
                array, kind = np.asarray(value), "array"
            except Exception:
                array = None
            if array is None or array.dtype == object:
                raise TypeError(f"state[{'/'.join([*path, key])!r}] = {type(value).__name__} cannot be "
                                "checkpointed; use arrays, numbers, strings, lists or dicts of them") from None
        slot = f"a{len(arrays)}"
        arrays[slot] = array
        kinds[where] = [kind, slot]


def _is_json(value):
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def unpack(data):
    """Inverts :func:`pack`."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        meta = json.loads(npz["__json__"].tobytes().decode())
        entries = dict(meta["plain"])
        for where, kind in meta["kinds"].items():
            if kind != "dict":
                entries[where] = npz[kind[1]][()] if kind[0] == "scalar" else npz[kind[1]]
            else:
                entries[where] = None  # made a dict below
    out = {}
    for where in sorted(entries, key=lambda w: len(json.loads(w))):  # parents before their children
        *parents, key = json.loads(where)
        node = out
        for parent in parents:
            node = node[parent]
        node[key] = {} if meta["kinds"].get(where) == "dict" else entries[where]
    return out


class PythonBlob(tf.train.experimental.PythonState):
    """The Python half of a checkpoint: one bytes value, set before saving and read after restoring."""

    def __init__(self):
        self.value = b""

    def serialize(self):
        return self.value

    def deserialize(self, string_value):
        self.value = bytes(string_value)


def selector_state(selector):
    """The selector's ``get_state()`` with its tensors as NumPy arrays (nested dicts kept), or None without one.

    Raises:
        TypeError: ``get_state()`` returned something other than a dict, naming the selector.
    """
    get_state = getattr(selector, "get_state", None)
    if get_state is None:
        return None
    state = get_state()
    if not isinstance(state, dict):
        raise TypeError(f"selector {describe(selector)}: get_state() returned {type(state).__name__}; "
                        "return a dict of arrays and numbers")
    return _to_numpy(state)


def _to_numpy(state):
    return {k: _to_numpy(v) if isinstance(v, dict) else (v.numpy() if hasattr(v, "numpy") else v)
            for k, v in state.items()}
