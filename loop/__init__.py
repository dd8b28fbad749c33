"""loop: a compiled Keras training loop for batch-selection research.

``Loop(model, ..., selector=...).fit(...)`` trains with any batch-selection
callable and records time-to-target; ``loop.selectors`` holds the selectors,
``loop.datasets`` the datasets and reference models, ``python -m loop.bench``
the time-to-accuracy benchmark.
"""

from loop.history import History
from loop.loop import Loop
from loop.protocol import State, StepBatch

__all__ = ["Loop", "State", "StepBatch", "History"]
__version__ = "0.1.0"
