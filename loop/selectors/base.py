"""The selector protocol's base class, registry and string parsing.

A selector decides, at the start of every epoch, which training samples form
each mini-batch.  Any callable ``selector(state) -> plan`` is a selector; this
module owns the optional base class that gives object selectors an sklearn-style
``repr``, ``get_params``, checkpointable state and a name for the command line
(``"dybat:delta=0.5"``).  The protocol itself (the state, plans and optional
hooks) is defined and documented in :mod:`loop.protocol`.
"""

import ast
import copy
import inspect

import keras
import numpy as np

from loop.protocol import describe  # noqa: F401  (re-exported: selectors name themselves with it)

_REGISTRY = {}


def register(name):
    """Class decorator: makes a selector buildable from ``name`` in :func:`from_string`."""

    def wrap(cls):
        key = name.lower()
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"selector name {name!r} is already registered to {_REGISTRY[key].__name__}")
        _REGISTRY[key] = cls
        cls.name = key
        return cls

    return wrap


def registered():
    """Returns ``{name: class}`` of every selector buildable from a string."""
    return dict(sorted(_REGISTRY.items()))


class Selector:
    """Base class for object selectors.

    Subclasses store their hyper-parameters in ``__init__`` under the same names
    as the arguments and do no other work there.  State learned while training
    lives in attributes whose names end with ``_`` and is what
    :meth:`get_state` returns for checkpoints.

    The optional hooks the loop calls when a selector defines them
    (``on_train_begin``, ``on_batch_end``, ``keep`` with ``filter_mode``,
    ``get_state``/``set_state``) and ``tasks`` are defined in
    :mod:`loop.protocol`; this class gives ``tasks`` (both tasks),
    ``get_state``/``set_state`` over the ``*_`` attributes, and :meth:`clone`.
    ``Loop`` clones a selector it is given, so one object can be passed to
    several loops and each run starts fresh.
    """

    name = None
    tasks = ("classification", "regression")

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self):
        """Returns the constructor arguments as a dict, read from the signature."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self):
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name in self._param_names():
            value = getattr(self, name)
            default = sig.parameters[name].default
            if default is inspect.Parameter.empty or not _equal(value, default):
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def clone(self):
        """A new selector with the same hyper-parameters and no learned state.

        Nested selectors are cloned too; a Keras model among the
        hyper-parameters (e.g. ``RhoLoss(irreducible_model=...)``) is shared,
        never copied, so a selector must not train it in place.
        """
        params = {k: v.clone() if isinstance(v, Selector) else v if isinstance(v, keras.Model) else copy.deepcopy(v)
                  for k, v in self.get_params().items()}
        clone = type(self)(**params)
        for name in ("filter_mode", "tasks"):  # protocol settings given on the instance, not the class
            if name in vars(self):
                setattr(clone, name, vars(self)[name])
        return clone

    def get_state(self):
        """Returns the learned state (attributes ending in ``_``) for a checkpoint."""
        state = {}
        for key, value in vars(self).items():
            if key.endswith("_") and not key.startswith("_"):
                if hasattr(value, "numpy"):
                    value = value.numpy()
                state[key] = value
        return state

    def set_state(self, state):
        """Restores what :meth:`get_state` returned."""
        for key, value in state.items():
            current = getattr(self, key, None)
            if hasattr(current, "assign"):
                current.assign(value)
            else:
                setattr(self, key, value)


def _equal(a, b):
    try:
        return bool(np.all(a == b)) and type(a) is type(b) or a is b
    except Exception:
        return a is b


def _parse_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def split_top_level(text, sep=","):
    """Splits ``text`` on ``sep`` outside quotes and brackets.

    ``"a=1,b='x,y',c=[1, 2]"`` gives ``["a=1", "b='x,y'", "c=[1, 2]"]``.

    Raises:
        ValueError: an unclosed quote or bracket, or an unmatched closing bracket.
    """
    parts, current, depth, quote = [], [], 0, None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unmatched closing bracket {char!r} in {text!r}")
        elif char == sep and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote or depth:
        raise ValueError(f"unclosed {'quote ' + quote if quote else 'bracket'} in {text!r}")
    parts.append("".join(current))
    return parts


def from_string(spec):
    """Builds a selector from ``"name"`` or ``"name:key=value,key=value"``.

    Values are Python literals where they parse as one (``0.5``, ``True``,
    ``None``, ``[1, 2]``), else plain strings.  Quote a value that holds a
    comma, such as another selector's spec:
    ``"dynamic:base='dybat:delta=0.5,shuffle=True',k0=16"``.

    Raises:
        ValueError: the name or a hyper-parameter is unknown, naming the
            choices.
    """
    if not isinstance(spec, str):
        raise TypeError(f"a selector spec must be a string like 'dybat:delta=0.5', got {spec!r}")
    name, _, args = spec.strip().partition(":")
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown selector {name!r} in {spec!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[key]
    kwargs = {}
    if args.strip():
        allowed = cls._param_names()
        try:
            items = split_top_level(args)
        except ValueError as err:
            raise ValueError(f"bad selector spec {spec!r}: {err}; close every quote and bracket, e.g. "
                             "\"dynamic:base='dybat:delta=0.5,shuffle=True',k0=16\"") from None
        for item in items:
            k, eq, v = item.partition("=")
            k = k.strip()
            if not eq or not k:
                raise ValueError(f"bad hyper-parameter {item!r} in {spec!r}: write key=value, e.g. 'dybat:delta=0.5'")
            if k not in allowed:
                raise ValueError(
                    f"unknown hyper-parameter {k!r} for selector {key!r} in {spec!r}; "
                    f"it takes: {', '.join(allowed) or 'no hyper-parameters'}")
            kwargs[k] = _parse_value(v.strip())
    return cls(**kwargs)
