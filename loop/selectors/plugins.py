"""Your own selectors by name: import paths, entry points, and building them with hyper-parameters.

:func:`loop.selectors.from_string` reads two forms of spec:

* ``name`` or ``name:key=value,...``: a selector registered under ``name``,
  built in (``"dybat:delta=0.5"``), registered by you with
  :func:`loop.selectors.register`, or added by an installed package through
  the ``loop.selectors`` entry-point group (looked up, lazily, when a name is
  not registered);
* ``module:attribute`` or ``module:attribute:key=value,...``: an import path,
  such as ``"my_package.my_module:MySelector:beta=2,k=3"``.  ``module`` is
  imported as ``python -c`` would (a ``my_module.py`` in the current directory
  imports; the current directory is appended to ``sys.path`` when needed);
  ``attribute`` may be dotted (``Outer.make``).  ``my_module.MySelector``
  (one dot before the attribute, no colon) is read as
  ``my_module:MySelector``.

The two never clash: after the first colon a registered name's spec has
``key=value`` pairs, an import path an attribute name (no ``=``); a name
without a dot that is registered is always the registered selector.

What the name or path points at is built the same way (:func:`build`): a class
is instantiated with the hyper-parameters, a function that can be called
without arguments is an instance factory (called with them), and a function
with a required argument is a plain selector ``state -> plan``, used as it is
and given no hyper-parameters.  A selector object is copied (``clone()``, else
``copy.deepcopy``), so every build starts fresh.  Whatever comes back goes
through the same protocol checks, cloning and checkpoint rules as a built-in
selector.
"""

import copy
import importlib
import importlib.metadata
import inspect
import os
import re
import sys

#: The entry-point group through which an installed package adds selector names.
ENTRY_POINT_GROUP = "loop.selectors"

#: How to write your own selector's spec, for error messages.
GRAMMAR = ("give your own selector as module:attribute[:key=value,...], e.g. 'my_module:MySelector' or "
           "'my_package.my_module:MySelector:beta=2,k=3' (see docs/methods.md, 'Benchmark your own method')")

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_ATTRIBUTE = re.compile(rf"\s*({_DOTTED})\s*(?::(.*))?\Z", re.S)
_KEY_VALUE = re.compile(r"\s*[A-Za-z_]\w*\s*=")


def is_import_path(spec, registered_names=()):
    """Whether ``spec`` is an import path (``module:attribute[:params]``) rather than a ``name[:params]``.

    Args:
        spec: a selector spec string.
        registered_names: the registered names (lowercase); a dot-free head among them is a name.

    Returns:
        True for an import path.
    """
    head, colon, rest = spec.strip().partition(":")
    head = head.strip()
    if "." in head:
        return True
    if head.lower() in registered_names:
        return False
    return bool(colon) and _KEY_VALUE.match(rest) is None and _ATTRIBUTE.match(rest) is not None


def split_import_path(spec):
    """Splits an import-path spec into ``(module, attribute, params)``; ``params`` is the text after them or ''.

    Raises:
        ValueError: ``spec`` is not of the form ``module:attribute[:key=value,...]``.
    """
    text = spec.strip()
    head, colon, rest = text.partition(":")
    head = head.strip()
    if colon and _KEY_VALUE.match(rest) is None:
        match = _ATTRIBUTE.match(rest)
        if match is None or not re.fullmatch(_DOTTED, head):
            raise ValueError(f"bad selector import path {spec!r}: {_fix(head)}")
        return head, match.group(1), match.group(2) or ""
    if not re.fullmatch(_DOTTED, head) or "." not in head:  # 'a.b' or 'a.b:key=value': attribute b of module a
        raise ValueError(f"bad selector import path {spec!r}: {_fix(head)}")
    module, _, attribute = head.rpartition(".")
    return module, attribute, rest if colon else ""


