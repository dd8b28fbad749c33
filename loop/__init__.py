"""loop: a compiled Keras training loop for batch-selection research.

``Loop(model, ..., selector=...).fit(...)`` trains with any batch-selection
callable and records time-to-target; ``loop.selectors`` holds the selectors,
``loop.datasets`` the datasets and reference models, ``python -m loop.bench``
the time-to-accuracy benchmark, ``loop.lr_range_test`` a learning-rate
range test through the same compiled step, ``loop.schedules`` learning-rate
schedules with warm-up and a decay horizon in optimizer steps or training seconds.  Data larger than the
device streams by index from a random-access source (``loop.RandomAccess``, see ``loop.streaming``).

The names below are imported on first use (PEP 562), so ``import loop`` and the
command lines' ``--help`` do not load TensorFlow; ``from loop import Loop`` does.
"""

import importlib

#: Each public name and the module that defines it.
_EXPORTS = {"Loop": "loop.loop", "RandomAccess": "loop.streaming", "State": "loop.protocol",
            "StepBatch": "loop.protocol", "History": "loop.history", "lr_range_test": "loop.lr_range"}

__all__ = ["Loop", "RandomAccess", "State", "StepBatch", "History", "lr_range_test"]
__version__ = "0.1.0"


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'loop' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
