"""One training run in its own process: ``python -m harness.run.train RUN_DIR``.

The only part of the harness that imports Keras/TensorFlow (and comet_ml). It reads
``RUN_DIR/run_spec.json`` (written by ``harness.sweep.cell``), trains, evaluates once on the held-out test
split and writes ``RUN_DIR/result.json``, whatever happens: ``ok``, ``failed`` (with the error),
``skipped`` (a GPU cell where the backend sees no GPU) or ``interrupted`` (Ctrl-C). The device was fixed
by the parent before this process started (CPU cells hide GPUs).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import hardware
from harness.config.run_config import RunConfig, run_config, settings_of
from harness.config.schema import target_mode
from harness.outcomes import DIVERGED
from harness.result_files import store_result, write_json_atomic, write_result
from harness.results import LOG_FILE, PROGRESS_FILE, RESULT_FILE, SPEC_FILE, Result, RunSpec, placeholder_result
from harness.stage_records import (
    DataFacts,
    EpochFacts,
    EpochTimings,
    Evaluation,
    FitFacts,
    FolderFacts,
    InputCheck,
    ModelFacts,
    Outcome,
    Phases,
    ProcessFacts,
    RunEnvironment,
    StageRecord,
    TargetFacts,
    Tracking,
    assemble,
)
from harness.targets import target_facts


def configure_backend(threads: int) -> str | None:
    """Thread limits (0: the backend's default), set before the backend runs its first op; what was
    applied, for the result (JAX's thread count is fixed at import by ``XLA_FLAGS``, set by the sweep)."""
    import keras

    if not threads:
        return None
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        return f"tensorflow intra-op {threads}, inter-op {min(threads, 2)}"
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        return f"torch.set_num_threads({threads})"
    return os.environ.get("XLA_FLAGS")  # JAX: set by the sweep before the backend was imported


def backend_gpus() -> list[str]:
    """The GPUs the Keras backend itself can use (it may see none even where nvidia-smi sees one)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices("GPU")]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def environment(cfg: RunConfig, spec: dict[str, Any]) -> dict[str, Any]:
    """Versions, hardware and run conditions (threads, parallel runs) that shape the run's numbers."""
    import keras

    env = {**hardware.host_environment(), "keras": keras.__version__, "backend": keras.backend.backend(),
           "jit_compile": cfg.jit_compile, "precision": cfg.precision,
           "steps_per_execution": cfg.steps_per_execution, "threads": spec["threads"],
           "parallel_jobs": spec["parallel_jobs"], "gpu_names": hardware.gpu_names()}
    backend_module = importlib.import_module(env["backend"])  # tensorflow, jax or torch: already loaded by Keras
    env[env["backend"]] = getattr(backend_module, "__version__", None)
    env["packages"] = {"python": platform.python_version(), **hardware.software_versions(env["backend"]),
                       "numpy": importlib.metadata.version("numpy"),
                       "cuda": cuda_version(env["backend"], backend_module)}  # this interpreter's (``python=``)
    return env


def cuda_version(backend: str, module: Any) -> str | None:
    """The CUDA version the backend was built with (``None``: a build without CUDA, or unknown)."""
    try:
        if backend == "tensorflow":
            return module.sysconfig.get_build_info().get("cuda_version") or None
        if backend == "torch":
            return module.version.cuda
        if backend == "jax":
            device = module.devices()[0]
            return getattr(device.client, "platform_version", None) if device.platform == "gpu" else None
    except Exception:  # a build that does not say: not recorded rather than a failed run
        return None
    return None


def user_callbacks(paths: list[str]) -> list[Any]:
    """The extra Keras callbacks of the ``callbacks`` setting: each ``package.module:Class``, imported
    and built with no arguments (checked for form and importability before the sweep starts)."""
    built = []
    for path in paths:
        module, _, name = path.partition(":")
        built.append(getattr(importlib.import_module(module), name)())
    return built


def epoch_printer(epochs: int) -> Any:
    """A compact line per epoch in the run's log, instead of Keras' progress bars."""
    import keras

    def show(epoch: int, logs: dict) -> None:
        print(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k} {v:.4f}" for k, v in logs.items()), flush=True)

    return keras.callbacks.LambdaCallback(on_epoch_end=show)


def write_progress(run_dir: Path | None, phase: str, epochs: int, **state: Any) -> None:
    """``run_dir/progress.json`` (``harness.results.PROGRESS_FILE``), which the sweep's live line reads:
    the run's ``phase`` (``data``, ``model``, ``training``; ``harness.sweep.progress.PHASES``), the epochs
    done (0 before the first ends) and ``state`` (an epoch's stage, val accuracy and seconds)."""
    if run_dir is not None:
        write_json_atomic(run_dir / PROGRESS_FILE, {"phase": phase, "epoch": 0, "epochs": epochs, **state,
                                                    "at": time.time()})


def progress_writer(run_dir: Path | None, epochs: int, stages: list[str]) -> Any:
    """Writes the progress file as each ``fit`` starts (the epochs done so far: fine-tuning's ``fit``
    starts where the head's ended) and after each epoch (its seconds from ``logs``, where the epoch timer
    put them). Runs before the epoch timer starts its clock and after it has stopped it, so it costs no
    training time."""
    import keras

    done = [0]  # epochs ended so far, across this run's fits

    def begin(logs: dict | None = None) -> None:
        write_progress(run_dir, "training", epochs, epoch=done[0], stage=stages[-1] if stages else None)

    def write(epoch: int, logs: dict) -> None:
        done[0] = epoch + 1
        write_progress(run_dir, "training", epochs, epoch=epoch + 1, stage=stages[-1] if stages else None,
                       val_accuracy=logs.get("val_accuracy"), epoch_seconds=logs.get("epoch_seconds"))

    return keras.callbacks.LambdaCallback(on_train_begin=begin, on_epoch_end=write)


def fit_callbacks(cfg: RunConfig, experiment: Any, run_dir: Path | None = None,
                  stages: list[str] | None = None) -> tuple[list[Any], Any, Any]:
    """The callbacks every timed ``fit`` gets: the epoch timer (first), the NaN guard, the log line, the
    progress file (with a ``run_dir``; ``stages``: the training stage names so far, the last one
    current), the user's callbacks, early stopping (if on) and the Comet logger (with an experiment).
    Returns them with the timer and the early stopper (``None`` if off)."""
    import keras

    from harness.run import timing

    timer = timing.EpochTimer()
    nan_guard = keras.callbacks.TerminateOnNaN()
    callbacks = [timer, nan_guard, epoch_printer(cfg.epochs),
                 progress_writer(run_dir, cfg.epochs, stages if stages is not None else []),
                 *user_callbacks(cfg.callbacks)]
    stopper = None
    if cfg.early_stopping.enabled:
        settings = settings_of(cfg.early_stopping, leaving_out=("name", "enabled"))
        if settings["monitor"] == "target":  # follow the metric that defines time to target, its way
            settings["monitor"] = cfg.target.metric
            if settings["mode"] == "auto":
                settings["mode"] = target_mode(cfg.target.metric, cfg.target.mode)
        stopper = keras.callbacks.EarlyStopping(**settings)
        callbacks.append(stopper)
    if experiment is not None:
        from harness.run.comet import CometEpochLogger

        callbacks.append(CometEpochLogger(experiment))
    return callbacks, timer, stopper


def build_model(cfg: RunConfig, task: Any, source: Any, cache_dir: Path) -> tuple[Any, Any, list[StageRecord]]:
    """The classifier of the run ``cfg``, compiled, and its feature extractor: pretrained and frozen
    with transfer on (from ``source``, the source-classes task, for ``source_task`` weights), else
    from scratch after seeding. Returns them with their records: ``ModelFacts``, and ``Pretraining`` (where
    the weights came from) with transfer on."""
    from harness.run import backbones, models, optimizers

    transfer = cfg.transfer
    records: list[StageRecord] = []
    if cfg.model.name == "custom":  # the user's own function (harness.run.custom); transfer: its pretrained part
        from harness.run import custom

        models.seed_everything(cfg.seed)
        model = custom.build_model(cfg.model, task, pretrained=transfer.enabled)
        extractor = model.get_layer(cfg.model.frozen_layer) if transfer.enabled else model
        backbone, image_size = cfg.model._target_, None
    else:
        if transfer.enabled:
            from_source_task = transfer.weights == "source_task"
            extractor, pretraining = models.pretrained_extractor(cfg, source if from_source_task else task, cache_dir)
            records.append(pretraining)
        models.seed_everything(cfg.seed)
        if not transfer.enabled:
            extractor = models.build_feature_extractor(task.input_shape, cfg.model, pixel_max=task.pixel_max)
        model = models.build_classifier(extractor, task.num_classes, cfg.model, frozen=transfer.enabled)
        backbone = cfg.model.name
        image_size = backbones.image_size(cfg.model) if cfg.model.name in backbones.APPLICATIONS else None
    model.compile(optimizer=optimizers.build_optimizer(cfg.optimizer), **compile_options(cfg))
    records.append(ModelFacts(backbone, optimizers.effective_learning_rate(cfg.optimizer),
                              **backbones.parameter_counts(model), image_size=image_size))
    return model, extractor, records


def compile_options(cfg: RunConfig) -> dict[str, Any]:
    """What every ``compile`` of the run gets besides its optimizer (both fine-tuning stages alike)."""
    return {"loss": cfg.loss, "metrics": list(cfg.metrics), "jit_compile": cfg.jit_compile,
            "steps_per_execution": cfg.steps_per_execution}


def train(cfg: RunConfig, cache_dir: Path, experiment: Any, records: list[StageRecord], clock: Any, *,
          run_dir: Path | None = None) -> None:
    """Train and evaluate the run ``cfg``, adding each stage's record to ``records`` as it ends (the last
    an ``Outcome``); ``clock``: the run's ``timing.PhaseClock``; ``run_dir``: where to write the progress
    file (``None``: nowhere)."""
    import keras

    from harness.run import streaming

    folder = FolderFacts()  # filled while loading: kept even where loading fails
    records.append(folder)
    task, source, loaded = load_task(cfg, cache_dir, folder, clock, run_dir)
    records.append(loaded)
    keras.config.set_dtype_policy(cfg.precision)  # before any layer is built; the output stays float32
    model, extractor, model_records = build_model(cfg, task, source, cache_dir)
    records += model_records
    history, stopper, fitted = fit_stages(cfg, model, extractor, task, experiment=experiment, clock=clock,
                                          run_dir=run_dir)
    records.append(fitted)
    epochs, reached, timings = summarize_history(cfg, task, history, stopper)
    records += [epochs, reached, timings]
    records += check_input(cfg, task, epochs.steps_per_epoch, timings.median_epoch_seconds, clock)
    if any(not math.isfinite(epoch.get("loss", 0.0)) for epoch in history):  # TerminateOnNaN stopped it
        records.append(Outcome("failed", DIVERGED))
        return
    tested = model.evaluate(**streaming.inputs(task.test, cfg.batch_size), verbose=0, return_dict=True)
    clock.lap("evaluate")
    records += [Evaluation(test_loss=float(tested["loss"]),
                           test_accuracy=float(tested["accuracy"]) if "accuracy" in tested else None,
                           test_metrics={name: float(value) for name, value in tested.items()}),
                Outcome("ok", None)]


def check_input(cfg: RunConfig, task: Any, steps_per_epoch: int | None, steady_seconds: float | None,
                clock: Any) -> list[InputCheck]:
    """Is the input pipeline the bottleneck? After training (never inside it), time one epoch of the
    training input alone (``streaming.input_epoch_seconds``) where ``input_check`` asks for it, and its
    share of a steady epoch (``steady_seconds``): ``input_bound`` at ``streaming.INPUT_BOUND_SHARE`` or
    more. Returns its record, or none where it was not asked for or one epoch is not defined."""
    from harness.run import streaming

    given = streaming.inputs(task.train, cfg.batch_size, seed=cfg.seed)
    if cfg.input_check == "off" or (cfg.input_check == "auto" and "y" in given):  # in-memory arrays
        return []
    if not steps_per_epoch:  # a dataset of unknown length: one epoch is not defined
        return []
    seconds = streaming.input_epoch_seconds(given, steps_per_epoch)
    clock.lap("input_check")
    share = seconds / steady_seconds if steady_seconds else None
    return [InputCheck(seconds, share, None if share is None else share >= streaming.INPUT_BOUND_SHARE)]


def load_task(cfg: RunConfig, cache_dir: Path, folder: FolderFacts, clock: Any,
              run_dir: Path | None) -> tuple[Any, Any, DataFacts]:
    """The run's data (``data.load_tasks``: the task and, for ``source_task`` weights, the source task; for
    ``dataset=custom``, ``custom.load_task``: the user's function's, without a source task) and its
    ``DataFacts``, its loading timed as ``data_seconds`` (never training time) and its progress shown;
    ``folder`` gets how an image folder was read."""
    from harness.run import custom, data

    write_progress(run_dir, "data", cfg.epochs)

    def decoding(done: int, total: int) -> None:  # a big folder's first run: its live line counts the images
        write_progress(run_dir, "data", cfg.epochs, decoded=done, images=total)

    if cfg.dataset.name == "custom":
        task, source = custom.load_task(cfg.dataset), None
    else:
        task, source = data.load_tasks(cfg.dataset, cache_dir, folder, decoding)
    clock.lap("data")
    write_progress(run_dir, "model", cfg.epochs)
    loaded = DataFacts(data_seconds=clock.seconds["data"], train_examples=task.train_examples,
                       image_shape=list(task.input_shape))
    return task, source, loaded


def fit_stages(cfg: RunConfig, model: Any, extractor: Any, task: Any, *, experiment: Any, clock: Any,
               run_dir: Path | None) -> tuple[list[dict[str, Any]], Any, FitFacts]:
    """Fit ``model``: the head (transfer) or the whole model, then, for fine-tuning, the top of the
    ``extractor`` too. Both stages are training time (``fit_seconds``), and so is the recompilation between
    them; a head stage stopped by a NaN loss is not fine-tuned. Returns the per-epoch history (metrics,
    the epoch timer's seconds, the stage), the early stopper (``None`` if off) and the fit's record."""
    from harness.run import backbones, device_memory, optimizers, streaming

    transfer = cfg.transfer
    fine_tune = transfer.enabled and transfer.fine_tune_layers > 0 and transfer.head_epochs < cfg.epochs
    stage_names = ["head" if transfer.enabled else "all"]  # what the progress file says is training now
    callbacks, timer, stopper = fit_callbacks(cfg, experiment, run_dir, stage_names)
    clock.lap("model")

    fit_options = {**streaming.inputs(task.train, cfg.batch_size, seed=cfg.seed),
                   "validation_data": streaming.validation_data(task.val, cfg.batch_size),
                   "callbacks": callbacks, "verbose": 0}
    counters = hardware.EnergyCounters(gpu_index=hardware.visible_gpu_index() if cfg.device.name == "gpu"
                                       else None)  # opened before the timed fit: its two reads are file reads
    energy_started = counters.read()
    cpu_started, started = time.process_time(), time.perf_counter()
    metrics = model.fit(epochs=transfer.head_epochs if fine_tune else cfg.epochs, **fit_options).history
    stages = [stage_names[0]] * len(timer.epochs)
    fine_tuned_layers, fine_tune_params = None, None
    if fine_tune and all(math.isfinite(loss) for loss in metrics.get("loss", [])):
        stage_names.append("fine_tune")
        fine_tuned_layers = backbones.unfreeze_top(extractor, transfer.fine_tune_layers)
        learning_rate = transfer.fine_tune_learning_rate
        fine_tuning = dataclasses.replace(cfg.optimizer, learning_rate=learning_rate, lr_scale=1.0)
        model.compile(optimizer=optimizers.build_optimizer(fine_tuning), **compile_options(cfg))
        fine_tune_params = backbones.parameter_counts(model)["trainable_params"]
        done = len(timer.epochs)
        more = model.fit(initial_epoch=done, epochs=cfg.epochs, **fit_options).history
        metrics = {key: [*metrics.get(key, []), *values] for key, values in more.items()}
        stages += ["fine_tune"] * (len(timer.epochs) - done)
    fit_seconds = time.perf_counter() - started
    fit_cpu_seconds = time.process_time() - cpu_started
    fitted = FitFacts(
        transfer_mode=("fine-tuned" if fine_tune else "frozen") if transfer.enabled else "from scratch",
        fit_seconds=fit_seconds, fit_cpu_seconds=fit_cpu_seconds,
        cores_used=fit_cpu_seconds / fit_seconds if fit_seconds > 0 else 0.0,
        **counters.joules(energy_started, counters.read()), energy_unmeasured=counters.unmeasured,
        device_peak_memory_bytes=device_memory.peak_bytes(cfg.backend),
        fine_tuned_layers=fine_tuned_layers, fine_tune_params=fine_tune_params)
    clock.lap("fit")
    history = [{**{k: float(v[i]) for k, v in metrics.items()}, **timer.epochs[i], "stage": stages[i]}
               for i in range(len(timer.epochs))]
    return history, stopper, fitted


def summarize_history(cfg: RunConfig, task: Any, history: list[dict[str, Any]],
                      stopper: Any) -> tuple[EpochFacts, TargetFacts, EpochTimings]:
    """What the fit's per-epoch ``history`` says: the history itself with the best values and whether and
    when early stopping ended it (``EpochFacts``), its target (``target_facts``) and its timing figures
    (``timing.summarize_epochs``)."""
    from harness.run import custom, timing

    steps_per_epoch = custom.steps_per_epoch(task, cfg.batch_size)
    target = cfg.target
    reached = target_facts(history, metric=target.metric, value=target.value, mode=target.mode)
    timings = timing.summarize_epochs(history, task.train_examples, steps_per_epoch=steps_per_epoch)
    val_accuracies = [epoch["val_accuracy"] for epoch in history if "val_accuracy" in epoch]
    early_stopped = bool(stopper is not None and stopper.stopped_epoch > 0)
    epochs = EpochFacts(history=history, epochs_run=len(history), steps_per_epoch=steps_per_epoch,
                        best_val_accuracy=max(val_accuracies) if val_accuracies else None,
                        early_stopped=early_stopped, stopped_epoch=stopper.stopped_epoch + 1 if early_stopped else None)
    return epochs, reached, timings


def run(run_dir: Path, on_result: Callable[[], Any] | None = None) -> Result:
    """Do the run described in ``run_dir/run_spec.json``; write and return its result.

    The result is the run's identity with the record of each stage that ran laid over it
    (``harness.stage_records.assemble``): whatever stage it ended in, what the earlier ones found is kept.
    ``on_result`` is called once ``result.json`` is written, before the Comet experiment ends (Comet's
    offline ``end()`` waits about a second, nearly without CPU): a run server tells the sweep then, so
    that the next run need not wait for it. The archive's path is in the result; whether it was written
    is checked at the end of the sweep (``harness.comet_summary``).
    """
    spec: RunSpec = json.loads((run_dir / SPEC_FILE).read_text())
    cfg = run_config(spec["config"])
    start = placeholder_result(cfg, "failed", "run did not finish", spec.get("factors"), spec.get("factor_baselines"),
                               started_at=time.time(), sweep_position=spec.get("sweep_position"),
                               rerun_command=spec.get("rerun_command", ""), log_file=str(run_dir / LOG_FILE))
    phases = Phases()
    records: list[StageRecord] = [phases]
    experiment, tracked = None, None
    if spec.get("launched_at"):  # process start and imports (a fresh process) or the fork (a run server)
        phases.phase_seconds["startup"] = max(0.0, start["started_at"] - spec["launched_at"])
    try:
        importing = time.perf_counter()
        import keras  # noqa: F401  (timed: the imports a fresh process pays, ~0 when forked)

        from harness.run.timing import PhaseClock

        phases.phase_seconds["imports"] = time.perf_counter() - importing  # ~5 s in a fresh process; ~0 when forked
        clock = PhaseClock(phases.phase_seconds)
        applied = configure_backend(spec["threads"])  # before anything else touches the backend
        env = {**environment(cfg, spec), "threads_applied": applied}
        records += [RunEnvironment(env), *use_device(cfg, env)]  # the first: kept if finding the GPU fails
        if not isinstance(records[-1], Outcome):
            clock.lap("backend")
            if spec["tracking"]["mode"] != "disabled":
                from harness.run import comet

                experiment, tracked = comet.begin_experiment(spec["tracking"], assemble(start, *records))
                records.append(tracked)
                clock.lap("comet_start")
            train(cfg, Path(spec["cache_dir"]), experiment, records, clock, run_dir=run_dir)
    except KeyboardInterrupt:
        records.append(Outcome("interrupted", "interrupted by the user (Ctrl-C)"))
    except Exception as err:  # any failure is this run's, recorded, never the sweep's
        traceback.print_exc()
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        records.append(Outcome("failed", f"{type(err).__name__}: {message}"[:500]))
    finally:
        result = keep_result(run_dir, spec, assemble(start, *records), experiment, tracked=tracked,
                             on_result=on_result)
    return result


def use_device(cfg: RunConfig, env: dict[str, Any]) -> list[StageRecord]:
    """The run's environment ``env`` and the device it trains on (``device_used``). A GPU cell whose backend
    sees no GPU would silently train on the CPU, never a GPU result: it is ``skipped`` (no GPU at all) or
    ``failed`` (a GPU that the backend cannot use), and an ``Outcome`` last says the run ends there."""
    import keras

    gpus = backend_gpus()
    if cfg.device.name != "gpu":
        return [RunEnvironment(env, device_used="cpu")]
    env = {**env, "gpus": list(hardware.gpu_details()), "backend_devices": gpus}
    if gpus:
        return [RunEnvironment(env, device_used=f"gpu:{gpus[0]}")]
    seen = hardware.gpu_names()
    backend = keras.backend.backend()
    if seen:
        return [RunEnvironment(env), Outcome("failed", f"nvidia-smi sees {seen[0]} but the {backend} backend "
                                             f"sees no GPU (a CPU-only build of {backend}?)")]
    return [RunEnvironment(env), Outcome("skipped", f"no GPU visible to the {backend} backend")]


def keep_result(run_dir: Path, spec: RunSpec, result: Result, experiment: Any, *, tracked: Tracking | None,
                on_result: Callable[[], Any] | None) -> Result:
    """However the run ended: its outcome logged to Comet, an ``ok`` result put in the results store first
    (once ``result.json`` exists, it is kept), ``result.json`` written, the caller told (``on_result``),
    and only then the Comet experiment ended (its offline ``end()`` waits). Returns the result written."""
    if experiment is not None:
        from harness.run import comet

        comet.log_outcome(experiment, result, tracked)
    # ended_at, with started_at: when this run's process was busy (parallel runs overlap)
    ended = ProcessFacts(ended_at=time.time(), **hardware.process_memory_and_cpus())
    result = assemble(result, *([tracked] if tracked is not None else []), ended)
    if result["status"] == "ok" and spec.get("results_dir"):
        store_result(Path(spec["results_dir"]), result)
    write_result(run_dir / RESULT_FILE, result)
    if on_result is not None:
        on_result()
    if experiment is not None:
        comet.end_experiment(experiment, tracked)
    return result


def exit_code(result: Result) -> int:
    """The run process's exit status: 0 for a run that is ``ok`` or ``skipped``, else 1."""
    return 0 if result["status"] in ("ok", "skipped") else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m harness.run.train RUN_DIR")
    sys.exit(exit_code(run(Path(sys.argv[1]))))
