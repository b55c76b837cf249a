"""The user's own code, named in config by Hydra's ``_target_`` (``model=custom``, ``dataset=custom``).

The sweep process must not import it: a user's model module imports Keras, and the sweep never imports a
backend (one clean process per run does). So it is found (``importlib.util.find_spec``, which runs no more
than the enclosing packages' ``__init__``) and read as source (``ast``): a missing module or function is
one line before any training, and the module file's contents, hashed, join the run key, so that editing
``mylab/models.py`` retrains instead of reusing a result of the old code. The run process imports it
(``harness.run.custom``).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path
from typing import Any

TARGET = "_target_"
CUSTOM_GROUPS = ("model", "dataset")
"""The config groups whose option ``custom`` takes the user's function."""
HARNESS_SETTINGS = {"model": ("name", TARGET, "frozen_layer", "pretrained_weights"),
                    "dataset": ("name", TARGET, "limit", "train_size", "val_fraction", "test_fraction", "split_seed")}
"""The settings of ``model=custom`` and ``dataset=custom`` that the harness uses; every other key of the group
is a keyword of the user's function (``+model.units=64``)."""


class UserCodeError(ValueError):
    """A ``_target_`` that names no module or no function: one line, naming the setting and what exists."""


def targets(cfg: dict[str, Any]) -> dict[str, str]:
    """The ``_target_`` of each group of the run config ``cfg`` that has one: ``{"model": "mylab.models.mlp"}``."""
    return {group: str(cfg[group][TARGET]) for group in CUSTOM_GROUPS
            if isinstance(cfg.get(group), dict) and cfg[group].get(TARGET)}


def module_file(target: str, setting: str) -> tuple[Path, str]:
    """The source file of the module of ``target`` (``package.module.function``) and the function's name;
    ``UserCodeError`` where no such module is on the Python path."""
    module, _, name = target.rpartition(".")
    if not module or not name:
        raise UserCodeError(f"{setting}={target} is not a function's import path; valid: package.module.function "
                            "(e.g. mylab.models.mlp, with mylab on PYTHONPATH)")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as err:
        spec, why = None, f" ({err})"
    else:
        why = ""
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise UserCodeError(f"{setting}={target}: no module {module!r} on the Python path{why}; put its folder on "
                            "PYTHONPATH (e.g. PYTHONPATH=. when mylab/ is in the current folder) or install it")
    return Path(spec.origin), name


def _tree(target: str, setting: str) -> tuple[Path, str, ast.Module]:
    path, name = module_file(target, setting)
    try:
        return path, name, ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError, ValueError) as err:
        raise UserCodeError(f"{setting}={target}: cannot read {path} ({type(err).__name__}: {err})") from None


def parameters(target: str) -> tuple[str, ...] | None:
    """The names ``target``'s function takes as keywords, read from its source; ``None`` where that cannot
    be told without importing it (``**kwargs``, a class, a name imported or assigned) or it cannot be read."""
    try:
        _, name, tree = _tree(target, TARGET)
    except UserCodeError:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            if node.args.kwarg is not None:
                return None
            return tuple(a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs))
    return None


def refused_keyword(group: str, target: str, given: list[str], taken: tuple[str, ...] | None) -> str | None:
    """The line saying that ``target``, which takes the keywords ``taken`` (``None``: any), takes no keyword
    of ``given`` (``model.units is not a parameter of mylab.models.mlp; ...``), or ``None``."""
    refused = [key for key in given if taken is not None and key not in taken]
    if not refused:
        return None
    own = ", ".join(key for key in HARNESS_SETTINGS[group] if key != "name")
    return (f"{group}.{refused[0]} is not a parameter of {target}; its parameters: {', '.join(taken or ()) or 'none'}"
            f" (the harness's own {group} settings: {own})")


def check(target: str, setting: str) -> None:
    """``UserCodeError`` (one line) unless ``target``'s module exists and defines ``target``'s function (or
    class, or other top-level name) at its top level; read, not imported."""
    path, name, tree = _tree(target, setting)
    defined = _top_level_names(tree)
    if name not in defined:
        functions = [node.name for node in tree.body
                     if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_")]
        shown = ", ".join(sorted(functions)) or "no public function"
        raise UserCodeError(f"{setting}={target}: {path} defines no {name!r}; valid: {shown}")


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def code_hashes(cfg: dict[str, Any]) -> dict[str, str]:
    """``{target: SHA-256 of its module file}`` for each ``_target_`` of ``cfg`` (part of the run key and of
    the result); a module that cannot be found hashes as ``missing`` (the run then fails, saying why)."""
    found = {}
    for group, target in targets(cfg).items():
        try:
            path, _ = module_file(target, f"{group}.{TARGET}")
            found[target] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        except (UserCodeError, OSError):
            found[target] = "missing"
    return found
