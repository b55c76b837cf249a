"""Write the docs' reference pages from the code, so that they cannot drift from it.

    python docs/generate_reference.py          # rewrite docs/reference/{settings,results,cli}.md

Settings come from the schema's dataclasses (type, default, allowed values, and each field's attribute
docstring), the config groups' options from their YAML files (first comment, values they set), result
fields from the ``Result`` type (each field's comment), options from each command's argparse parser.
A field without its sentence stops the generator: ``tests/test_docs.py`` runs it and compares its output
with the committed pages.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import os
import sys
import tokenize
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "docs" / "reference"


class UndocumentedError(ValueError):
    """A setting, result field or option without its sentence: it would have no entry in the reference."""


def attribute_docs(cls: type) -> dict[str, str]:
    """Each annotated field of ``cls`` (and its bases) with its sentence: the string right after it (an
    attribute docstring) or the comment at the end of its line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        if klass.__module__ in ("typing", "builtins"):
            continue
        source = inspect.getsource(klass)
        comments = {token.start[0]: token.string.lstrip("#").strip()
                    for token in tokenize.generate_tokens(io.StringIO(source).readline)
                    if token.type == tokenize.COMMENT}
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for stmt, following in zip(body, [*body[1:], None], strict=True):
            if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
                continue
            name = stmt.target.id
            if (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[name] = " ".join(following.value.value.split())
            elif stmt.lineno in comments:
                docs[name] = comments[stmt.lineno]
            elif name not in docs:
                raise UndocumentedError(f"{klass.__name__}.{name} has no sentence: add an attribute docstring "
                                        "(or, in a TypedDict, a comment at the end of its line)")
    return docs


def annotation_texts(cls: type) -> dict[str, str]:
    """Each annotated field of ``cls`` with its annotation as written in the source."""
    body = ast.parse(inspect.getsource(cls)).body[0].body  # type: ignore[attr-defined]
    return {stmt.target.id: ast.unparse(stmt.annotation) for stmt in body
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)}


def _cell(value: Any) -> str:
    """A value as a table cell: code, with the pipe escaped."""
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return "`" + text.replace("|", "\\|") + "`" if text != "" else ""


def _default(field: Any) -> Any:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return None


def settings_table(cls: type, prefix: str, choices: dict[str, tuple[str, ...]], skip: tuple[str, ...] = ()) -> str:
    """One row per field of ``cls``: its key, type, default, allowed values and sentence."""
    from omegaconf import MISSING as OMEGA_MISSING

    docs = attribute_docs(cls)
    rows = ["| key | type | default | values | meaning |", "|---|---|---|---|---|"]
    for field in fields(cls):
        if field.name in skip:
            continue
        key = f"{prefix}{field.name}"
        default = _default(field)
        shown = "(the option's)" if default == OMEGA_MISSING else _cell(default)
        allowed = ", ".join(f"`{v}`" for v in choices.get(key, ()))
        kind = str(field.type).replace("|", "\\|")
        rows.append(f"| `{key}` | {kind} | {shown} | {allowed} | {docs[field.name]} |")
    return "\n".join(rows)


def yaml_option(path: Path) -> tuple[str, dict[str, Any]]:
    """An option file's description (its leading comment) and the values it sets."""
    lines = path.read_text().splitlines()
    comment = []
    for line in lines:
        if not line.startswith("#") or line.startswith("#  "):  # the end of the comment, or an example command
            break
        text = line.lstrip("#").strip()
        if text and not text.startswith("@package"):
            comment.append(text)
    values = yaml.safe_load(path.read_text()) or {}
    values = {k: v for k, v in values.items() if k not in ("defaults", "name")}
    about = " ".join(comment)
    end = about.find(". ")
    return (about[:end + 1] if end > 0 else about), values  # its first sentence


def options_table(folder: Path, group: str) -> str:
    rows = ["| option | what it is | sets |", "|---|---|---|"]
    for path in sorted(folder.glob("*.yaml")):
        about, values = yaml_option(path)
        sets = ", ".join(f"`{key}: {_flat(value)}`" for key, value in values.items()
                         if key not in ("hydra", "sweep_name"))
        if "hydra" in values:
            sets = ", ".join(filter(None, [sets, "sweeps " + ", ".join(
                f"`{k}={v}`" for k, v in (values["hydra"].get("sweeper", {}).get("params") or {}).items())]))
        rows.append(f"| `{group}={path.stem}` | {about.replace('|', '/')} | {sets} |")
    return "\n".join(rows)


