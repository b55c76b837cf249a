"""What a sweep shows while a long run trains: the run's epochs, from its progress file."""

from __future__ import annotations

import io
from pathlib import Path

from harness.results import PROGRESS_FILE, write_json_atomic
from harness.sweep.progress import LiveLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def write_progress(run_dir: Path, epoch: int, seconds: float, stage: str = "head") -> None:
    write_json_atomic(run_dir / PROGRESS_FILE, {"epoch": epoch, "epochs": 5, "stage": stage, "val_accuracy": 0.5,
                                                "epoch_seconds": seconds, "at": float(epoch)})


def test_a_long_runs_live_line_is_rewritten_on_a_terminal_and_printed_plain_elsewhere(tmp_path):
    plain, terminal = io.StringIO(), Terminal()
    lines = [LiveLine(tmp_path, plain, plain_every_s=0), LiveLine(tmp_path, terminal)]
    for line in lines:
        line.update()  # nothing yet: the first epoch has not ended
    assert plain.getvalue() == "" and terminal.getvalue() == "\x1b7"
    write_progress(tmp_path, 1, 9.0)  # the first epoch compiles: slower
    for line in lines:
        line.update()
    write_progress(tmp_path, 2, 3.0, "fine_tune")
    for line in lines:
        line.update()
        line.update()  # no new epoch: a plain log gets no repeated line
    lines[1].close()
    assert plain.getvalue() == ("\n    epoch 1/5 (head), val acc 0.500, 9.0 s/epoch, run ETA ≤ 36 s\n"
                                "    epoch 2/5 (fine_tune), val acc 0.500, 3.0 s/epoch, run ETA ≤ 9 s\n")
    assert lines[0].printed_plain and not lines[1].printed_plain
    assert terminal.getvalue().endswith("\x1b8\x1b[Kepoch 2/5 (fine_tune), val acc 0.500, 3.0 s/epoch, run ETA ≤ 9 s"
                                        "\x1b8\x1b[K")  # erased at the end: the outcome follows the heading
