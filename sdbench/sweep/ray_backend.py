"""The Ray Tune layer (it only adapts): a function trainable around ``run_trial``, resources, a progress bar."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sdbench.errors import UserError
from sdbench.results import RESULT_FILE, load_result, write_result
from sdbench.sweep import storage
from sdbench.sweep.directory import trial_status
from sdbench.sweep.driver import SweepLock, ray_temp_dir
from sdbench.sweep.wandb_log import log_wandb

DEFAULT_RETRIES = 3
"""Attempts Tune makes again for a trial whose attempt died (``FailureConfig(max_failures=...)``)."""


ATTEMPTS_FILE = "attempts.jsonl"
"""In the sweep directory: the driver's log of trial attempts, one JSON object a line (``time``,
``trial``, ``event``, and ``node``/``host``/``error`` where known). Events: ``start`` (Tune starts an
attempt), ``running`` (the attempt reports from its node), ``fetched`` (its files reached
``trials/<id>/``), ``retry`` (the attempt failed, e.g. its node was lost, and Tune runs it again),
``error`` (it failed ``--retries`` + 1 times) and ``recovered`` (fetched from the storage by a later run)."""


def log_attempt(out: Path, trial: str, event: str, **fields: Any) -> None:
    line = json.dumps({"time": round(time.time(), 3), "trial": trial, "event": event, **fields}) + "\n"
    fd = os.open(out / ATTEMPTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class StorageUnreachable(RuntimeError):
    """A trial started on a node that cannot read the sweep's storage (Tune retries it elsewhere)."""


def _ray_trial(config: dict[str, Any]) -> None:
    """The Tune trainable: one sdbench trial, run into a directory local to this node and reported to
    Tune as the trial's checkpoint (Tune copies it to the storage; the driver fetches it from there)."""
    import socket

    import ray
    import torch
    from ray import tune

    from sdbench import trial as T
    from sdbench.errors import TrialFailed

    node, host = ray.get_runtime_context().get_node_id(), socket.gethostname()
    reason = storage.probe(config["storage"], config["experiment"], config["token"])
    if reason is not None:
        where = storage.Storage(config["storage"], config["experiment"])
        raise StorageUnreachable(storage.unreachable_message(where, node, host, reason))
    torch.set_num_threads(config["threads"])
    spec = T.spec_from_config(config["config"])
    _clear_stale_stages()
    stage = Path(tempfile.mkdtemp(prefix=f"sdbench-trial-{os.getpid()}-"))
    try:
        trial_dir = stage / config["id"]
        from_step = 0
        restored = tune.get_checkpoint()  # Tune retries this trial: its last reported checkpoint
        if restored is not None:
            with restored.as_directory() as d:
                if (Path(d) / RESULT_FILE).is_file():  # it finished and was reported before its worker was lost
                    tune.report({"phase": "done", "node_id": node, "host": host})
                    return
                shutil.copytree(d, trial_dir)
                from_step = storage.take_progress(trial_dir)
        elif config.get("resume"):  # a partial checkpoint from the sweep's previous run (its driver died)
            from_step = storage.fetch_partial(config["storage"], config["experiment"], config["resume"], trial_dir)
        tune.report({"phase": "running", "node_id": node, "host": host, "from_step": from_step})
        on_step = _partial_reporter(spec, trial_dir, stage / "partial", node, host)
        error = None
        try:
            result = T.run_trial(spec, trial_dir, progress=False, on_step=on_step)
        except TrialFailed as e:  # recorded in the trial's result.json
            error = str(e)
            result = load_result(trial_dir)
        except UserError as e:  # bad input found on the worker (e.g. missing weights there): nothing written yet
            error = str(e)
            result = T.new_result(spec, error=error)
            write_result(trial_dir, result)
        if config.get("wandb", "disabled") != "disabled":
            home = stage / "wandb-home"
            log_wandb({**config, "wandb_dir": str(home)}, spec, trial_dir, result)
            for run in sorted((home / "wandb").glob("*run-*")):  # a snapshot: W&B's service may still append to its logs
                shutil.copytree(run, trial_dir / "wandb" / run.name, symlinks=False, ignore_dangling_symlinks=True)
        storage.seal(trial_dir)
        metrics = {f"metric/{k}": v for k, v in result.metrics.items()}
        tune.report(
            {"phase": "done", "node_id": node, "host": host, "status": result.status, "error": error or "", **metrics},
            checkpoint=tune.Checkpoint.from_directory(str(trial_dir)),
        )
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _clear_stale_stages() -> None:
    """Remove the node-local trial directories of worker processes that died mid-trial (node loss,
    a killed driver's workers): ``sdbench-trial-<pid>-*`` in the temp dir whose process is gone."""
    import psutil

    for d in Path(tempfile.gettempdir()).glob("sdbench-trial-*-*"):
        pid = d.name.split("-")[2]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def _partial_reporter(spec: Any, trial_dir: Path, partial: Path, node: str, host: str):
    """With ``trial.checkpoint_every``: an ``on_step`` that reports each resumable ``checkpoint.pt`` the
    loop writes to Tune as a partial checkpoint (a retried attempt continues from it); else None."""
    from ray import tune

    from sdbench.trial.checkpoint import CHECKPOINT_FILE

    every = spec.trial.checkpoint_every
    if not every:
        return None

    def on_step(state: Any) -> None:
        if state.step % every or not (trial_dir / CHECKPOINT_FILE).is_file():
            return
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        shutil.copy2(trial_dir / CHECKPOINT_FILE, partial / CHECKPOINT_FILE)
        (partial / storage.PROGRESS_FILE).write_text(json.dumps({"step": state.step}))
        metrics = {"phase": "checkpoint", "step": state.step, "node_id": node, "host": host}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(partial)))

    return on_step


