"""The Ray Tune layer (it only adapts): a function trainable around ``run_trial``, resources, a progress bar."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sdbench.errors import UserError
from sdbench.results import load_result, write_result
from sdbench.sweep.directory import trial_status
from sdbench.sweep.driver import SweepLock, ray_temp_dir
from sdbench.sweep.wandb_log import log_wandb


def _ray_trial(config: dict[str, Any]) -> None:
    """The Tune trainable: one sdbench trial, reported once."""
    import torch
    from ray import tune

    from sdbench import trial as T
    from sdbench.errors import TrialFailed

    torch.set_num_threads(config["threads"])
    spec = T.spec_from_config(config["config"])
    trial_dir = Path(config["dir"])
    error = None
    try:
        result = T.run_trial(spec, trial_dir, progress=False)
    except TrialFailed as e:  # recorded in the trial's result.json
        error = str(e)
        result = load_result(trial_dir)
    except UserError as e:  # bad input found on the worker (e.g. missing weights there): nothing written yet
        error = str(e)
        result = T.new_result(spec, error=error)
        write_result(trial_dir, result)
    if config.get("wandb", "disabled") != "disabled":
        log_wandb(config, spec, trial_dir, result)
    tune.report({"status": result.status, "error": error or "", **{f"metric/{k}": v for k, v in result.metrics.items()}})


def check_gpus_per_trial(gpus_per_trial: float | None) -> None:
    """``UserError`` unless ``gpus_per_trial`` is None, a fraction in (0, 1] or a whole number (Ray's rule)."""
    if gpus_per_trial is None:
        return
    g = gpus_per_trial
    if not g > 0 or g != g or (g > 1 and g != int(g)):
        raise UserError(f"--gpus-per-trial must be a fraction in (0, 1] or a whole number of GPUs, got {g:g}")


def trial_resources(
    cpus: int, gpus: int, workers: int | None, trials: int, gpus_per_trial: float | None = None
) -> tuple[int, dict[str, float]]:
    """Concurrent trials and the resources Ray reserves for each, on a cluster of ``cpus`` CPUs and ``gpus`` GPUs.

    Default: ``workers`` (or one per CPU) trials at once, the CPUs split evenly (at least one each) and
    the GPUs too (``gpus / workers``). With ``gpus_per_trial`` (e.g. 0.25), each trial asks for that
    share, so Ray packs ``1 / gpus_per_trial`` trials on one GPU; without ``workers``, the trials at
    once are as many as the GPUs hold at that share (at most one per CPU). ``UserError`` when the
    cluster has no GPU or less than one trial's share.
    """
    check_gpus_per_trial(gpus_per_trial)
    if gpus_per_trial is not None:
        if gpus_per_trial > gpus:
            raise UserError(f"--gpus-per-trial {gpus_per_trial:g}: the Ray cluster has {gpus} GPU(s)")
        workers = workers or min(cpus, int(gpus / gpus_per_trial + 1e-9))
    workers = max(1, min(workers or cpus, trials))
    per_trial: dict[str, float] = {"cpu": max(1, cpus // workers)}
    if gpus_per_trial is not None:
        per_trial["gpu"] = gpus_per_trial
    elif gpus:
        per_trial["gpu"] = gpus / workers
    return workers, per_trial


def run_on_ray(
    todo: list[tuple[str, Any]],
    out: Path,
    workers: int | None,
    address: str | None,
    wandb_mode: str,
    progress: bool,
    lock: SweepLock,
    gpus_per_trial: float | None = None,
) -> None:
    """Run ``todo`` (id, spec) as Tune trials; ``lock`` (the sweep directory's) records the local Ray temp dir."""
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import ray
    from ray import tune

    env_vars = {
        k: os.environ[k]
        for k in (
            "SDBENCH_PLUGINS",
            "SDBENCH_LEGACY_PATH",
            "PYTHONPATH",
            "SDBENCH_CACHE",
            "SDBENCH_SD21_PATH",
            "HF_HOME",
            "HF_HUB_CACHE",
            "HF_HUB_OFFLINE",
        )
        if k in os.environ
    }
    env_vars["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    temp = None
    if address:
        ray.init(address=address, runtime_env={"env_vars": env_vars}, log_to_driver=False, logging_level=logging.ERROR)
    else:
        temp = ray_temp_dir(out)
        cpus = os.cpu_count() or 1
        ray.init(
            num_cpus=cpus,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=temp,
            runtime_env={"env_vars": env_vars},
            logging_level=logging.ERROR,
        )
    lock.record(ray_temp=temp)
    try:
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        workers, per_trial = trial_resources(cpus, gpus, workers, len(todo), gpus_per_trial)
        base = {
            "threads": int(per_trial["cpu"]),
            "wandb": wandb_mode,
            "wandb_dir": str(out),
            "sweep_name": out.name,
        }
        param_space = {
            "trial": tune.grid_search(
                [{**base, "id": i, "dir": str(out / "trials" / i), "config": s.config_dict()} for i, s in todo]
            )
        }

        def trainable(config: dict[str, Any]) -> None:
            _ray_trial(config["trial"])

        bar = _ProgressCallback(len(todo)) if progress else None
        callbacks = [bar] if bar is not None else []
        tuner = tune.Tuner(
            tune.with_resources(trainable, per_trial),
            param_space=param_space,
            tune_config=tune.TuneConfig(
                max_concurrent_trials=workers, trial_dirname_creator=lambda t: t.trial_id, reuse_actors=True
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=str(out / "ray"),
                failure_config=tune.FailureConfig(max_failures=0),
                verbose=0,
                callbacks=callbacks,
            ),
        )
        grid = tuner.fit()
        for r in grid:  # a trial that died without writing its result (OOM kill, segfault)
            cfg = r.config["trial"] if r.config else None
            if cfg and r.error is not None and trial_status(Path(cfg["dir"])) == "missing":
                from sdbench.trial import new_result, spec_from_config

                error = f"{type(r.error).__name__}: {r.error}"
                write_result(Path(cfg["dir"]), new_result(spec_from_config(cfg["config"]), error=error, started=False))
        if bar is not None:
            bar.close()
    finally:
        ray.shutdown()
        lock.record(ray_temp=None)


class _ProgressCallback:
    """Tune callback drawing one rich progress bar of finished trials."""

    def __new__(cls, total: int):
        from ray.tune import Callback
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        class Bar(Callback):
            def __init__(self) -> None:
                self.progress = Progress(
                    TextColumn("[bold]trials"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TextColumn("{task.fields[last]}"),
                )
                self.task = self.progress.add_task("trials", total=total, last="")
                self.progress.start()

            def __getstate__(self) -> dict:  # Tune pickles its run config; a live bar stays behind
                return {}

            def __setstate__(self, state: dict) -> None:
                self.progress = Progress(disable=True)
                self.task = self.progress.add_task("trials", total=total, last="")

            def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
                name = Path(trial.config["trial"]["dir"]).name
                status = trial_status(Path(trial.config["trial"]["dir"]))
                self.progress.update(self.task, advance=1, last=f"{status}: {name}")

            def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
                self.progress.update(self.task, advance=1, last=f"error: {Path(trial.config['trial']['dir']).name}")

            def close(self) -> None:
                self.progress.stop()

        return Bar()
