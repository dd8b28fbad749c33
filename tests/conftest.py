"""Test-wide settings: quiet TensorFlow, no GPU needed, and the shared ``helpers`` module on the path."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))  # the shared helpers module: ``import helpers``
