"""Fixtures for the selector tests; the helpers live in ``selector_helpers``."""

import pytest
from helpers import FakeState


@pytest.fixture
def make_state():
    return FakeState
