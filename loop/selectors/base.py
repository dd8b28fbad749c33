"""The selector protocol's base class, the registry of selector names and spec strings.

A selector decides, at the start of every epoch, which training samples form
each mini-batch.  Any callable ``selector(state) -> plan`` is a selector; this
module owns the optional base class that gives object selectors an sklearn-style
``repr``, ``get_params``, checkpointable state and a name for the command line
(``"dybat:delta=0.5"``).  :func:`register` adds names (built-in selectors
use it as a decorator; users call it too) and :func:`from_string` builds a
selector from a name or an import path (``"my_module:MySelector:beta=2"``,
resolved by :mod:`loop.selectors.plugins`).  The protocol itself (the state, plans and optional
hooks) is defined and documented in :mod:`loop.protocol`.
"""

import ast
import copy
import importlib.util
import inspect
import os
import re
import sys

import keras
import numpy as np

from loop.protocol import describe  # noqa: F401  (re-exported: selectors name themselves with it)

_REGISTRY = {}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _builtin(target):
    return getattr(target, "__module__", "").startswith("loop.")


def register(name, selector=None, *, replace=False):
    """Makes a selector buildable by name: ``from_string("name:key=value")``, ``--selectors name``.

    Works as a call, ``register("hardest_first", HardestFirst)``, and as a
    class or function decorator, ``@register("hardest_first")``.  What is
    registered is built as an import path's target is
    (:func:`loop.selectors.plugins.build`): a class is instantiated with the
    spec's hyper-parameters, a factory called with them, a function
    ``state -> plan`` used as it is.  Registering lasts for the process; an
    installed package adds names for good through the ``loop.selectors``
    entry-point group instead (docs/methods.md).

    Args:
        name: letters, digits and underscores, not starting with a digit;
            matched case-insensitively.
        selector: the class, factory or function; leave it out to get a
            decorator.
        replace: allow replacing a name you registered before to another
            object.  Re-registering the same object, or a new definition of the
            same class or function (a re-run notebook cell), needs no flag.

    Returns:
        ``selector`` (or, without it, a decorator that registers and returns its argument).

    Raises:
        ValueError: ``name`` is not a valid name, is a built-in selector's
            name, or is taken and ``replace`` is False.
        TypeError: ``selector`` is not callable.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"selector name {name!r} is not valid: use letters, digits and underscores, not starting "
                         "with a digit (it is written on the command line as name:key=value), e.g. 'hardest_first'")
    if selector is None:
        return lambda target: register(name, target, replace=replace)
    if not callable(selector):
        raise TypeError(f"register({name!r}, {selector!r}): a selector must be a class, an instance factory or a "
                        "function state -> plan")
    key = name.lower()
    current = _REGISTRY.get(key)
    if current is not None and current is not selector:
        same = (getattr(current, "__module__", None), getattr(current, "__qualname__", None)) == (
            getattr(selector, "__module__", None), getattr(selector, "__qualname__", None))
        if _builtin(current) and not (same and _builtin(selector)):
            raise ValueError(f"selector name {name!r} is the built-in {current.__name__}; choose another name for "
                             f"{getattr(selector, '__qualname__', selector)!r} (built-in names: "
                             f"{', '.join(sorted(k for k, v in _REGISTRY.items() if _builtin(v)))})")
        if not same and not replace:
            raise ValueError(f"selector name {name!r} is already registered to "
                             f"{getattr(current, '__qualname__', current)!r}; choose another name, or pass "
                             "replace=True to register the new one instead")
    _REGISTRY[key] = selector
    if isinstance(selector, type) and issubclass(selector, Selector):
        selector.name = key
    return selector


def registered():
    """Returns ``{name: selector}`` of every registered name: the built-in classes and what :func:`register` added.

    Names that installed packages add through the ``loop.selectors`` entry-point
    group are not loaded here (``loop.selectors.plugins.entry_points()`` lists them).
    """
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
    """Builds a selector from a spec string: a registered name or an import path, with hyper-parameters.

    The forms (more in :mod:`loop.selectors.plugins`):

    * ``"name"`` or ``"name:key=value,key=value"``: a built-in selector
      (``"dybat:delta=0.5"``), one registered with :func:`register`, or one
      an installed package adds through the ``loop.selectors`` entry-point
      group;
    * ``"module:attribute"`` or ``"module:attribute:key=value,..."``: your own
      selector by import path, e.g. ``"my_module:HardestFirst:power=2"``.  A
      class is instantiated with the hyper-parameters, a factory called with
      them; a function ``state -> plan`` takes none.

    Values are Python literals where they parse as one (``0.5``, ``True``,
    ``None``, ``[1, 2]``), else plain strings.  Quote a value that holds a
    comma, such as another selector's spec:
    ``"dynamic:base='dybat:delta=0.5,shuffle=True',k0=16"``.

    Raises:
        ValueError: the name or a hyper-parameter is unknown (naming the
            choices), or an import path does not import, lacks the attribute,
            or builds no selector (naming the spec and how to fix it).
    """
    from loop.selectors import plugins

    if not isinstance(spec, str):
        raise TypeError(f"a selector spec must be a string like 'dybat:delta=0.5', got {spec!r}")
    if plugins.is_import_path(spec, _REGISTRY):
        target, args = plugins.resolve(spec)
        module, attribute, _ = plugins.split_import_path(spec)
        return plugins.build(target, _parse_args(spec, args), spec, f"{module}:{attribute}")
    name, _, args = spec.strip().partition(":")
    key = name.strip().lower()
    if key not in _REGISTRY:
        target = plugins.load_entry_point(key, spec) if _NAME.fullmatch(key) else None
        if target is None:
            plugin_names = sorted(set(plugins.entry_points()) - set(_REGISTRY))
            builtin = sorted(k for k, v in _REGISTRY.items() if _builtin(v))
            yours = sorted(k for k, v in _REGISTRY.items() if not _builtin(v)) + plugin_names
            hint = ""
            if (_NAME.fullmatch(name.strip()) and name.strip() not in sys.stdlib_module_names
                    and (importlib.util.find_spec(name.strip()) is not None or os.path.isfile(f"{name.strip()}.py"))):
                hint = f" A module {name.strip()!r} is importable: did you mean {name.strip() + ':<attribute>'!r}?"
            raise ValueError(
                f"unknown selector {name!r} in {spec!r}; choose one of: {', '.join(builtin)}"
                + (f"; registered: {', '.join(yours)}" if yours else "") + f"; or {plugins.GRAMMAR}.{hint}")
        return plugins.build(target, _parse_args(spec, args), spec, repr(key))
    cls = _REGISTRY[key]
    if not _builtin(cls):  # registered by a user: a class, factory or function
        return plugins.build(cls, _parse_args(spec, args), spec, repr(key))
    kwargs = _parse_args(spec, args)
    allowed = cls._param_names()
    for k in kwargs:
        if k not in allowed:
            raise ValueError(
                f"unknown hyper-parameter {k!r} for selector {key!r} in {spec!r}; "
                f"it takes: {', '.join(allowed) or 'no hyper-parameters'}")
    return cls(**kwargs)


def _parse_args(spec, args):
    """The ``{key: value}`` of a spec's ``key=value,...`` text ``args``."""
    kwargs = {}
    if not args.strip():
        return kwargs
    try:
        items = split_top_level(args)
    except ValueError as err:
        raise ValueError(f"bad selector spec {spec!r}: {err}; close every quote and bracket, e.g. "
                         "\"dynamic:base='dybat:delta=0.5,shuffle=True',k0=16\"") from None
    for item in items:
        k, eq, v = item.partition("=")
        k = k.strip()
        if not eq or not k:
            raise ValueError(f"bad hyper-parameter {item!r} in {spec!r}: write key=value, e.g. 'dybat:delta=0.5'"
                             " or 'my_module:MySelector:beta=2'")
        kwargs[k] = _parse_value(v.strip())
    return kwargs
