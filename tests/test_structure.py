"""The parts import the way the data flows (#21): config -> sweep -> run -> result files -> report. Each part
is imported in a clean interpreter and what it pulled in is checked, so that an import against the flow
(the report reaching into the sweep, the statistics into Hydra) fails here, not in a reviewer's head."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

CORE = ("hydra", "pandas", "harness.sweep", "harness.run", "harness.report", "tensorflow", "keras")
"""What the result contract, its files and the run key never import: the run process and the report share them."""

NEVER = {
    # part: prefixes of modules it must not import
    "harness.config.schema": ("harness.sweep", "harness.run", "harness.report", "tensorflow", "keras"),
    "harness.config.validate": ("harness.sweep", "harness.run", "harness.report", "tensorflow", "keras"),
    "harness.results": CORE,
    "harness.stage_records": CORE,
    "harness.result_files": CORE,
    "harness.run_key": CORE,
    "harness.targets": CORE,
    "harness.interpreters": CORE,
    "harness.report.pages": ("harness.sweep", "harness.run", "tensorflow", "keras"),
    "harness.report.before_after": ("harness.sweep", "harness.run", "tensorflow", "keras"),
    "harness.report.stats": ("hydra", "omegaconf", "harness.config", "harness.sweep", "harness.run"),
    "harness.report.stability": ("hydra", "omegaconf", "harness.config", "harness.sweep", "harness.run"),
    "harness.sweep.callbacks": ("hydra_plugins", "harness.run", "tensorflow", "keras"),
    "harness.sweep.cell": ("hydra_plugins", "harness.run", "tensorflow", "keras"),
    "harness.__main__": ("harness.run", "tensorflow", "keras", "comet_ml", "ray"),  # Ray only where it launches
    "harness.sweep.ray": ("hydra_plugins", "harness.run", "tensorflow", "keras", "ray"),  # ray: in its functions
}


@pytest.fixture(scope="module")
def imported() -> dict[str, list[str]]:
    """For each part, the modules a fresh interpreter holds after importing it (all started at once)."""
    script = "import importlib, json, sys; importlib.import_module(sys.argv[1]); print(json.dumps(sorted(sys.modules)))"
    started = {part: subprocess.Popen([sys.executable, "-c", script, part], cwd=REPO, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for part in NEVER}
    found = {}
    for part, process in started.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        found[part] = json.loads(out.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("part", sorted(NEVER))
def test_each_part_imports_only_what_comes_before_it_in_the_flow(imported, part):
    against = sorted(m for m in imported[part] if m != part and  # a prefix names a module and what is under it
                     any(m == never or m.startswith(f"{never}.") for never in NEVER[part]))
    assert not against, f"{part} imports against the flow: {against}"


def test_the_sweeper_plugin_is_a_thin_class_over_the_core():
    plugin = (REPO / "hydra_plugins" / "harness_sweeper" / "harness_sweeper.py").read_text()
    core = (REPO / "harness" / "sweep" / "order.py").read_text()
    assert "from harness.sweep.order import ordered_batches" in plugin and "def ordered_batches(" in core
    assert "hydra_plugins" not in core


def test_each_default_is_read_from_the_schema_not_written_again():
    # LATER_SETTING_DEFAULTS is derived from the dataclasses: the defaults a run composes with are its values
    from harness.config.schema import LATER_SETTING_DEFAULTS
    from tests.conftest import compose_config

    composed = compose_config([])
    for dotted, default in LATER_SETTING_DEFAULTS.items():
        *group, name = dotted.split(".")
        assert getattr(getattr(composed, group[0]) if group else composed, name) == default, dotted


def test_the_run_servers_start_up_keys_are_every_variable_a_run_gets_before_its_backend(monkeypatch):
    # STARTUP_KEYS (what a run server is keyed by) must cover every variable run_env sets or removes, or a
    # server started for one kind of run would serve another with the wrong backend set-up.
    import os

    from harness.startup import STARTUP_KEYS
    from harness.sweep.cell import run_env
    from tests.conftest import compose_config

    for key in STARTUP_KEYS:  # as a fresh process has them: an earlier test in this worker may have imported a
        monkeypatch.delenv(key, raising=False)  # module that sets one (harness.run.comet sets Comet's defaults)
    monkeypatch.setenv("COMET_API_KEY", "not-a-real-key")
    touched = set()
    for overrides, threads in ((["device=cpu"], 0), (["device=gpu", "quiet_tensorflow=false"], 0),
                               (["backend=jax"], 2), (["backend=torch", "device=gpu"], 0)):
        env = run_env(compose_config(overrides), online=False, threads=threads)
        touched |= {key for key in set(env) | set(os.environ) if env.get(key) != os.environ.get(key)}
    assert touched - {"COMET_API_KEY"} <= set(STARTUP_KEYS), touched - set(STARTUP_KEYS)  # the key: per run
    assert set(STARTUP_KEYS) <= touched | {"TF_CPP_MIN_LOG_LEVEL"}  # none listed that nothing sets


def test_no_function_takes_more_than_five_positional_parameters():
    """A sixth positional argument is easy to pass in the wrong place: past five, parameters are keyword-only
    or carried by a small dataclass (as ``harness.sweep.cell.Launch`` carries a run's place in its sweep)."""
    import ast

    too_many = []
    for path in sorted((REPO / "harness").rglob("*.py")) + sorted((REPO / "hydra_plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                positional = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
                if len(positional) > 5:
                    too_many.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}({', '.join(positional)})")
    assert not too_many, "\n".join(too_many)


def test_no_function_runs_past_about_fifty_lines():
    """A function a reader cannot see whole is split by what its parts do (the run's ``train`` into loading,
    fitting and recording; ``run_cell`` into checking, placing and launching)."""
    import ast

    longest = 55
    too_long = []
    for path in sorted((REPO / "harness").rglob("*.py")) + sorted((REPO / "hydra_plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > longest:
                    too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {lines} lines")
    assert not too_long, "\n".join(too_long)


NOT_THE_SETTING = {("report/stability.py", "seed"), ("report/synthetic.py", "seed"), ("sweep/order.py", "seed")}
"""Parameters named like a setting that are not it: a bootstrap's seed, made-up data's seed, the shuffle's seed
(the harness sweeper's own, ``hydra.sweeper.seed``)."""


def test_no_setting_has_its_default_written_again_outside_the_schema():
    """Each setting's default lives in its dataclass in ``harness/config/schema.py``. A fallback that repeats
    it (``cfg.get("lr_scale", 1.0)``, ``def f(metric="val_accuracy")``) would silently disagree with the
    schema the day the default changes, so none is allowed anywhere else in ``harness/``."""
    import ast
    import dataclasses

    from harness.config import schema

    defaults: dict[str, set[str]] = {}
    for value in vars(schema).values():
        if isinstance(value, type) and dataclasses.is_dataclass(value):
            for field in dataclasses.fields(value):
                if field.default not in (dataclasses.MISSING, None, "???") and not str(field.default).startswith("${"):
                    defaults.setdefault(field.name, set()).add(repr(field.default))
    assert {"lr_scale", "alpha", "threads", "order", "metric"} <= set(defaults)  # the scan sees the schema

    def repeated(name: str, node: ast.expr | None) -> bool:
        return isinstance(node, ast.Constant) and repr(node.value) in defaults.get(name, ())

    written_again = []
    for path in sorted((REPO / "harness").rglob("*.py")):
        where = str(path.relative_to(REPO / "harness"))
        if where == "config/schema.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                    and len(node.args) == 2 and isinstance(node.args[0], ast.Constant) \
                    and repeated(str(node.args[0].value), node.args[1]):
                written_again.append(f"{where}:{node.lineno} .get({node.args[0].value!r}, {node.args[1].value!r})")
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args.posonlyargs + node.args.args
                pairs = [*zip(args[len(args) - len(node.args.defaults):], node.args.defaults, strict=True),
                         *zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)]
                written_again += [f"{where}:{node.lineno} {node.name}({arg.arg}={default.value!r})"
                                  for arg, default in pairs
                                  if repeated(arg.arg, default) and (where, arg.arg) not in NOT_THE_SETTING]
    assert not written_again, "\n".join(written_again)


def harness_imports() -> dict[str, set[str]]:
    """Each module of the package and the harness modules it imports (at its top or inside a function)."""
    modules = {}
    for path in sorted((REPO / "harness").rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
                found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name.startswith("harness")}
        modules[name] = found
    return modules


def test_no_two_modules_import_each_other():
    # a package re-exporting its own submodule on first use (harness.report -> pages) is not a cycle
    modules = harness_imports()
    mutual = {tuple(sorted((a, b))) for a, imports in modules.items() for b in imports & modules.keys()
              if a != b and a in modules[b] and not a.startswith(b + ".") and not b.startswith(a + ".")}
    assert not mutual, mutual


CONTENT_KEYS = {"harness/run_key.py", "harness/cells.py", "harness/config/run_config.py"}
"""Where the resolved config is read as a mapping on purpose: its construction, the run key (a hash of all of
it) and the grid's factors (any dotted setting, by name)."""


def test_the_run_config_is_read_as_typed_attributes_not_string_keys():
    import re

    lookup = re.compile(r"\b(cfg|config|plain|resolved|opt|ds|es|tr|model|transfer|target)\[\s*[\"']")
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in sorted((REPO / "harness").rglob("*.py")) if str(path.relative_to(REPO)) not in CONTENT_KEYS
             for number, line in enumerate(path.read_text().splitlines(), 1) if lookup.search(line)]
    assert found == [], "\n".join(found)


def test_a_result_gets_its_keys_only_from_the_stage_records():
    # A result is its identity (results.placeholder_result) with the stage records laid over it
    # (stage_records.assemble): nothing else sets a result's key, so every key has one typed place.
    import re

    writes = re.compile(r"\b(result|earlier|run)\[[^]]+\]\s*=[^=]|\b(result|earlier|run)\.(update|setdefault|pop)\(|"
                        r"\{\*\*(result|earlier|run)\b")
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in sorted((REPO / "harness").rglob("*.py")) if path.name != "stage_records.py"
             for number, line in enumerate(path.read_text().splitlines(), 1) if writes.search(line)]
    assert found == [], "\n".join(found)
