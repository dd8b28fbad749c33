"""The committed notebooks execute end to end at tiny sizes, without the real data."""

import os

import nbformat
import pytest

NOTEBOOKS = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "notebooks")
NAMES = sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb"))


def test_the_four_notebooks_are_there():
    assert len(NAMES) == 4


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_in_tiny_mode(name, monkeypatch, tmp_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("LOOP_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.delenv("LOOP_BENCH_OUT", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    nb = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
