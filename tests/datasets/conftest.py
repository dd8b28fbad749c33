"""Fixtures for loop.datasets tests.

Every test runs with an empty KERAS_HOME, LOOP_CACHE_DIR and no
LOOP_DATA_DIR, and with every download origin pointed at a closed local port,
so no test can reach the network or see /work/shared. File writers live in
tests/helpers.py.
"""

import dataclasses

import pytest

from loop.datasets import sources


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: builds a large model (ResNet-18, keras.applications)"
    )


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Empty Keras home and cache; origins on a closed port."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setenv("LOOP_CACHE_DIR", str(tmp_path / "loop-cache"))
    monkeypatch.delenv("LOOP_DATA_DIR", raising=False)
    offline = {
        key: dataclasses.replace(
            source,
            origin=source.origin and "http://127.0.0.1:9/" + source.filename,
        )
        for key, source in sources.SOURCES.items()
    }
    monkeypatch.setattr(sources, "SOURCES", offline)
    sources._HASH_MEMO.clear()
    return tmp_path


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def keras_datasets(tmp_path):
    """The Keras download cache inside the isolated KERAS_HOME."""
    path = tmp_path / "keras-home" / "datasets"
    path.mkdir(parents=True)
    return path
