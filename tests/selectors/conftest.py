"""Fixtures for the selector tests; the helpers live in ``selector_helpers``."""

import pytest
from selector_helpers import FakeState


@pytest.fixture
def make_state():
    return FakeState