def _flat(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def settings_page() -> str:
    from harness.config.files import CONF_DIR, EXPERIMENTS_DIR
    from harness.config.schema import CHOICES, SCHEMAS, Config

    groups = [f.name for f in fields(Config) if f.type == "Any"]
    parts = [
        "# Settings",
        "",
        "Generated from `harness/config/schema.py` and the option files of `conf/` and `experiments/` by",
        "`python docs/generate_reference.py`; do not edit by hand. Set any of them on the command line",
        "(`epochs=5`, `optimizer.learning_rate=0.01`), or sweep it (`batch_size=16,64`). In YAML, quote",
        '`"on"` and `"off"`.',
        "",
        "## Top level",
        "",
        settings_table(Config, "", CHOICES, skip=(*groups, "target")),
        "",
        "`target` is a group of its own:",
        "",
    ]
    from harness.config.schema import TargetConfig

    parts += [settings_table(TargetConfig, "target.", CHOICES), ""]
    for group in groups:
        parts += [f"## `{group}`", "", options_table(CONF_DIR / group, group), ""]
        for schema in dict.fromkeys(SCHEMAS[group].values()):
            summary = " ".join((schema.__doc__ or "").split())
            parts += [f"### {schema.__name__}", "", summary, "", settings_table(schema, f"{group}.", CHOICES), ""]
    parts += ["## `workload`", "", "A dataset and a model with their own target (`conf/workload/`): sweep `workload=` "
              "to ask a question across workloads.", "", options_table(CONF_DIR / "workload", "workload"), ""]
    parts += ["## `experiment`", "", "Presets from `experiments/`: each overrides only what differs.", "",
              options_table(EXPERIMENTS_DIR, "experiment"), ""]
    parts += ["## `hparams_search`", "", options_table(CONF_DIR / "hparams_search", "hparams_search"), ""]
    parts += ["## `hydra/launcher`", "", "Besides Hydra's `basic` (one run at a time, the default):", "",
              options_table(CONF_DIR / "hydra" / "launcher", "hydra/launcher"), ""]
    return "\n".join(parts)


def identity_keys() -> list[str]:
    """The keys a result has before any stage ran (``placeholder_result`` of the default config), and
    ``user_code`` (only where the run calls the user's own code)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from harness.config.files import CONF_DIR
    from harness.config.presets import register_experiments
    from harness.config.run_config import run_config
    from harness.config.schema import register_configs
    from harness.results import placeholder_result
    from hydra_plugins.harness_sweeper import harness_sweeper

    register_configs()
    register_experiments()
    harness_sweeper.register()  # before Hydra scans its plugins (as every entry point does)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        resolved = OmegaConf.to_container(compose(config_name="config"), resolve=True)
    placeholder = placeholder_result(run_config(resolved), "failed", "", rerun_command="", log_file="train.log",
                                     started_at=0.0, sweep_position=0)
    return [*placeholder, "user_code"]


def results_page() -> str:
    import typing

    from harness import results, stage_records

    parts = [
        "# Result files",
        "",
        "Generated from `harness/results.py` and `harness/stage_records.py` by `python docs/generate_reference.py`;",
        "do not edit by hand. Each run writes one `result.json`, plain JSON: the only interface between running",
        "and reporting. Every result has the keys marked *always*; an `ok` result also those marked *ok*. *Set by*",
        "names the stage record that sets a key (identity: the run's config and cell, whatever happened to it).",
        "",
    ]
    set_by: dict[str, list[str]] = {name: ["identity"] for name in identity_keys()}
    for record in stage_records.stage_records():
        for name in typing.get_type_hints(record):
            set_by.setdefault(name, []).append(f"`{record.__name__}`")
    for typed, title in ((results.Result, "## `result.json` (`Result`)"),
                         (results.RunSpec, "## `run_spec.json` (`RunSpec`): what the sweep asks of a run")):
        docs = attribute_docs(typed)
        hints = annotation_texts(typed)
        is_result = typed is results.Result
        parts += [title, "", "| field | type | | set by | meaning |" if is_result else "| field | type | meaning |",
                  "|---|---|---|---|---|" if is_result else "|---|---|---|"]
        for name, kind in hints.items():
            shown = kind.replace("|", "\\|")
            if not is_result:
                parts.append(f"| `{name}` | `{shown}` | {docs[name]} |")
                continue
            required = ("*always*" if name in results.REQUIRED else
                        "*ok*" if name in results.REQUIRED_WHEN_OK else "")
            parts.append(f"| `{name}` | `{shown}` | {required} | {', '.join(set_by[name])} | "
                         f"{docs[name]} |")
        parts.append("")
    return "\n".join(parts)


def cli_page() -> str:
    from harness.report import before_after, pages
    from harness.run import server

    parts = ["# Command line", "",
             "Generated from each command's parser by `python docs/generate_reference.py`; do not edit by hand.",
             "", "## `python -m harness`", "",
             "`python -m harness [-m] [group=option ...] [key=value ...]`: one run, or with `-m` a sweep over every",
             "combination of the comma-separated values. The groups and keys are the [settings](settings.md);",
             "`python -m harness --help` lists them, `--cfg job` prints the composed config.", ""]
    for module in (pages, before_after, server):
        parser: argparse.ArgumentParser = module.options_parser()
        parts += [f"## `{parser.prog}`", "", "```text", parser.format_help().rstrip(), "```", ""]
        for action in parser._actions:  # every option must say what it does
            if action.help in (None, "") and not isinstance(action, argparse._HelpAction):
                raise UndocumentedError(f"{parser.prog} {'/'.join(action.option_strings) or action.dest} has no help")
    return "\n".join(parts)


PAGES = {"settings.md": settings_page, "results.md": results_page, "cli.md": cli_page}


def generate() -> dict[str, str]:
    """Every reference page's text, by file name."""
    os.environ["COLUMNS"] = "100"  # argparse wraps its help to the terminal: the same text everywhere
    return {name: page().rstrip("\n") + "\n" for name, page in PAGES.items()}


def main() -> int:
    REFERENCE.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        (REFERENCE / name).write_text(text)
        print(f"wrote {REFERENCE / name}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
