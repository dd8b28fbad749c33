"""loop: a compiled Keras training loop for batch-selection research.

``Loop(model, ..., selector=...).fit(...)`` trains with any batch-selection
callable and records time-to-target; ``loop.selectors`` holds the selectors,
``loop.datasets`` the datasets and reference models, ``python -m loop.bench``
the time-to-accuracy benchmark, ``loop.lr_range_test`` a learning-rate
range test through the same compiled step, ``loop.schedules`` learning-rate
schedules with warm-up and a decay horizon in optimizer steps.  Data larger than the device streams by
index from a random-access source (``loop.RandomAccess``, see ``loop.streaming``).
"""

from loop.history import History
from loop.loop import Loop
from loop.lr_range import lr_range_test
from loop.protocol import State, StepBatch
from loop.streaming import RandomAccess

__all__ = ["Loop", "RandomAccess", "State", "StepBatch", "History", "lr_range_test"]
__version__ = "0.1.0"
