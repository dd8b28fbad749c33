"""A selector that shuffles slowly (``LOOP_TEST_SLOW_S`` seconds per epoch): a study long enough to kill mid-way.

Imported by path (``slow_selector:Slow``) by the Ray workers of ``tests/bench/test_cluster.py``.
"""

import os
import time

from loop.selectors import Shuffle


class Slow(Shuffle):
    """Shuffle, after a pause of ``LOOP_TEST_SLOW_S`` seconds (default 0.2) at every epoch."""

    def __call__(self, state):
        time.sleep(float(os.environ.get("LOOP_TEST_SLOW_S", "0.2")))
        return super().__call__(state)