def canonical(spec, registered_names=()):
    """``spec`` written one way: an import path as ``module:attribute[:params]``, any spec without outer spaces.

    ``"my_module.MySelector"`` and ``" my_module : MySelector "`` both give ``"my_module:MySelector"``.
    """
    if not is_import_path(spec, registered_names):
        return spec.strip()
    module, attribute, params = split_import_path(spec)
    return f"{module}:{attribute}" + (f":{params.strip()}" if params.strip() else "")


def _fix(head):
    if head.endswith(".py"):
        return (f"give the module's name, not its file: {head[:-3].replace(os.sep, '.')!r} for {head!r} in the "
                f"current directory or on PYTHONPATH; {GRAMMAR}")
    return GRAMMAR


def resolve(spec):
    """Imports what an import-path spec names.

    Args:
        spec: ``"module:attribute"`` or ``"module:attribute:key=value,..."``.

    Returns:
        ``(target, params)``: the imported object and the hyper-parameter text.

    Raises:
        ValueError: the spec is malformed, the module cannot be imported (or
            raised while importing), or it has no such attribute; the message
            names the spec and how to fix it.
    """
    module_name, attribute, params = split_import_path(spec)
    module = _import(module_name, spec)
    target = module
    for depth, part in enumerate(attribute.split(".")):
        try:
            target = getattr(target, part)
        except AttributeError:
            owner = ".".join([module_name] + attribute.split(".")[:depth])
            public = sorted(n for n, v in vars(target).items() if not n.startswith("_") and callable(v)
                            and getattr(v, "__module__", module_name) == module_name) if depth == 0 else []
            hint = f"; it defines: {', '.join(public[:20])}" if public else ""
            raise ValueError(f"selector spec {spec!r}: {owner!r} has no attribute {part!r}{hint}. "
                             f"Check the name after the colon ({GRAMMAR})") from None
    if not callable(target):
        raise ValueError(f"selector spec {spec!r}: {module_name}:{attribute} is {type(target).__name__} "
                         f"{_short(target)}, not callable. Point it at a selector class, an instance factory or a "
                         "function state -> plan")
    return target, params


def _import(module_name, spec):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or module_name
        top = module_name.split(".")[0]
        cwd = os.getcwd()
        if missing == top and not {"", ".", cwd} & {p if p in ("", ".") else os.path.abspath(p) for p in sys.path}:
            sys.path.append(cwd)  # as `python -c` would have it: a module in the current directory imports
            importlib.invalidate_caches()
            try:
                return importlib.import_module(module_name)
            except ModuleNotFoundError as again:
                err, missing = again, again.name or module_name
            except Exception as again:
                raise _import_failed(spec, module_name, again) from again
        if module_name.endswith(".py"):
            raise ValueError(f"selector spec {spec!r}: {_fix(module_name)}") from None
        if module_name == missing or module_name.startswith(missing + "."):
            raise ValueError(
                f"selector spec {spec!r}: no module named {missing!r} (looked in the current directory and on "
                f"sys.path). Run from the directory that holds {missing.split('.')[0]}.py, add its "
                f"directory to PYTHONPATH, or install its package; {GRAMMAR}") from None
        raise _import_failed(spec, module_name, err) from err
    except Exception as err:
        raise _import_failed(spec, module_name, err) from err


def _import_failed(spec, module_name, err):
    return ValueError(f"selector spec {spec!r}: importing module {module_name!r} failed with "
                      f"{type(err).__name__}: {err}. Fix the module (run `python -c 'import {module_name}'` to see "
                      "the traceback)")


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def entry_points():
    """Returns ``{name: [EntryPoint, ...]}`` of the ``loop.selectors`` entry-point group (names lowercase)."""
    found = {}
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name.strip().lower(), []).append(point)
    return found