def fit_one_node(per_trial: dict[str, float]) -> dict[str, float]:
    """A trial's resources capped at what the largest live node holds: a trial runs on one node, so a
    share of the whole cluster above that (1 worker on 2 nodes × 4 CPUs: 8 CPUs) could never start."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    node_cpus = int(max((r.get("CPU", 0) for r in nodes), default=1)) or 1
    node_gpus = int(max((r.get("GPU", 0) for r in nodes), default=0))
    fitted = {**per_trial, "cpu": max(1, min(int(per_trial["cpu"]), node_cpus))}
    if fitted.get("gpu", 0) > 1:
        fitted["gpu"] = min(int(fitted["gpu"]), node_gpus)
    return fitted


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


def busy_machine_note(threads: int, cpus: int, load: float | None) -> str | None:
    """A one-line warning when each trial will run ``threads`` > 1 torch threads on a machine that was
    already busy before the sweep (1-minute ``load`` ≥ 1): OpenMP's thread teams collapse under such
    contention (measured here: a 3DGS SDS step at 3.3 s with 2 threads per trial beside one busy
    process, 0.10 s with 1 thread per trial and 2 workers). None when there is nothing to say."""
    if threads <= 1 or load is None or load < 1.0:
        return None
    return (
        f"warning: this machine was already busy (load {load:.1f} on {cpus} CPUs) and each trial gets {threads} threads; "
        f"multi-threaded trials can slow down many-fold under contention: --workers {cpus} runs one thread per trial"
    )


def run_on_ray(
    todo: list[tuple[str, Any]],
    out: Path,
    workers: int | None,
    address: str | None,
    wandb_mode: str,
    progress: bool,
    lock: SweepLock,
    store: storage.Storage | None = None,
    retries: int = DEFAULT_RETRIES,
    resume: dict[str, str | None] | None = None,
    gpus_per_trial: float | None = None,
    grid_size: int | None = None,
) -> None:
    """Run ``todo`` (id, spec) as Tune trials and fetch each finished one into ``out/trials/<id>``.

    ``grid_size``: the whole grid's number of trials; a trial's share of the CPUs (its torch threads) is
    computed from it, not from how many trials are left, so a resumed sweep runs each trial with the
    same threads as an uninterrupted one (a different thread count changes float reductions, and so
    the metrics in their last digits).

    ``store``: where Tune keeps the trials (default ``out/ray``); on a cluster, or with a non-local
    storage, every node must read it back first (else ``UserError``, before anything runs).
    ``retries``: how many times Tune runs a trial again after an attempt died (its node lost, its
    process killed); a trial that fails by itself (NaN, an exception) is recorded and not retried.
    ``resume``: trial id → a partial checkpoint on the storage to continue from (``stash_partial``).
    ``lock`` (the sweep directory's) records the local Ray temp dir."""
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")  # a retry is one line (attempts.jsonl), not a traceback
    import ray
    from ray import tune

    store = store or storage.resolve(None, out)
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
    try:
        load_before = None if address else os.getloadavg()[0]
    except OSError:  # not available on this platform
        load_before = None
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
        token = storage.write_marker(store)
        if address or not store.is_local_path:  # several nodes, or a storage a worker may resolve elsewhere
            storage.check_nodes(store, token)
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        workers, per_trial = trial_resources(cpus, gpus, workers, grid_size or len(todo), gpus_per_trial)
        per_trial = fit_one_node(per_trial)
        note = busy_machine_note(int(per_trial["cpu"]), cpus, load_before)
        if note:
            print(note, file=sys.stderr)
        base = {
            "threads": int(per_trial["cpu"]),
            "wandb": wandb_mode,
            "sweep_name": out.name,
            "storage": store.uri,
            "experiment": store.experiment,
            "token": token,
        }
        resume = resume or {}
        points = [{**base, "id": i, "config": s.config_dict(), "resume": resume.get(i)} for i, s in todo]
        param_space = {"trial": tune.grid_search(points)}

        def trainable(config: dict[str, Any]) -> None:
            _ray_trial(config["trial"])

        client = ray.util.client.ray.is_connected()  # ray://: Tune's driver runs on the head, not here
        callbacks: list[Any] = [] if client else [_FetchCallback(out)]
        bar = _ProgressCallback(len(todo), out) if progress else None
        if bar is not None:
            callbacks.append(bar)
        tuner = tune.Tuner(
            tune.with_resources(trainable, per_trial),
            param_space=param_space,
            tune_config=tune.TuneConfig(
                max_concurrent_trials=workers, trial_dirname_creator=lambda t: t.config["trial"]["id"], reuse_actors=True
            ),
            run_config=tune.RunConfig(
                name=store.experiment,
                storage_path=store.uri,
                failure_config=tune.FailureConfig(max_failures=retries),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),  # the last partial one, then the trial's files
                verbose=0,
                callbacks=callbacks,
            ),
        )
        grid = tuner.fit()
        for r in grid:
            cfg = r.config["trial"] if r.config else None
            if not cfg:
                continue
            trial_dir = out / "trials" / cfg["id"]
            if r.checkpoint is not None and (client or trial_status(trial_dir) == "missing"):
                try:  # fetched here when no callback did (ray://, or a fetch that failed)
                    storage.fetch(r.checkpoint.filesystem, r.checkpoint.path, trial_dir, out / "wandb")
                except (RuntimeError, OSError):
                    pass
            if r.error is not None and trial_status(trial_dir) == "missing":  # died without a result (OOM, lost nodes)
                _record_failure(trial_dir, cfg["config"], f"{type(r.error).__name__}: {_first_line(r.error)}")
        if bar is not None:
            bar.close()
    finally:
        ray.shutdown()
        lock.record(ray_temp=None)


