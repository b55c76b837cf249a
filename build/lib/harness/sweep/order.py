"""The order in which a sweep's cells run: a pure function of the cells, the order's name and a seed.

Machine speed drifts (here ±20 % within minutes, 2.5× between a morning and an afternoon). In Hydra's
grid order the levels of the last-swept factor alternate quickly and those of the first-swept factor
change once, so a slow quarter of an hour lands on one level of it and looks like an effect.
``shuffled`` (the default) runs the cells as randomised blocks: the cells of each seed (each repeat)
together, in a seeded random order within the block, so that drift spreads over every level and each
repeat is a complete grid. ``grid`` keeps Hydra's order. Pairs stay paired either way: pairing is by
config, not by position.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.config.schema import ORDERS

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override


def _seed_of(cell: Sequence[str]) -> str:
    """The value of the ``seed=`` override in ``cell`` (``""`` when the seed is not swept)."""
    return next((override.split("=", 1)[1] for override in cell if override.split("=", 1)[0] == "seed"), "")


def cell_order(cells: Sequence[Sequence[str]], order: str, seed: int = 0) -> list[list[str]]:
    """``cells`` (each a list of ``key=value`` overrides, in Hydra's grid order) in the order they run.

    ``order``: ``grid`` (unchanged) or ``shuffled`` (blocks of equal ``seed=``, in their grid order;
    within each block a random permutation drawn from ``random.Random(seed)``). Raises ``ValueError``
    for any other order. The same arguments give the same order, on any machine.
    """
    if order not in ORDERS:
        raise ValueError(f"order={order} is unknown; valid: {', '.join(ORDERS)}")
    cells = [list(cell) for cell in cells]
    if order == "grid":
        return cells
    blocks: dict[str, list[list[str]]] = {}
    for cell in cells:
        blocks.setdefault(_seed_of(cell), []).append(cell)
    rng = random.Random(seed)
    ordered: list[list[str]] = []
    for block in blocks.values():
        rng.shuffle(block)
        ordered += block
    return ordered


def ordered_batches(overrides: list[Override], max_batch_size: int | None, order: str,
                    seed: int) -> list[list[list[str]]]:
    """The basic sweeper's cartesian product of ``overrides``, put in ``order`` and cut into batches of
    ``max_batch_size`` cells (one batch when ``None``)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    grid = [cell for batch in BasicSweeper.split_arguments(overrides, None) for cell in batch]
    cells = cell_order(grid, order, seed)
    size = max_batch_size if max_batch_size and max_batch_size > 0 else max(1, len(cells))
    return [cells[i:i + size] for i in range(0, len(cells), size)]
