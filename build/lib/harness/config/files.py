"""Where the YAML configs are: ``conf/`` (Hydra's config groups) and ``experiments/`` (presets).

The repository keeps both at its top level, where users look for them; a wheel ships them inside the
package as ``harness/conf`` and ``harness/experiments`` (``pyproject.toml`` maps them). A checkout or
an editable install finds them beside the package, any other install inside it, so ``python -m
harness`` works from any folder after any install.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # harness/


def shipped(name: str) -> Path:
    """``harness/<name>`` where the package carries it (a wheel install), else ``<checkout>/<name>``."""
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name


CONF_DIR = shipped("conf")
EXPERIMENTS_DIR = shipped("experiments")
