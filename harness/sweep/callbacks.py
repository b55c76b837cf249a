"""Hydra callbacks that frame a multirun: check every cell before the first trains, report after.

``on_multirun_start`` composes every job of the sweep (as Hydra's basic sweeper will), validates each,
and writes ``sweep.json`` (how many cells, for the progress lines). A bad value in cell 31 of 48 thus
stops the sweep in its first seconds, with one line naming it. ``on_multirun_end`` builds the report;
the same report is available on its own as ``python -m harness.report SWEEP_DIR``, since Hydra skips
this callback when a job raises (jobs here catch their failures, so it normally runs).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from harness import cells
from harness.cells import searched_factors, swept_factors
from harness.comet_summary import comet_summary
from harness.config.run_config import RunConfig, run_config
from harness.config.validate import ConfigError, validate
from harness.interpreters import interpreter_path
from harness.result_files import collect_results
from harness.sweep import progress, run_process
from harness.sweep.cell import planned, run_env, will_train
from harness.sweep.compositions import compose_once
from harness.sweep.faults import stop_when_disk_full, sweep_places
from harness.sweep.order import ordered_batches

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
HARNESS_SWEEPER = "hydra_plugins.harness_sweeper.harness_sweeper.HarnessSweeper"


def sweep_job_overrides(config: DictConfig, as_listed: bool = False) -> list[list[str]] | None:
    """The override list of every job the sweeper will launch, in the order it launches them, or
    (``as_listed``) in the grid's order, each setting's levels as the command line lists them (for the
    harness sweeper and Hydra's basic one; ``None`` for other sweepers, whose jobs are not known ahead)."""
    sweeper = config.hydra.sweeper
    target = sweeper.get("_target_")
    if target not in (BASIC_SWEEPER, HARNESS_SWEEPER):
        return None
    params = sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    order, seed = (sweeper.order, sweeper.seed) if target == HARNESS_SWEEPER and not as_listed else ("grid", 0)
    batches = ordered_batches(parser.parse_overrides(arguments), None, order, seed)
    return [job for batch in batches for job in batch]


def resolved_job_config(config: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """The resolved run config (Hydra's part removed) of the job with ``overrides`` in this sweep."""
    return without_hydra(GlobalHydra.instance().config_loader().load_sweep_config(config, overrides))


def without_hydra(job_cfg: DictConfig) -> dict[str, Any]:
    """A composed job config as the run sees it: Hydra's part left out, the rest resolved. Each top-level
    node is resolved where it is, so Hydra's large node is neither copied nor resolved (7x cheaper per cell)."""
    return {key: _resolved(job_cfg, key) for key in job_cfg if key != "hydra"}


def _resolved(config: DictConfig, key: str) -> Any:
    if OmegaConf.is_missing(config, key):
        return "???"  # as to_container leaves a missing value
    value = config[key]
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def check_cell(resolved: dict[str, Any], where: str = "") -> RunConfig:
    """The run config of ``resolved``; exit 2 with one line if it is invalid, before anything trains."""
    config = run_config(resolved)
    try:
        validate(config)
    except ConfigError as err:
        print(f"harness: error: {err}{where}", file=sys.stderr)
        raise SystemExit(2) from None
    return config


def prestart_run_server(config: DictConfig, configs: list[RunConfig]) -> None:
    """Start the run server of the sweep's first cell that will train now, if the runs will be forked in
    this process (Hydra's basic launcher): it imports Keras while Hydra prepares the jobs. A sweep whose
    cells are all reused or skipped (a resume of a finished sweep) starts none."""
    if "BasicLauncher" not in str(config.hydra.launcher.get("_target_", "")):
        return
    for cell in configs:
        if will_train(cell):
            run_process.prestart(cell.run_process, run_env(cell, online=False, threads=cell.threads),
                                 interpreter_path(cell.python))
            return


def print_plan(configs: list[RunConfig], factors: list[str], launcher: DictConfig) -> None:
    """``plan=true``: one line per cell, in the order the sweep would run them, with what it would do
    (``cell.planned``; on a cluster, ``launcher`` Slurm or Ray, the cluster decides where a GPU is), then the
    counts; exit 0 before anything is trained or written."""
    placed_here = not any(name in str(launcher.get("_target_", "")).lower() for name in ("slurm", "ray"))
    fates = [planned(cell, placed_here) for cell in configs]
    for number, (cell, fate) in enumerate(zip(configs, fates, strict=True), 1):
        print(f"[{number}/{len(configs)}] {cells.describe(cells.cell_factors(cell.resolved, factors), cell.seed)} … "
              f"{fate}")
    kinds = (("would train", "to train"), ("would reuse", "reused from earlier sweeps"),
             ("would be skipped", "skipped"))
    counts = [f"{sum(fate.startswith(prefix) for fate in fates)} {label}" for prefix, label in kinds]
    print(f"plan: {len(configs)} cells: {', '.join(counts)}. Nothing ran (plan=true).")
    raise SystemExit(0)


class SweepCallbacks(Callback):
    """Validate all cells before a multirun, write ``sweep.json``, and build the report after it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with stop_when_disk_full(sweep_places(config)):
            self._start(config)

    def _start(self, config: DictConfig) -> None:
        compose_once(GlobalHydra.instance().config_loader())  # the launcher reuses what the check composes
        jobs = sweep_job_overrides(config)
        sweep_dir = Path(config.hydra.sweep.dir)
        baselines: dict[str, Any] = {}
        if jobs is not None:
            resolved = [resolved_job_config(config, overrides) for overrides in jobs]
            checked = [check_cell(cell, f" (in cell: {' '.join(overrides)})")
                       for overrides, cell in zip(jobs, resolved, strict=True)]
            factors = swept_factors(resolved)
            if config.plan:
                print_plan(checked, factors, config.hydra.launcher)
            listed = [f for f in factors if f in cells.BASELINE_LISTED_FIRST]
            as_listed = sweep_job_overrides(config, as_listed=True)
            first_listed = resolved_job_config(config, as_listed[0]) if listed and as_listed else None
            baselines = cells.baselines(resolved_job_config(config, []), resolved, factors, first_listed)
            prestart_run_server(config, checked)
        else:  # a search: its cells are drawn as it goes; check what the command line fixed
            fixed = check_cell(resolved_job_config(config, list(config.hydra.overrides.task)))
            factors = searched_factors(fixed.factors, (config.hydra.sweeper.get("params") or {}).keys())
            if config.plan:
                print("plan: the settings are valid; a search draws its cells as it goes, so none can be listed "
                      "before it runs. Nothing ran (plan=true).")
                raise SystemExit(0)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        trials = config.hydra.sweeper.get("n_trials")  # a search (Optuna) knows how many cells it will draw
        progress.start_sweep(sweep_dir, jobs, factors=factors, baselines=baselines, name=str(config.sweep_name),
                             total=int(trials) if isinstance(trials, int) else None)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        run_process.finish_runs()  # runs still ending their Comet experiments: their archives, then the summary
        results, problems = collect_results(sweep_dir)
        built = self._report(config, sweep_dir, results, problems) if config.report else None
        print(progress.summary(results, problems))
        comet = comet_summary(results)
        if comet:
            print(comet)
        print(f"report: {built.resolve()}" if built is not None else
              f"report: not built (report=false); build it with `python -m harness.report {sweep_dir}`")
        if any(r["status"] in ("failed", "interrupted") for r in results):
            raise SystemExit(1)  # the sweep finished, but not every cell did

    @staticmethod
    def _report(config: DictConfig, sweep_dir: Path, results: list[Any], problems: list[str]) -> Path:
        """The sweep's report (its ``index.html``); exit 1 with how to rebuild it if it fails."""
        from harness.report.pages import render_report, sweep_label

        try:
            if not results:
                raise FileNotFoundError(f"no result.json files under {sweep_dir}")
            name = sweep_places(config).sweep_name
            index = render_report(results, problems, sweep_label(sweep_dir), name, Path(config.reports_dir) / name)
        except Exception as err:  # Hydra would only warn; the runs are safe, say how to retry the report
            print(progress.summary(results, problems))
            print(f"harness: error: the report failed ({type(err).__name__}: {err}); the results are kept: "
                  f"rebuild it with `python -m harness.report {sweep_dir}`", file=sys.stderr)
            raise SystemExit(1) from None
        return index