def load_entry_point(name, spec):
    """Loads the selector that an installed package registered as ``name`` in the ``loop.selectors`` group.

    Args:
        name: the lowercase name.
        spec: the spec it came from, for messages.

    Returns:
        The loaded object, or None when no entry point has that name.

    Raises:
        ValueError: two packages register the name with different targets, or
            loading the entry point fails.
    """
    points = entry_points().get(name, [])
    if not points:
        return None
    values = sorted({p.value for p in points})
    if len(values) > 1:
        raise ValueError(f"selector name {name!r} in {spec!r} is registered by several installed packages in the "
                         f"{ENTRY_POINT_GROUP!r} entry-point group, to {', '.join(values)}; give the one you mean "
                         "as an import path instead, e.g. " + repr(values[0]))
    point = points[0]
    dist = getattr(getattr(point, "dist", None), "name", None) or "an installed package"
    try:
        target = point.load()
    except Exception as err:
        raise ValueError(f"selector {name!r} in {spec!r} comes from {dist} (entry point {point.value!r} in group "
                         f"{ENTRY_POINT_GROUP!r}), and loading it failed with {type(err).__name__}: {err}. "
                         "Reinstall or fix that package") from err
    if not callable(target):
        raise ValueError(f"selector {name!r} in {spec!r}: entry point {point.value!r} of {dist} is not callable "
                         f"({_short(target)}); it must name a selector class, factory or function")
    return target


def kind(target):
    """What :func:`build` does with ``target``: ``"class"``, ``"factory"``, ``"function"`` or ``"object"``."""
    if isinstance(target, type):
        return "class"
    if inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target):
        try:
            parameters = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):
            return "function"
        required = [p for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return "function" if required else "factory"
    return "object"


def build(target, kwargs, spec, what):
    """Builds a selector from ``target`` and its hyper-parameters ``kwargs``.

    Args:
        target: a class (instantiated with ``kwargs``), an instance factory (a
            function callable without arguments; called with ``kwargs``), a
            function ``state -> plan`` (returned as it is) or a selector object
            (copied).
        kwargs: the parsed hyper-parameters.
        spec: the spec, for messages.
        what: how to name ``target`` in messages, e.g. ``"my_module:MySelector"``.

    Returns:
        A selector: a callable ``state -> plan``.

    Raises:
        ValueError: hyper-parameters given to a function or object, unknown or
            missing hyper-parameters, a constructor or factory that raises, or
            one that returns something that is not callable.
    """
    how = kind(target)
    if how in ("function", "object"):
        if kwargs:
            noun = "a plain selector function (state -> plan)" if how == "function" else "a selector object"
            raise ValueError(
                f"selector spec {spec!r}: {what} is {noun}, which takes no hyper-parameters, but got "
                f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items())}. Drop them, or make {what} a class whose "
                "__init__ takes them (e.g. a loop.selectors.Selector subclass) or a factory function with keyword "
                "arguments that returns the selector")
        if how == "function":
            return target
        return target.clone() if callable(getattr(target, "clone", None)) else copy.deepcopy(target)
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(**kwargs)
        except TypeError:
            takes = [p.name for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            unknown = [k for k in kwargs if k not in takes]
            if unknown and not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
                raise ValueError(f"unknown hyper-parameter {unknown[0]!r} for selector {what} in {spec!r}; "
                                 f"it takes: {', '.join(takes) or 'no hyper-parameters'}") from None
            missing = [p.name for p in signature.parameters.values() if p.default is p.empty
                       and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in kwargs]
            raise ValueError(f"selector {what} in {spec!r} needs the hyper-parameter(s) {', '.join(missing)}: give "
                             f"them as key=value after a colon, e.g. {_example(spec, missing)!r}") from None
    try:
        selector = target(**kwargs)
    except Exception as err:
        raise ValueError(f"selector spec {spec!r}: {what}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) "
                         f"raised {type(err).__name__}: {err}") from err
    if not callable(selector):
        raise ValueError(f"selector spec {spec!r}: {what} returned {_short(selector)}, which is not a selector; "
                         "a factory must return a callable state -> plan (an object or a function)")
    return selector


def _example(spec, missing):
    text = spec.strip()
    extra = ",".join(f"{name}=..." for name in missing)
    if is_import_path(text) and text.count(":") < 2 and "=" not in text:
        return f"{text}:{extra}"
    return f"{text}{',' if ':' in text else ':'}{extra}"
