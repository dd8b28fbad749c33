"""Shared fixtures of the benchmark tests: tiny budgets on generated data, no files outside tmp_path."""

import pytest

from loop.bench.suites import Budget


@pytest.fixture(autouse=True)
def no_real_data(monkeypatch):
    """The tests build their own data; they must pass without /work/shared."""
    monkeypatch.delenv("LOOP_DATA_DIR", raising=False)


@pytest.fixture
def tiny_budget():
    """Spirals with 240 points, 2 epochs: a run takes about a second."""
    return Budget(dataset="spirals", epochs=2, load_options={"n_samples": 300})

