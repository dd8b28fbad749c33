"""Shared fixtures of the benchmark tests: tiny suite entries on generated data, no files outside tmp_path."""

import pytest

from loop.bench.suites import entry


@pytest.fixture(autouse=True)
def no_real_data(monkeypatch):
    """The tests build their own data; they must pass without /work/shared."""
    monkeypatch.delenv("LOOP_DATA_DIR", raising=False)


@pytest.fixture
def tiny_entry():
    """Spirals with 240 training points, 2 epochs, the default hyper-parameters: a trial takes about a second."""
    return entry("spirals", epochs=2, load_options={"n_samples": 300})
