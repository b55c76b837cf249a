"""The timing rules (harness.run.timing.summarize_epochs, harness.targets.target_facts) on hand-built histories
with exact answers."""

from __future__ import annotations

import pytest

from harness.run.timing import summarize_epochs
from harness.targets import target_facts

VAL_ACCURACY = {"metric": "val_accuracy", "mode": "max"}  # the default target's metric, as the run passes it


def epoch(train: float, val: float, acc: float) -> dict:
    return {"train_seconds": train, "val_seconds": val, "val_accuracy": acc}


def test_time_to_target_counts_training_seconds_up_to_the_first_epoch_reaching_it():
    history = [epoch(2.0, 0.5, 0.5), epoch(1.0, 0.5, 0.8), epoch(1.0, 0.5, 0.95), epoch(3.0, 0.5, 0.99)]
    reached = target_facts(history, value=0.9, **VAL_ACCURACY)
    assert reached.time_to_target_seconds == 4.0
    assert reached.epochs_to_target == 3
    assert reached.best_target_metric == 0.99
    summary = summarize_epochs(history, train_examples=100)
    assert summary.train_seconds == 7.0
    assert summary.validation_seconds == 2.0
    assert summary.first_epoch_seconds == 2.0
    assert summary.median_epoch_seconds == 1.0
    assert summary.samples_per_second == 100.0


def test_target_never_reached_is_none():
    reached = target_facts([epoch(1.0, 0.0, 0.1), epoch(1.0, 0.0, 0.2)], value=0.9, **VAL_ACCURACY)
    assert reached.time_to_target_seconds is None and reached.epochs_to_target is None


def test_a_loss_target_is_reached_at_or_below_it():
    history = [{"train_seconds": 1.0, "val_seconds": 0.0, "val_loss": loss} for loss in (0.8, 0.5, 0.3)]
    reached = target_facts(history, metric="val_loss", value=0.5, mode="auto")
    assert (reached.target_mode, reached.time_to_target_seconds, reached.epochs_to_target) == ("min", 2.0, 2)
    assert reached.best_target_metric == 0.3 and reached.target_accuracy is None


def test_target_reached_exactly_counts():
    assert target_facts([epoch(1.5, 0.0, 0.9)], value=0.9, **VAL_ACCURACY).time_to_target_seconds == 1.5
    summary = summarize_epochs([epoch(1.5, 0.0, 0.9)], train_examples=30, steps_per_epoch=3)
    assert summary.median_epoch_seconds is None
    assert summary.samples_per_second == pytest.approx(20.0)
    assert summary.median_step_seconds == pytest.approx(0.5)


def test_energy_counters_read_rapl_at_two_ends_and_say_why_where_there_is_none(tmp_path):
    # A RAPL tree made here: no VM here has /sys/class/powercap (the kernel's files cannot exist on it)
    from harness.hardware import EnergyCounters

    for package, (now, wraps_at) in enumerate(((5_000_000, 10_000_000), (9_000_000, 10_000_000))):
        folder = tmp_path / "powercap" / f"intel-rapl:{package}"
        folder.mkdir(parents=True)
        (folder / "energy_uj").write_text(str(now))
        (folder / "max_energy_range_uj").write_text(str(wraps_at))
    counters = EnergyCounters(tmp_path / "powercap")
    start = counters.read()
    (tmp_path / "powercap" / "intel-rapl:0" / "energy_uj").write_text("7500000")  # +2.5 J
    (tmp_path / "powercap" / "intel-rapl:1" / "energy_uj").write_text("1000000")  # wrapped: +2 J
    assert counters.joules(start, counters.read()) == {"cpu_energy_joules": 4.5, "gpu_energy_joules": None}
    assert counters.unmeasured == []

    absent = EnergyCounters(tmp_path / "nowhere")
    assert absent.joules(absent.read(), absent.read()) == {"cpu_energy_joules": None, "gpu_energy_joules": None}
    assert absent.unmeasured == [f"CPU: no readable RAPL counter ({tmp_path / 'nowhere'} is absent here, as in "
                                 "most VMs)"]
