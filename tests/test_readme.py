"""The README stays true: its Python example runs as written, and its map names every module and folder."""

import os
import re

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")

#: Top-level folders that are not part of the project's map: caches, environments and build output (hidden
#: folders other than .ci/, such as .git or a tool's cache, are left out too); loop/ is mapped module by module.
NOT_MAPPED = {"__pycache__", "build", "dist", "venv", "loop"}


def readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


def python_examples(text):
    return re.findall(r"```python\n(.*?)```", text, re.S)


def code_map(text):
    """The "Map of the code" section: its table rows as ``{first cell: whole line}``."""
    section = text.split("## Map of the code", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| \[`([^`]+)`\]", line)
        if match:
            rows[match.group(1)] = line
    return rows


def test_the_readme_example_runs_as_written_and_its_selector_handles_data_smaller_than_a_batch(capsys):
    from loop import Loop

    examples = python_examples(readme())
    assert len(examples) == 1, "the README holds one Python example; this test runs it"
    namespace = {}
    exec(compile(examples[0], README, "exec"), namespace)  # iris, bundled with scikit-learn: offline and small
    printed = capsys.readouterr().out
    assert "val_accuracy" in printed and namespace["history"].frame["epoch"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    # Its selector on 5 samples with batches of 32: one batch of all of them, every sample once.
    x, y = np.random.default_rng(0).normal(size=(5, 4)).astype("float32"), np.array([0, 1, 2, 0, 1])
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    tiny = Loop(model, loss="sparse_categorical_crossentropy", selector=namespace["hardest_first"], batch_size=32)
    history = tiny.fit(x, y, epochs=2, verbose=0)
    assert history.frame["step"].tolist() == [1, 2]  # one step per epoch
    assert tiny.trained_counts.tolist() == [2, 2, 2, 2, 2]


def test_the_map_names_every_module_and_every_top_level_folder():
    rows = code_map(readme())
    missing = []
    for folder, _, files in os.walk(os.path.join(ROOT, "loop")):
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
            package = os.path.dirname(path) + "/"
            if path in rows:
                continue
            if package in rows and re.search(rf"`{re.escape(name)}`", rows[package]):
                continue  # a subpackage's row names its modules
            missing.append(path)
    assert not missing, f"README's map of the code leaves out {missing}; add them to its table"
    folders = sorted(entry for entry in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, entry))
                     and entry not in NOT_MAPPED and not entry.endswith(".egg-info")
                     and (entry == ".ci" or not entry.startswith(".")))
    unmapped = [f for f in folders if f + "/" not in rows]
    assert not unmapped, f"README's map of the code leaves out the folders {unmapped}; add a row for each"
    assert {"benchmarks/", "docs/", "notebooks/", "results/", "tests/", ".ci/"} <= set(rows)


def test_the_map_names_nothing_that_does_not_exist():
    for entry in code_map(readme()):
        assert os.path.exists(os.path.join(ROOT, entry)), f"README's map names {entry!r}, which does not exist"


def test_the_readme_stays_an_entry_page():
    text = readme()
    assert len(text.encode("utf-8")) <= 8 * 1024, "the README is the entry page; move details to docs/"
    assert 'pip install -e ".[dev]" && python -m loop.bench' in text and "\npytest" in text
    assert "docs/methods.md#benchmark-your-own-method" in text and "docs/results.md" in text
    for link in re.findall(r"\]\(([^)#]+)", text):
        if not link.startswith("http"):
            assert os.path.exists(os.path.join(ROOT, link)), f"README links to {link!r}, which does not exist"
