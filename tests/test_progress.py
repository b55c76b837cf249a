"""What a sweep shows while a long run trains: the run's epochs, from its progress file."""

from __future__ import annotations

import io
from pathlib import Path

from harness.run.train import write_progress as write_run_progress
from harness.sweep.progress import LiveLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def write_progress(run_dir: Path, epoch: int, seconds: float, stage: str = "head") -> None:
    """What the run writes after an epoch (``harness.run.train.progress_writer``)."""
    write_run_progress(run_dir, "training", 5, epoch=epoch, stage=stage, val_accuracy=0.5, epoch_seconds=seconds)


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


def test_the_live_line_says_what_a_run_does_before_its_first_epoch_ends(tmp_path):
    terminal = Terminal()
    line = LiveLine(tmp_path, terminal)
    shown = []
    for phase, state in (("data", {}), ("data", {"decoded": 1200, "images": 10000}), ("model", {}),
                         ("training", {"epoch": 0, "stage": "head"})):
        write_run_progress(tmp_path, phase, 5, **state)
        line.update()
        shown.append(terminal.getvalue().rsplit("\x1b[K", 1)[-1])
    write_progress(tmp_path, 1, 9.0)
    write_run_progress(tmp_path, "training", 5, epoch=1, stage="fine_tune")  # the second stage begins
    line.update()
    shown.append(terminal.getvalue().rsplit("\x1b[K", 1)[-1])
    assert shown == ["loading the data", "loading the data: decoded 1,200 of 10,000 images", "building the model",
                     "epoch 1/5 (head) running (its first compiles)", "epoch 2/5 (fine_tune) running"]
