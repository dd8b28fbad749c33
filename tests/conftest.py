"""Test-wide settings: quiet TensorFlow, no GPU needed."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
