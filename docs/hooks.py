"""MkDocs hooks: serve the shipped example report's figures in the site, from where the report code writes them
(``reports/example/figures``), so that the docs show real output instead of a copy that could go stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

FIGURES = Path(__file__).resolve().parent.parent / "reports" / "example" / "figures"


def on_files(files: Files, config: Any) -> Files:
    for figure in sorted(FIGURES.glob("*.png")):
        files.append(File.generated(config, f"example/{figure.name}", abs_src_path=str(figure)))
    return files
