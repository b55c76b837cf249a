"""The order in which a sweep's cells run: shuffled within each seed's block by default, recorded."""

from __future__ import annotations

import json

import pytest

from harness.sweep.order import cell_order
from tests.conftest import results_under, run_harness

GRID = [[f"optimizer={o}", f"seed={s}"] for s in (0, 1) for o in ("adam", "sgd", "nag")]


def test_grid_order_is_hydras_order():
    assert cell_order(GRID, "grid") == GRID


def test_shuffled_order_is_a_seeded_permutation_within_each_seed_block():
    shuffled = cell_order(GRID, "shuffled", seed=0)
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, GRID))
    assert [cell[1] for cell in shuffled] == ["seed=0"] * 3 + ["seed=1"] * 3  # each repeat a complete block
    assert shuffled == cell_order(GRID, "shuffled", seed=0)  # the same seed, the same order
    orders = {tuple(map(tuple, cell_order(GRID, "shuffled", seed=s))) for s in range(20)}
    assert len(orders) > 1  # the seed matters
    assert any(tuple(map(tuple, GRID)) != order for order in orders)


def test_shuffled_order_without_a_swept_seed_is_one_block():
    cells = [[f"optimizer={o}"] for o in ("adam", "sgd", "nag", "rmsprop", "adagrad", "momentum")]
    assert cell_order(cells, "shuffled", seed=3) == [cells[i] for i in _permutation(len(cells), 3)]


def _permutation(n: int, seed: int) -> list[int]:
    import random

    index = list(range(n))
    random.Random(seed).shuffle(index)
    return index


def test_unknown_order_is_refused():
    with pytest.raises(ValueError, match="order=random is unknown; valid: shuffled, grid"):
        cell_order(GRID, "random")


@pytest.mark.parametrize("order", ["shuffled", "grid"])
def test_a_sweep_runs_and_records_its_cells_in_order(tmp_path, order):
    done = run_harness(["-m", "epochs=1", "tracking=disabled", "device=gpu,cpu", "optimizer=adam,sgd", "seed=0,1",
                        f"order={order}", "hydra.sweeper.seed=5"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [sweep_file] = tmp_path.glob("multirun/*/sweep.json")
    cells = json.loads(sweep_file.read_text())["cells"]
    expected_grid = [["epochs=1", "tracking=disabled", f"device={d}", f"optimizer={o}", f"seed={s}", f"order={order}"]
                     for d in ("gpu", "cpu") for o in ("adam", "sgd") for s in (0, 1)]
    assert cells == cell_order(expected_grid, order, seed=5)
    if order == "shuffled":
        assert cells != expected_grid
    results = results_under(tmp_path / "multirun")
    ran = {r["sweep_position"]: r for r in results if r["status"] == "ok"}
    for position, result in ran.items():  # each run knows its place, and ran the cell listed there
        assert f"optimizer={result['optimizer']}" in cells[position]
        assert f"seed={result['seed']}" in cells[position]
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert [line.split()[1] for line in lines] == [cell[3].split("=")[1] for cell in cells]
