"""Where a benchmark's numbers are kept: everything the script prints also goes to a file under
``benchmarks/measurements/``, headed by the machine, the date and the command, so that the docs quote a
file a script wrote (``tests/test_docs.py`` checks each quoted number against it) rather than memory."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from harness.hardware import cpu_model

OUTPUT = "output.txt"


def add_out_option(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out DIR``: where the transcript goes (default ``benchmarks/measurements/NAME_<date>``)."""
    default = Path(__file__).parent / "measurements" / f"{name}_{time.strftime('%Y-%m-%d')}"
    parser.add_argument("--out", type=Path, default=default, help=f"folder for the transcript, {OUTPUT} "
                        f"(default: benchmarks/measurements/{default.name})")


class _Tee:
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def transcript(out: Path) -> Iterator[Path]:
    """Print to the terminal and to ``out/output.txt`` at once; the file starts with the machine, the date
    and the command line."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / OUTPUT
    with open(path, "w") as file:
        file.write(f"# {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()}, Python "
                   f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M %Z')}\n"
                   f"# python {' '.join(sys.argv)}\n")
        with contextlib.redirect_stdout(_Tee(sys.stdout, file)):  # type: ignore[type-var]
            yield path
