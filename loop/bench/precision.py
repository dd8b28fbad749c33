"""The precision a benchmark trains in: a ``keras.mixed_precision`` policy, checked, set and put back.

The command lines of the campaign and of the performance benchmarks share :func:`add_precision_argument` and
:func:`parse_precision`; :func:`global_policy` sets the policy before a model is built.  One results directory holds
trials of one precision (:func:`loop.bench.store.check_out_precision`), so that its tables never compare a selector
with a baseline of another precision.
"""

import contextlib

from loop.bench.records import DEFAULT_PRECISION

#: The precisions a benchmark can train in: ``keras.mixed_precision`` policy names.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def check_precision(precision, name="precision"):
    """Returns ``precision`` if it is one of :data:`PRECISIONS`.

    Raises:
        ValueError: another value, naming it (as ``name``, e.g. ``"--precision"``) and the choices.
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"{name} {precision!r} is not a precision the benchmark trains in; choose "
                         f"{', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]} (keras.mixed_precision policy names; "
                         f"the default is {DEFAULT_PRECISION})")
    return precision


def add_precision_argument(parser):
    """Adds ``--precision`` to a command line; :func:`parse_precision` checks it."""
    parser.add_argument("--precision", default=DEFAULT_PRECISION, metavar="{" + ",".join(PRECISIONS) + "}",
                        help="the keras.mixed_precision policy the models are built and trained in (default "
                             f"{DEFAULT_PRECISION}); mixed_float16 trains with a LossScaleOptimizer")


def parse_precision(parser, args):
    """``args.precision``, after ``parser.error`` (exit status 2) for a value that is not one of :data:`PRECISIONS`."""
    try:
        return check_precision(args.precision, "--precision")
    except ValueError as err:
        parser.error(str(err))


@contextlib.contextmanager
def global_policy(precision):
    """Sets the ``keras.mixed_precision`` global policy ``precision`` (checked); puts the previous one back after."""
    import keras

    check_precision(precision)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


__all__ = ["DEFAULT_PRECISION", "PRECISIONS", "add_precision_argument", "check_precision", "global_policy",
           "parse_precision"]
