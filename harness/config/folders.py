"""The layout of a ``folder`` dataset: one sub-folder of images per class. Read by the config's checks
(before any run: an empty class folder is one line) and by the run that decodes the images
(``harness.run.data``), so both see the same folders and files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.config.schema import DatasetConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def class_folders(cfg: DatasetConfig) -> list[Path]:
    """The class folders of a ``folder`` dataset: ``class_folders`` in that order, or every sub-folder
    of ``path`` (hidden ones left out) in name order. Checked in the Hydra process too."""
    root = Path(cfg.path).expanduser()
    if cfg.class_folders:
        return [root / name for name in cfg.class_folders]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(folder: Path) -> list[Path]:
    """The images of one class folder (by suffix, in name order; other files are ignored)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
