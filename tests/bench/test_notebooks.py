"""The committed notebooks execute end to end at tiny sizes, without the real data."""

import importlib.util
import os

import nbformat
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
NOTEBOOKS = os.path.join(REPO, "notebooks")
NAMES = sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb"))

#: Per notebook, what its executed outputs must show: (at least this many figures, strings in its tables).
SHOWN = {
    # the full suite's threshold plot and profile plot (and the wall-clock plot and speedup chart before them);
    # the trend table and the profile table
    "04_time_to_accuracy.ipynb": (4, ("spearman", "verdicts", "score(tau&lt;=4)", "rho(1.5)")),
    # the threshold plots (time, backprop) and the profiles; the studies' table, test accuracy, costs, winners
    "06_tuned_verdict.ipynb": (3, ("speedup [95% CI]", "test at target", "saved_s", "learning_rate", "spearman",
                                   "score(tau&lt;=4)")),
}


def test_every_notebook_build_py_writes_is_committed():
    spec = importlib.util.spec_from_file_location("notebooks_build", os.path.join(NOTEBOOKS, "build.py"))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert NAMES == sorted(build.NOTEBOOKS) and len(NAMES) == 6


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_in_tiny_mode(name, monkeypatch, tmp_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("LOOP_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.delenv("LOOP_BENCH_OUT", raising=False)
    monkeypatch.delenv("LOOP_TUNED_OUT", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    # the kernel runs in tmp_path: it imports this checkout's loop, not whichever one is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    nb = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    figures, shown = SHOWN.get(name, (0, ()))
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    drawn = sum("image/png" in o.get("data", {}) for o in outputs)
    assert drawn >= figures, f"{name}: {drawn} figures, expected at least {figures}"
    html = "\n".join(o["data"].get("text/html", "") for o in outputs if "data" in o)
    missing = [s for s in shown if s not in html]
    assert not missing, f"{name}: no table output shows {missing}"
