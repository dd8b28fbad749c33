"""Your own selector by import path, by ``register`` and by entry point, through from_string, the bench and its CLI."""

import dataclasses
import itertools
import os
import re
import sys
import textwrap

import numpy as np
import pytest

from loop.bench import labels
from loop.selectors import DyBAT, DynamicBatchSize, Selector, from_string, register
from loop.selectors import base as selectors_base
from loop.selectors import plugins

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: A user's module: a Selector subclass, a plain class, a factory, a function and an instance.
MODULE = '''\
import numpy as np

from loop.selectors import Selector


class HardestFirst(Selector):
    """Shuffled, then the highest last-seen loss first (never-seen samples count as hardest)."""

    def __init__(self, power=1.0, batches=None):
        self.power = power
        self.batches = batches

    def __call__(self, state):
        self.calls_ = getattr(self, "calls_", 0) + 1
        order = state.rng.permutation(state.num_samples)
        losses = np.nan_to_num(state.losses[order], nan=np.inf) ** self.power
        order = order[np.argsort(-losses, kind="stable")]
        return [order[i:i + state.batch_size] for i in range(0, len(order), state.batch_size)]


class Plain:
    def __init__(self, k=2):
        self.k = k

    def __call__(self, state):
        return np.array_split(state.rng.permutation(state.num_samples), self.k)


class NeedsK:
    def __init__(self, k):
        self.k = k

    def __call__(self, state):
        return np.array_split(np.arange(state.num_samples), self.k)


def make(power=2.0):
    return HardestFirst(power=power)


def make_nothing():
    return 42


def hardest_first(state):
    return HardestFirst()(state)


def broken(k=1):
    raise RuntimeError("no GPU here")


instance = Plain(k=3)
NUMBER = 7
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A fresh module file in a fresh current directory that is not on sys.path (as `python -c` would not have it)."""
    name = f"user_selectors_{next(_COUNTER)}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", os.getcwd())])
    yield name
    sys.modules.pop(name, None)


_COUNTER = itertools.count()


@pytest.fixture
def clean_registry(monkeypatch):
    """Names registered in a test are gone afterwards."""
    monkeypatch.setattr(selectors_base, "_REGISTRY", dict(selectors_base._REGISTRY))


def fake_state(n=10, batch_size=4, losses=None):
    from helpers import FakeState

    return FakeState(num_samples=n, batch_size=batch_size, losses=losses)


# ------------------------------------------------------------------------------------------------ import paths
def test_a_class_by_import_path_is_built_with_its_hyper_parameters(user_module):
    selector = from_string(f"{user_module}:HardestFirst:power=2,batches=[1, 2]")
    assert type(selector).__name__ == "HardestFirst" and selector.get_params() == {"power": 2, "batches": [1, 2]}
    assert repr(selector) == "HardestFirst(power=2, batches=[1, 2])"
    assert os.getcwd() in sys.path  # the current directory was put on the path, as `python -c` has it
    plan = selector(fake_state(losses=np.arange(10.0)))
    assert [list(b) for b in plan] == [[9, 8, 7, 6], [5, 4, 3, 2], [1, 0]]


def test_the_forms_without_params_dotted_and_with_spaces_build_the_same(user_module):
    assert repr(from_string(f"{user_module}:HardestFirst")) == "HardestFirst()"
    assert repr(from_string(f"{user_module}.HardestFirst")) == "HardestFirst()"
    assert repr(from_string(f"{user_module}.HardestFirst:power=3")) == "HardestFirst(power=3)"
    assert repr(from_string(f" {user_module} : HardestFirst : power=3 ")) == "HardestFirst(power=3)"
    plain = from_string(f"{user_module}:Plain:k=5")
    assert type(plain).__name__ == "Plain" and plain.k == 5


def test_a_factory_a_function_and_an_instance(user_module):
    made = from_string(f"{user_module}:make:power=3.0")
    assert repr(made) == "HardestFirst(power=3.0)"
    assert repr(from_string(f"{user_module}:make")) == "HardestFirst(power=2.0)"
    function = from_string(f"{user_module}:hardest_first")
    assert function is sys.modules[user_module].hardest_first
    first, second = from_string(f"{user_module}:instance"), from_string(f"{user_module}:instance")
    assert first is not second and first is not sys.modules[user_module].instance and first.k == 3  # fresh copies


def test_the_built_in_grammar_is_unchanged_and_wraps_an_import_path(user_module):
    assert repr(from_string("dybat:delta=0.25")) == "DyBAT(delta=0.25)"
    assert repr(from_string("loop.selectors:DyBAT:delta=0.25")) == "DyBAT(delta=0.25)"
    wrapped = from_string(f"dynamic:base='{user_module}:HardestFirst:power=2',k0=8")
    assert isinstance(wrapped, DynamicBatchSize) and repr(wrapped._base) == "HardestFirst(power=2)"


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:Sel", r"selector spec 'no_such_module_xyz:Sel': no module named 'no_such_module_xyz' "
                               r"\(looked in the current directory .*Run from the directory that holds "
                               r"no_such_module_xyz.py"),
    ("bad.path:Nope", r"no module named 'bad'.*module:attribute\[:key=value,...\]"),
    ("{mod}:Nope", r"'{mod}' has no attribute 'Nope'; it defines: HardestFirst, NeedsK, Plain, broken, "
                   r"hardest_first, instance, make, make_nothing\. Check the name after the colon"),
    ("{mod}:HardestFirst.nope", r"'{mod}.HardestFirst' has no attribute 'nope'"),
    ("{mod}:NUMBER", r"{mod}:NUMBER is int 7, not callable"),
    ("{mod}:HardestFirst:gamma=2", r"unknown hyper-parameter 'gamma' for selector {mod}:HardestFirst in "
                                   r"'{mod}:HardestFirst:gamma=2'; it takes: power, batches"),
    ("{mod}:NeedsK", r"selector {mod}:NeedsK in '{mod}:NeedsK' needs the hyper-parameter\(s\) k: give them as "
                     r"key=value after a colon, e.g. '{mod}:NeedsK:k=...'"),
    ("{mod}:hardest_first:power=2", r"{mod}:hardest_first is a plain selector function \(state -> plan\), which "
                                    r"takes no hyper-parameters, but got power=2"),
    ("{mod}:instance:k=2", r"is a selector object, which takes no hyper-parameters"),
    ("{mod}:broken", r"{mod}:broken\(\) raised RuntimeError: no GPU here"),
    ("{mod}:make_nothing", r"{mod}:make_nothing returned 42, which is not a selector"),
    ("{mod}:HardestFirst:power", r"bad hyper-parameter 'power'.*write key=value"),
    ("{mod}.py:HardestFirst", r"give the module's name, not its file: '{mod}' for '{mod}.py'"),
    ("./{mod}:HardestFirst", r"bad selector import path './{mod}:HardestFirst'"),
])
def test_a_wrong_import_path_names_the_spec_and_the_fix(user_module, spec, message):
    with pytest.raises(ValueError, match=message.format(mod=user_module)):
        from_string(spec.format(mod=user_module))


def test_a_module_that_fails_to_import_is_reported_with_its_error(tmp_path, monkeypatch):
    (tmp_path / "raises_on_import.py").write_text("import numpy\nraise ImportError('needs torch')\n")
    (tmp_path / "missing_dependency.py").write_text("import not_installed_dependency_xyz\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"importing module 'raises_on_import' failed with ImportError: needs torch"):
        from_string("raises_on_import:Sel")
    with pytest.raises(ValueError, match=r"importing module 'missing_dependency' failed with ModuleNotFoundError: "
                                         r"No module named 'not_installed_dependency_xyz'"):
        from_string("missing_dependency:Sel")


def test_an_unknown_name_explains_the_import_path_and_spots_a_module(user_module):
    with pytest.raises(ValueError, match=r"unknown selector 'nope' in 'nope'; choose one of: craig_pb, curriculum, "
                                         r".*; or give your own selector as module:attribute"):
        from_string("nope")
    with pytest.raises(ValueError, match=rf"A module '{user_module}' is importable: did you mean "
                                         rf"'{user_module}:<attribute>'\?"):
        from_string(user_module)


def test_the_grammar_tells_names_from_import_paths():
    names = selectors_base._REGISTRY
    assert not plugins.is_import_path("dybat:delta=0.5", names)
    assert not plugins.is_import_path("dybat", names)
    assert not plugins.is_import_path("dybat:delta", names)  # a registered name: a bad hyper-parameter, not a module
    assert not plugins.is_import_path("mine:beta=2", names)
    assert plugins.is_import_path("mine:Sel", names) and plugins.is_import_path("mine:Sel:beta=2", names)
    assert plugins.is_import_path("pkg.mod", names) and plugins.is_import_path("pkg.mod:beta=2", names)
    assert plugins.split_import_path("pkg.mod:Sel:beta=2,k='a:b'") == ("pkg.mod", "Sel", "beta=2,k='a:b'")
    assert plugins.split_import_path("pkg.mod.Sel:beta=2") == ("pkg.mod", "Sel", "beta=2")
    assert plugins.split_import_path("mod:Outer.make") == ("mod", "Outer.make", "")


# ------------------------------------------------------------------------------------------------ register
def test_register_as_a_call_and_as_a_decorator(clean_registry):
    class Mine(Selector):
        def __init__(self, k=2):
            self.k = k

        def __call__(self, state):
            return np.array_split(np.arange(state.num_samples), self.k)

    assert register("Mine", Mine) is Mine
    assert repr(from_string("mine:k=3")) == "Mine(k=3)" and Mine.name == "mine"

    @register("first_half")
    def first_half(state):
        return [np.arange(state.num_samples // 2)]

    assert from_string("first_half") is first_half
    assert selectors_base.registered()["first_half"] is first_half
    with pytest.raises(ValueError, match="plain selector function"):
        from_string("first_half:k=1")
    with pytest.raises(ValueError, match=r"unknown hyper-parameter 'q' for selector 'mine' in 'mine:q=1'; it takes: k"):
        from_string("mine:q=1")
    with pytest.raises(ValueError, match=r"registered: first_half, mine"):
        from_string("nope")

    class NeedsBeta(Selector):
        def __init__(self, beta):
            self.beta = beta

        def __call__(self, state):
            return [np.arange(state.num_samples)]

    register("needs_beta", NeedsBeta)
    assert repr(from_string("needs_beta:beta=2")) == "NeedsBeta(beta=2)"
    with pytest.raises(ValueError, match=r"selector 'needs_beta' in 'needs_beta' needs the hyper-parameter\(s\) beta: "
                                         r"give them as key=value after a colon, e.g. 'needs_beta:beta=...'"):
        from_string("needs_beta")


def test_register_refuses_built_in_names_bad_names_and_silent_overwrites(clean_registry):
    def mine(state):
        return [np.arange(state.num_samples)]

    with pytest.raises(ValueError, match=r"selector name 'shuffle' is the built-in Shuffle; choose another name"):
        register("shuffle", mine)
    with pytest.raises(ValueError, match=r"'DyBAT' is the built-in DyBAT"):
        register("DyBAT", mine)
    with pytest.raises(ValueError, match=r"'DyBAT' is the built-in DyBAT"):
        register("DyBAT", replace=True)(mine)
    register("dybat", DyBAT)  # the same object again: no change
    for bad in ("my-sel", "my.sel", "2nd", "", "a:b", None):
        with pytest.raises(ValueError, match=r"is not valid: use letters, digits and underscores"):
            register(bad, mine)
    with pytest.raises(TypeError, match="a selector must be a class"):
        register("number", 3)
    register("mine", mine)
    register("mine", mine)

    def other(state):
        return [np.arange(state.num_samples)]

    with pytest.raises(ValueError, match=r"'mine' is already registered to .*mine'; choose another name, or pass "
                                         r"replace=True"):
        register("mine", other)
    register("mine", other, replace=True)
    assert from_string("mine") is other

    def other(state):  # noqa: F811  (a re-run notebook cell: the same name and place, a new object)
        return []

    register("mine", other)
    assert from_string("mine") is other


# ------------------------------------------------------------------------------------------------ entry points
def write_distribution(root, name, entry_points, module=None, module_name=None):
    """A minimal installed distribution under ``root`` that importlib.metadata finds: METADATA and entry points."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[loop.selectors]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points))
    if module is not None:
        (root / f"{module_name}.py").write_text(module)


def test_an_installed_package_adds_names_through_entry_points(tmp_path, monkeypatch):
    module_name = f"plugin_pkg_{next(_COUNTER)}"
    write_distribution(tmp_path, "loop_plugin_demo", [
        ("hardest_first", f"{module_name}:HardestFirst"), ("made", f"{module_name}:make"),
        ("shuffle", f"{module_name}:Plain"), ("broken_ep", f"{module_name}:Missing")], MODULE, module_name)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "hardest_first" in plugins.entry_points()
        assert repr(from_string("hardest_first:power=2")) == "HardestFirst(power=2)"
        assert repr(from_string("Made:power=4.0")) == "HardestFirst(power=4.0)"
        assert repr(from_string("shuffle")) == "Shuffle()"  # a built-in name always wins
        assert module_name in sys.modules  # loaded lazily, at lookup
        with pytest.raises(ValueError, match=r"unknown hyper-parameter 'gamma' for selector 'hardest_first'"):
            from_string("hardest_first:gamma=1")
        with pytest.raises(ValueError, match=rf"selector 'broken_ep' in 'broken_ep' comes from loop_plugin_demo "
                                             rf"\(entry point '{module_name}:Missing' in group 'loop.selectors'\)"):
            from_string("broken_ep")
        with pytest.raises(ValueError, match=r"registered: broken_ep, hardest_first, made"):
            from_string("nope")
        label, make = labels.selector_key("hardest_first:power=2")
        assert label == "HardestFirst(power=2)" and repr(make()) == label
    finally:
        sys.modules.pop(module_name, None)


def test_a_name_two_packages_claim_differently_is_refused(tmp_path, monkeypatch):
    write_distribution(tmp_path / "a", "plugin_a", [("twice", "mod_a:Sel")])
    write_distribution(tmp_path / "b", "plugin_b", [("twice", "mod_b:Sel")])
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    with pytest.raises(ValueError, match=r"'twice' in 'twice' is registered by several installed packages .* to "
                                         r"mod_a:Sel, mod_b:Sel; give the one you mean as an import path"):
        from_string("twice")


# ---------------------------------------------------------------------------------------- the loop and the bench
def test_a_user_selector_is_cloned_and_checkpointed_like_a_built_in(user_module):
    from helpers import make_data, make_loop

    x, y = make_data(n=60)
    selector = from_string(f"{user_module}:HardestFirst:power=2")
    loop = make_loop(selector)
    assert loop.selector is not selector and repr(loop.selector) == repr(selector)
    loop.fit(x, y, epochs=2, verbose=0)
    assert loop.selector.get_state() == {"calls_": 2} and not hasattr(selector, "calls_")


def test_a_user_selector_s_bad_plan_is_caught_by_the_protocol_checks(tmp_path, monkeypatch):
    from helpers import make_data, make_loop

    (tmp_path / "flat_plan.py").write_text(textwrap.dedent('''\
        import numpy as np

        def flat(state):
            return [np.arange(state.num_samples) + 1]
        '''))
    monkeypatch.chdir(tmp_path)
    x, y = make_data(n=40)
    loop = make_loop("flat_plan:flat")
    with pytest.raises(ValueError, match=r"flat.*40"):
        loop.fit(x, y, epochs=1, verbose=0)


def test_the_bench_label_of_an_import_path_is_stable_and_readable(user_module):
    assert labels.selector_key(f"{user_module}:HardestFirst:power=2")[0] == "HardestFirst(power=2)"
    for spec in (f" {user_module}:hardest_first ", f"{user_module}.hardest_first", f"{user_module} : hardest_first"):
        assert labels.selector_key(spec)[0] == f"{user_module}:hardest_first"
    label, make = labels.selector_key(f"{user_module}:Plain:k=3")  # Python's default repr holds an address
    assert label == f"{user_module}:Plain:k=3" and make() is not make()
    assert labels.selector_key("dybat:delta=0.25")[0] == "DyBAT(delta=0.25)"


def test_a_campaign_runs_resumes_and_tabulates_an_import_path(user_module, monkeypatch, tmp_path):
    from loop.bench import scoring, store
    from loop.bench.campaign import run_campaign
    from loop.bench.suites import entry

    monkeypatch.delenv("LOOP_DATA_DIR", raising=False)
    tiny = entry("spirals", 2, load_options={"n_samples": 300})
    specs = ["shuffle", f"{user_module}:HardestFirst:power=2", f"{user_module}:hardest_first"]
    out = str(tmp_path / "out")
    assert run_campaign([tiny], specs, 1, out, progress=False)["ran"] == 3
    assert run_campaign([tiny], specs, 1, out, progress=False)["skipped"] == 3
    records = store.load(out)
    assert {r["selector"] for r in records} == {"Shuffle()", "HardestFirst(power=2)", f"{user_module}:hardest_first"}
    assert all(r["status"] == "ok" for r in records)
    assert set(scoring.summarize(records)["selector"]) == {r["selector"] for r in records}


def test_the_cli_runs_a_user_module_and_exits_2_on_a_wrong_path(user_module, capsys, tmp_path, monkeypatch):
    from loop.bench.__main__ import main

    monkeypatch.delenv("LOOP_DATA_DIR", raising=False)
    assert main(["--selectors", "bad.path:Nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "selector spec 'bad.path:Nope': no module named 'bad'" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "x")
    args = ["--suite", "untuned", "--datasets", "spirals", "--selectors",
            f"{user_module}:HardestFirst:power=2,batches=None,shuffle",
            "--seeds", "1", "--epochs", "1", "--n-train", "50", "--n-test", "20", "--no-plots", "--bootstrap", "10",
            "--out", str(tmp_path / "out")]
    assert main(args) == 0
    printed = capsys.readouterr().out  # the compact table: one line per selector
    assert re.search(r"^\s*HardestFirst\(power=2\)\s", printed, re.M) and re.search(r"^\s*Shuffle\(\)\s", printed, re.M)
    with open(tmp_path / "out" / "table.md") as f:  # every column
        assert "| spirals | HardestFirst(power=2) |" in f.read()


# ------------------------------------------------------------------------------------------------ docs/methods.md
def docs_example():
    """The fenced Python block of docs/methods.md's section 'Benchmark your own method'."""
    with open(os.path.join(REPO, "docs", "methods.md")) as f:
        text = f.read()
    section = text.split("## Benchmark your own method", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section holds one Python example"
    return blocks[0]


def test_the_docs_example_runs(tmp_path, monkeypatch, capsys):
    """Runs the example as written, with its workload cut to 2 epochs and 2 studies so that it takes seconds."""
    from loop import bench
    from loop.bench.campaign import as_entry

    monkeypatch.delenv("LOOP_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    real_run_campaign, seen = bench.run_campaign, {}

    def tiny_run_campaign(entries, selectors, studies, out, **kwargs):
        entries = [as_entry(item) for item in entries]
        seen.update(entries=entries, selectors=selectors, studies=studies)
        entries = [dataclasses.replace(item, workload=dataclasses.replace(item.workload, epochs=2)) for item in entries]
        return real_run_campaign(entries, selectors, 2, out, progress=False, **kwargs)

    monkeypatch.setattr(bench, "run_campaign", tiny_run_campaign)
    code = docs_example()
    assert len(code.splitlines()) <= 35
    exec(compile(code, "docs/methods.md", "exec"), {"__name__": "docs_example"})
    # the example itself is realistic
    assert seen["studies"] >= 3 and all(item.workload.epochs >= 10 for item in seen["entries"])
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| ")]
    shown = {line.split("|")[2].strip() for line in rows[1:]}
    assert "Shuffle()" in shown and any(label.startswith("LossWeighted(") for label in shown)
    assert len(shown) == 3 and "verdict" in rows[0]
