"""The committed notebooks execute end to end at tiny sizes, without the real data."""

import importlib.util
import os

import nbformat
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
NOTEBOOKS = os.path.join(REPO, "notebooks")
NAMES = sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb"))


def test_every_notebook_build_py_writes_is_committed():
    spec = importlib.util.spec_from_file_location("notebooks_build", os.path.join(NOTEBOOKS, "build.py"))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert NAMES == sorted(build.NOTEBOOKS) and len(NAMES) == 5


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_in_tiny_mode(name, monkeypatch, tmp_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("LOOP_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.delenv("LOOP_BENCH_OUT", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    # the kernel runs in tmp_path: it imports this checkout's loop, not whichever one is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    nb = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