def _record_failure(trial_dir: Path, config: dict[str, Any], error: str) -> None:
    """A ``failed`` result for a trial that has no result of its own (it never ran to the end here)."""
    from sdbench.trial import new_result, spec_from_config

    write_result(trial_dir, new_result(spec_from_config(config), error=error, started=False))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else ""


def _trial_error(trial: Any) -> str:
    """The last line of a Tune trial's latest error (``ray.exceptions.ActorUnavailableError: ...``), at most
    300 characters: Tune appends each attempt's error to the trial's ``error.txt`` on the driver."""
    text = ""
    try:
        if trial.error_file and Path(trial.error_file).is_file():
            text = Path(trial.error_file).read_text(errors="replace").rsplit("Failure # ", 1)[-1]
            text = text.split("\n", 1)[1] if "\n" in text else ""
    except Exception:  # noqa: BLE001 - a log line must not stop the sweep
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "the attempt failed"


class _FetchCallback:
    """Tune callback on the driver: fetches each finished trial into ``OUT/trials/<id>`` and logs attempts."""

    def __new__(cls, out: Path):
        from ray.tune import Callback

        class Fetch(Callback):
            def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
                log_attempt(out, trial.config["trial"]["id"], "start")

            def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
                trial_id, phase = trial.config["trial"]["id"], result.get("phase")
                if phase == "running":
                    where = {"node": result["node_id"], "host": result["host"]}
                    log_attempt(out, trial_id, "running", **where, from_step=result.get("from_step", 0))
                elif phase == "checkpoint":
                    log_attempt(out, trial_id, "checkpoint", node=result["node_id"], host=result["host"], step=result["step"])

            def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
                trial_id = trial.config["trial"]["id"]
                result = trial.last_result or {}
                where = {"node": result.get("node_id"), "host": result.get("host")}
                checkpoint = trial.checkpoint
                try:
                    if checkpoint is None:
                        raise RuntimeError("the trial reported none")
                    storage.fetch(checkpoint.filesystem, checkpoint.path, out / "trials" / trial_id, out / "wandb")
                except (RuntimeError, OSError) as e:  # recorded as failed: the next run runs it again
                    error = f"its files did not reach the sweep directory: {e}"
                    log_attempt(out, trial_id, "error", error=error, **where)
                    _record_failure(out / "trials" / trial_id, trial.config["trial"]["config"], error)
                    return
                log_attempt(out, trial_id, "fetched", **where)

            def on_trial_recover(self, iteration, trials, trial, **info):  # noqa: ANN001
                error = _trial_error(trial)
                log_attempt(out, trial.config["trial"]["id"], "retry", error=error)
                print(f"retrying {trial.config['trial']['id']} (attempt {trial.num_failures + 1}): {error}", file=sys.stderr)

            def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
                log_attempt(out, trial.config["trial"]["id"], "error", error=_trial_error(trial))

        return Fetch()


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def progress_line(done: int, total: int, elapsed: float, last: str) -> str:
    """One line of a sweep's progress where no terminal shows the bar (a log file, CI): finished trials of this
    run, elapsed time, and the time left at this run's mean pace so far."""
    left = elapsed / done * (total - done) if done else float("nan")
    eta = f", ~{_hms(left)} left" if done and done < total else ""
    return f"trials {done}/{total} ({_hms(elapsed)} elapsed{eta}) {last}"


