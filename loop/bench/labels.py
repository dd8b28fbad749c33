"""How a selector is named in the tables and the store, and a fresh copy of it built for every trial.

A label must be stable across processes, so that a resumed campaign finds its stored trials: a
:class:`loop.selectors.Selector` reads as its repr (``DyBAT(delta=0.5)``); a function, or an object whose repr is
Python's default (a memory address), reads as its import path or as its class with a digest of its attributes.
"""

import copy
import hashlib
import inspect
import re


def object_label(selector):
    """A label for an object whose repr is Python's default: its class and a digest of its attributes.

    Stable across processes (a resumed suite finds the stored runs), and two
    objects of one class with other attribute values get other labels:
    ``my_module.Sampler(#1a2b3c4d)``.
    """
    cls = type(selector)
    state = repr(sorted((k, repr(v)) for k, v in vars(selector).items())) if hasattr(selector, "__dict__") else ""
    return f"{cls.__module__}.{cls.__qualname__}(#{hashlib.sha1(state.encode()).hexdigest()[:8]})"


def spec_label(spec, selector):
    """The table label of ``selector``, built from the string ``spec``: stable across processes and readable.

    An object reads as its repr (``DyBAT(delta=0.5)``, ``HardestFirst(power=2)``:
    every :class:`loop.selectors.Selector`); a function, or an object whose
    repr holds a memory address (Python's default), reads as its spec written
    one way (:func:`loop.selectors.plugins.canonical`: ``my_module:hardest_first``
    also for ``my_module.hardest_first``), so that a resumed run finds its
    stored runs.
    """
    from loop.selectors import describe, plugins, registered

    label = describe(selector)
    if inspect.isroutine(selector) or re.search(r" at 0x[0-9A-Fa-f]+", label):
        return plugins.canonical(spec, registered())
    return label


def selector_key(selector):
    """The (label, factory) of a selector given as a string spec or as an object/function.

    The label is how the selector reads in tables (``DyBAT(delta=0.5)``; a
    spec's is :func:`spec_label`); the factory builds a fresh selector for each
    run, so no state leaks between runs.

    Raises:
        ValueError: an unknown selector name or hyper-parameter, or an import path that builds no selector
            (from ``from_string``).
    """
    from loop.selectors import describe, from_string

    if isinstance(selector, str):
        return spec_label(selector, from_string(selector)), lambda: from_string(selector)
    if not callable(selector):
        raise ValueError(f"a selector must be a string such as 'dybat:delta=0.5' or a callable, got {selector!r}")
    label = describe(selector)
    if re.search(r" at 0x[0-9A-Fa-f]+", label):  # Python's default repr: a memory address that changes every run
        label = object_label(selector)
    return label, lambda: copy.deepcopy(selector)


def with_knobs(spec, knobs):
    """``(label as trained, factory)`` of the selector ``spec`` (string or object) with its ``knobs`` set.

    Without knobs it is :func:`selector_key`; with them, the selector's class rebuilt from its ``get_params()``
    and the knobs, labelled by its repr (``RS2(ratio=0.291)``).
    """
    from loop.selectors import describe, from_string

    if not knobs:
        return selector_key(spec)
    base = from_string(spec) if isinstance(spec, str) else spec
    params = {**base.get_params(), **knobs}
    return describe(type(base)(**params)), lambda: type(base)(**params)


def check_unique(labels):
    """Raises ``ValueError`` when a selector label repeats."""
    if len(set(labels)) != len(labels):
        raise ValueError(f"selectors {list(labels)} repeat a selector; give each one once")
