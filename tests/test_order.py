"""The order in which a sweep's cells run: shuffled within each seed's block by default, recorded."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from harness.config.presets import register_experiments
from harness.config.schema import register_configs
from harness.sweep.order import cell_order
from hydra_plugins.harness_sweeper import harness_sweeper
from tests.conftest import CONF, harness_env, results_under, run_harness

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


def _blocks(order: list[list[str]]) -> list[list[list[str]]]:
    """``order`` cut where the ``seed=`` override changes."""
    blocks: list[list[list[str]]] = []
    for cell in order:
        if not blocks or blocks[-1][0][-1] != cell[-1]:
            blocks.append([])
        blocks[-1].append(cell)
    return blocks


def _grouped(levels: list[str]) -> bool:
    """Whether each level's cells come together (as the first-swept factor's do in grid order)."""
    changes = sum(a != b for a, b in itertools.pairwise(levels))
    return changes == len(set(levels)) - 1


def test_every_seed_block_is_a_complete_grid_with_the_first_factor_interleaved():
    # The property, not one implementation's output: 2 x 2 x 3 cells per seed, 6 seeds, 20 sweeper seeds.
    # An order that shuffled only the first block (or none) leaves the others grouped by the first factor.
    grid = [[f"device={d}", f"transfer={t}", f"optimizer={o}", f"seed={s}"]
            for d in ("gpu", "cpu") for t in ("on", "off") for o in ("adam", "sgd", "nag") for s in range(6)]
    grid.sort(key=lambda cell: cell[-1])  # Hydra sweeps seed=... last given first here: blocks by seed
    interleaved = []
    for sweeper_seed in range(20):
        order = cell_order(grid, "shuffled", seed=sweeper_seed)
        assert order == cell_order(grid, "shuffled", seed=sweeper_seed)  # the same seed, the same order
        blocks = _blocks(order)
        assert [block[0][-1] for block in blocks] == [f"seed={s}" for s in range(6)]  # one block per seed, in order
        for block in blocks:
            assert sorted(map(tuple, block)) == sorted(tuple(c) for c in grid if c[-1] == block[0][-1])
            interleaved.append(not _grouped([cell[0] for cell in block]))
    # a random order of 12 cells groups 6 gpu then 6 cpu cells with probability 2 / C(12, 6) = 0.2 %
    assert np.mean(interleaved) > 0.9
    assert not any(not _grouped([c[0] for c in block]) for block in _blocks(cell_order(grid, "grid")))


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


@pytest.mark.parametrize("order", ["shuffled"])  # grid is Hydra's own order: test_grid_order_is_hydras_order
def test_a_sweep_runs_and_records_its_cells_in_order(tmp_path, order):
    done = run_harness(["-m", "epochs=1", "tracking=disabled", "device=gpu,cpu", "optimizer=adam,sgd", "seed=0,1",
                        f"order={order}", "hydra.sweeper.seed=5", "report=false"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [sweep_file] = tmp_path.glob("multirun/*/sweep.json")
    cells = json.loads(sweep_file.read_text())["cells"]
    expected_grid = [["epochs=1", "tracking=disabled", f"device={d}", f"optimizer={o}", f"seed={s}", f"order={order}",
                      "report=False"] for d in ("gpu", "cpu") for o in ("adam", "sgd") for s in (0, 1)]
    assert sorted(map(tuple, cells)) == sorted(map(tuple, expected_grid))  # every cell once
    # observed: the order the cells really ran in, as their lines were printed (device, optimizer, seed), and
    # below, for the trained ones, by their start times (GPU cells are trained only where there is a GPU)
    lines = [line.split() for line in done.stdout.splitlines() if line.startswith("[")]
    ran = [(words[4], words[1], words[5]) for words in lines]
    assert ran == [(c[2], c[3], c[4]) for c in cells]  # as recorded
    seeds = [seed for _, _, seed in ran]
    assert (seeds == sorted(seeds)) == (order == "shuffled")  # shuffled: each seed's cells as one block
    grid_order = [(c[2], c[3], c[4]) for c in expected_grid]
    assert (ran == grid_order) == (order == "grid")
    results = results_under(tmp_path / "multirun")
    started = sorted((r["started_at"], f"device={r['factors']['device']}", f"optimizer={r['factors']['optimizer']}",
                      f"seed={r['seed']}") for r in results if r["status"] == "ok")
    assert [cell[1:] for cell in started] == [cell for cell in ran if cell in {c[1:] for c in started}]
    ran = {r["sweep_position"]: r for r in results if r["status"] == "ok"}
    for position, result in ran.items():  # each run knows its place, and ran the cell listed there
        assert f"optimizer={result['factors']['optimizer']}" in cells[position]
        assert f"seed={result['seed']}" in cells[position]


def test_each_cell_is_composed_once_and_one_of_other_values_is_derived_exactly_as_hydra_composes_it():
    from hydra import initialize_config_dir
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from harness.sweep import compositions
    from harness.sweep.callbacks import without_hydra

    register_configs()
    register_experiments()
    harness_sweeper.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", ["tracking=disabled"], run_mode=RunMode.MULTIRUN)
        composed = []  # Hydra's full compositions
        full = loader.load_sweep_config
        loader.load_sweep_config = lambda master, overrides: composed.append(overrides) or full(master, overrides)
        compositions.compose_once(loader)
        compositions.compose_once(loader)  # idempotent: not wrapped twice
        cells = [[f"optimizer={name}", f"optimizer.learning_rate={rate}", f"seed={seed}", "hydra.job.chdir=false"]
                 for name in ("adam", "sgd") for rate in (0.1, 0.01) for seed in range(3)]
        checked = [loader.load_sweep_config(master, cell) for cell in cells]  # the pre-flight check
        assert len(composed) == 2  # one per optimizer (a config group); rates and seeds are values, derived
        for cell, config in zip(cells, checked, strict=True):
            as_hydra = ConfigLoaderImpl.load_sweep_config(loader, master, cell)
            assert OmegaConf.to_yaml(config) == OmegaConf.to_yaml(as_hydra), cell  # Hydra's part too
            resolved, as_hydra_resolved = without_hydra(config), without_hydra(as_hydra)  # the run config, resolved
            for run in (resolved, as_hydra_resolved):  # ${now:...}, resolved anew at each call; a sweep's runs
                run.pop("sweep_name")  # take its name from sweep.json
            assert resolved == as_hydra_resolved
            assert loader.load_sweep_config(master, cell) is config  # the launcher: the same one, handed over
        assert loader.load_sweep_config(master, cells[0]) is not checked[0]  # handed over once, then its own
        assert checked[1].seed == 1 and checked[3].optimizer.learning_rate == 0.01  # copies, not one config shared
        assert checked[0].seed == 0 and checked[0].optimizer.learning_rate == 0.1
        loader.load_sweep_config(master, ["optimizer=adam", "+optimizer.extra=1"])  # an addition: composed
        assert len(composed) == 3


COUNT_MODE_COMPOSITIONS = """
import atexit, runpy, sys
from hydra._internal.hydra import Hydra
composed = []
compose = Hydra.compose_config
Hydra.compose_config = lambda self, *args, **kwargs: composed.append(kwargs) or compose(self, *args, **kwargs)
atexit.register(lambda: print("to read the mode:", sum(c.get("validate_sweep_overrides") is False for c in composed)))
sys.argv = ["harness", *sys.argv[1:]]
runpy.run_module("harness", run_name="__main__", alter_sys=True)
"""
"""``python -m harness ARGS``, counting Hydra's compositions of the whole config made only to read
``hydra.mode`` (``Hydra.get_mode``'s: the one composition that skips the check of sweep overrides)."""


def test_a_sweep_does_not_compose_its_config_to_learn_the_mode_that_m_gives_and_a_single_run_still_does(tmp_path):
    import subprocess
    import sys

    def composed_for_the_mode(*args: str) -> tuple[int, str]:
        done = subprocess.run([sys.executable, "-c", COUNT_MODE_COMPOSITIONS, *args], cwd=tmp_path,
                              env=harness_env(tmp_path), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return int(done.stdout.rsplit("to read the mode: ", 1)[1]), done.stdout

    count, said = composed_for_the_mode("-m", "tracking=disabled", "seed=0,1", "plan=true")
    assert count == 0 and "plan: 2 cells: 2 to train" in said  # a multirun all the same
    count, said = composed_for_the_mode("tracking=disabled", "plan=true")  # no -m: the config may set the mode
    assert count == 1 and "would train" in said


@pytest.mark.parametrize("preset", [None, "tabular"])  # tabular overrides groups and sets their values
def test_a_cell_of_other_group_options_is_derived_exactly_as_hydra_composes_it(preset):
    # optimizer, transfer, early_stopping, device and model fill only their own nodes: a cell is those nodes
    # taken from compositions that chose the same options. A workload reaches beyond its node: composed.
    from hydra import initialize_config_dir
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from harness.sweep import compositions

    register_configs()
    register_experiments()
    harness_sweeper.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", [f"experiment={preset}"] if preset else [],
                                           run_mode=RunMode.MULTIRUN)
        composed = []
        full = loader.load_sweep_config
        loader.load_sweep_config = lambda master, overrides: composed.append(overrides) or full(master, overrides)
        compositions.compose_once(loader)
        grid = [[f"optimizer={optimizer}", f"transfer={transfer}", f"early_stopping={stopping}",
                 f"device={device}", f"model={model}", "hydra.job.chdir=false"]
                for optimizer in ("sgd", "adam", "rmsprop") for transfer in ("on", "off") for stopping in ("on", "off")
                for device in ("cpu", "gpu") for model in ("small_cnn", "vgg16")]
        checked = [loader.load_sweep_config(master, cell) for cell in grid]
        assert len(composed) == 7  # the first cell, then one per option not chosen before; the rest derived
        for cell, config in list(zip(grid, checked, strict=True))[5::11]:
            as_hydra = ConfigLoaderImpl.load_sweep_config(loader, master, cell)
            assert OmegaConf.to_yaml(config) == OmegaConf.to_yaml(as_hydra), cell  # Hydra's part too
            for group in ("optimizer", "transfer", "model"):  # the schema's type, kept: values are checked on set
                assert OmegaConf.get_type(config[group]) is OmegaConf.get_type(as_hydra[group]), (cell, group)
        assert checked[1].optimizer.name == "sgd" and checked[-1].optimizer.name == "rmsprop"  # copies, not shared
        for workload in ("wine_mlp", "digits_cnn"):  # beyond its node (dataset and model): composed
            loader.load_sweep_config(master, [f"workload={workload}", "optimizer=sgd", "hydra.job.chdir=false"])
        assert len(composed) == 9