class _ProgressCallback:
    """Tune callback showing finished trials: a rich progress bar on a terminal, else one line per finished trial
    (:func:`progress_line`, to stderr, flushed) so a sweep run in the background with its output in a log file
    shows its progress there."""

    def __new__(cls, total: int, out: Path, terminal: bool | None = None, stream: Any = None):
        from ray.tune import Callback
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if not (Console().is_terminal if terminal is None else terminal):

            class Lines(Callback):
                def __init__(self) -> None:
                    self.done, self.start = 0, time.monotonic()

                def _line(self, last: str) -> None:
                    self.done += 1
                    line = progress_line(self.done, total, time.monotonic() - self.start, last)
                    print(line, file=stream or sys.stderr, flush=True)

                def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
                    name = trial.config["trial"]["id"]
                    self._line(f"{trial_status(out / 'trials' / name)}: {name}")

                def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
                    self._line(f"error: {trial.config['trial']['id']}")

                def close(self) -> None:
                    pass

            return Lines()

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
                name = trial.config["trial"]["id"]
                status = trial_status(out / "trials" / name)
                self.progress.update(self.task, advance=1, last=f"{status}: {name}")

            def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
                self.progress.update(self.task, advance=1, last=f"error: {trial.config['trial']['id']}")

            def close(self) -> None:
                self.progress.stop()

        return Bar()
