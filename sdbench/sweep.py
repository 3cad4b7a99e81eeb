"""``sdbench sweep``: the grid prompt × loss × representation × prior × seed on Ray Tune.

Every grid point is one Tune trial running :func:`sdbench.trial.run_trial` (the loop ``sdbench run``
uses) into ``OUT/trials/<id>/``. Trial ids are derived from the resolved config, so running the same
command on the same ``--out`` again keeps completed trials and runs the missing, failed and
interrupted ones. After a ``kill -9`` of the driver, the next run first ends what the dead driver left
behind (its local Ray processes), so every trial completes exactly once. A trial that raises or goes
NaN is recorded ``failed`` with a one-line reason and the others go on. At the end ``results.csv``
and ``report.html`` are rebuilt from the trial directories (never appended to), so they cannot hold
duplicates or half rows.

Ray layer (it only adapts): a function trainable turns Tune's config into a :class:`TrialSpec`,
runs the trial with ``threads`` CPU threads (and a GPU fraction when there are GPUs), logs it to W&B
(offline by default), and reports its status and metrics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdbench import config as cfgutil
from sdbench.budget import Budget
from sdbench.errors import UserError
from sdbench.io import write_json

SWEEP_FILE = "sweep.json"
DRIVER_FILE = ".driver.json"


def read_prompts(path: Path) -> list[str]:
    """Prompts file: UTF-8, one prompt per line; blank lines and ``#`` comments are ignored."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompts file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"prompts file {path} is not UTF-8 text") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not prompts:
        raise UserError(f"prompts file {path} holds no prompts (one per line; '#' starts a comment)")
    return list(dict.fromkeys(prompts))


@dataclass(frozen=True)
class SweepConfig:
    """The grid and what every trial shares (written to ``sweep.json``)."""

    prompts: tuple[str, ...]
    losses: tuple[str, ...]
    representations: tuple[str, ...] = ("gaussians",)
    priors: tuple[str, ...] = ("toy",)
    seeds: tuple[int, ...] = (0,)
    budget: Budget = Budget("steps", 500)
    overrides: tuple[str, ...] = ()


DEFINITION_KEYS = {
    "prompts": "a prompts file (relative to the definition) or a list of prompts",
    "losses": "loss names",
    "representations": "representation names",
    "priors": "prior names or checkpoint folders",
    "seeds": "list of integer seeds",
    "budget": "steps:N, seconds:S or nfe:K",
    "set": "list of KEY=VALUE overrides",
}


def load_definition(path: Path) -> list[SweepConfig]:
    """A sweep definition file (TOML): the grid keys at the top level, optionally ``[[group]]`` tables.

    Top-level keys (``prompts``, ``losses``, ``representations``, ``priors``, ``seeds``, ``budget``,
    ``set``) are the defaults of every group; a group replaces any of them, except ``set``, which it
    extends. Without groups the file is one grid. ``prompts`` names a prompts file relative to the
    definition, or lists the prompts inline. Returns one :class:`SweepConfig` per group.
    """
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"sweep definition {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"sweep definition {path} is not valid TOML: {str(e).splitlines()[0]}") from None
    has_groups = "group" in data
    groups = data.pop("group", [{}])
    for key in ("name", "description"):
        data.pop(key, None)
    if not isinstance(groups, list) or not groups:
        raise UserError(f"{path}: 'group' must be a non-empty array of tables ([[group]])")
    out = []
    for n, group in enumerate(groups, 1):
        group = dict(group)
        group.pop("name", None)
        where = f"{path} group {n}" if has_groups else str(path)
        for key in (*data, *group):
            if key not in DEFINITION_KEYS:
                raise UserError(f"{where}: unknown key {key!r}; known keys: {', '.join(DEFINITION_KEYS)}")
        listed = [v for d in (data, group) for v in ([d["set"]] if isinstance(d.get("set"), str) else d.get("set", []))]
        merged = {**data, **group, "set": listed}
        out.append(_group_config(merged, path, where))
    return out


def _group_config(d: dict[str, Any], path: Path, where: str) -> SweepConfig:
    def strings(key: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = d.get(key, default)
        if value is None:
            raise UserError(f"{where}: '{key}' is missing ({DEFINITION_KEYS[key]})")
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{where}: '{key}' must be a list of strings ({DEFINITION_KEYS[key]})")
        return tuple(value)

    prompts = d.get("prompts")
    if isinstance(prompts, str):  # a prompts file next to the definition
        prompts = read_prompts(path.parent / prompts)
    else:
        prompts = strings("prompts")
        if not [p for p in prompts if p.strip()]:
            raise UserError(f"{where}: 'prompts' is empty")
    seeds = d.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise UserError(f"{where}: 'seeds' must be a non-empty list of integers")
    budget = d.get("budget", "steps:500")
    if not isinstance(budget, str):
        raise UserError(f'{where}: \'budget\' must be a string such as "steps:500" or "nfe:1000"')
    return SweepConfig(
        prompts=tuple(dict.fromkeys(p.strip() for p in prompts if p.strip())),
        losses=strings("losses"),
        representations=strings("representations", ("gaussians",)),
        priors=strings("priors", ("toy",)),
        seeds=tuple(seeds),
        budget=Budget.parse(budget),
        overrides=strings("set", ()),
    )


def restrict(groups: list[SweepConfig], losses=(), representations=(), priors=()) -> list[SweepConfig]:
    """Keep only the named losses / representations / priors of each group (empty: keep all);
    groups left empty are dropped. ``UserError`` when nothing is left."""
    from sdbench import registry

    def keep(names: tuple[str, ...], only, reg) -> tuple[str, ...]:
        if not only:
            return names
        wanted = set(_expand(tuple(only), reg)) if reg is not None else set(only)
        expanded = _expand(names, reg) if reg is not None else list(names)
        return tuple(n for n in expanded if n in wanted)

    out = []
    for g in groups:
        g = dataclasses.replace(
            g,
            losses=keep(g.losses, losses, registry.LOSSES),
            representations=keep(g.representations, representations, registry.REPRESENTATIONS),
            priors=keep(g.priors, priors, None),
        )
        if g.losses and g.representations and g.priors:
            out.append(g)
    if not out:
        raise UserError("no grid point of the sweep definition matches the given --loss/--rep/--prior")
    return out


def _slug(text: str, n: int = 28) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:n] or "prompt"


def trial_id(spec) -> str:
    """A readable, stable id: prompt, loss, representation, seed and a hash of the full config."""
    digest = hashlib.sha1(json.dumps(spec.config_dict(), sort_keys=True).encode()).hexdigest()[:8]
    t = spec.trial
    return f"{_slug(t.prompt)}-{t.loss}-{t.representation}-s{t.seed}-{digest}"


def plan(cfg: SweepConfig | Sequence[SweepConfig]) -> list[tuple[str, Any]]:
    """Every grid point (of every group) as (id, TrialSpec), validated before anything runs."""
    from sdbench import registry
    from sdbench.trial import TrialConfig, resolve

    out = []
    for group in [cfg] if isinstance(cfg, SweepConfig) else cfg:
        losses = _expand(group.losses, registry.LOSSES)
        reps = _expand(group.representations, registry.REPRESENTATIONS)
        for prior in group.priors:
            for rep in reps:
                for loss in losses:
                    for prompt in group.prompts:
                        for seed in group.seeds:
                            t = TrialConfig(
                                prompt=prompt, loss=loss, representation=rep, prior=prior, seed=seed, budget=group.budget
                            )
                            spec = resolve(t, group.overrides)
                            out.append((trial_id(spec), spec))
    ids = [i for i, _ in out]
    if len(set(ids)) != len(ids):
        raise UserError(
            "the grid has duplicate points (a loss or representation named twice, an alias and its name, "
            "or two groups overlapping)"
        )
    return out


def _expand(names: tuple[str, ...], reg) -> list[str]:
    """Comma lists and ``all`` → registered names (canonical), in the given order."""
    result: list[str] = []
    for item in names:
        for name in (n.strip() for n in item.split(",")):
            if not name:
                continue
            for n in reg.names() if name == "all" else [name]:
                canonical = reg.canonical(n)
                if canonical not in result:
                    result.append(canonical)
    if not result:
        raise UserError(f"no {reg.singular} given")
    return result


# ------------------------------------------------------------------ state on disk
def trial_status(trial_dir: Path) -> str:
    """'completed', 'failed', or 'missing' (never started, or interrupted before its result)."""
    f = trial_dir / "result.json"
    if not f.is_file():
        return "missing"
    try:
        return json.loads(f.read_text()).get("status", "missing")
    except json.JSONDecodeError:
        return "missing"


def _check_sweep_file(out: Path, cfg: SweepConfig | Sequence[SweepConfig]) -> None:
    path = out / SWEEP_FILE
    if isinstance(cfg, SweepConfig):
        record = {"sweep": cfgutil.to_dict(cfg)}
    else:
        record = {"sweep": {"groups": [cfgutil.to_dict(g) for g in cfg]}}
    if path.is_file():
        old = json.loads(path.read_text()).get("sweep")
        if old != record["sweep"]:
            raise UserError(
                f"{out} already holds a different sweep (see its {SWEEP_FILE}); use another --out, "
                "or the same command to resume it"
            )
    write_json(path, {**record, "sdbench": __import__("sdbench").__version__})


def _end_stale_driver(out: Path) -> None:
    """End the local Ray processes a killed driver of this sweep left behind."""
    import psutil

    path = out / DRIVER_FILE
    if not path.is_file():
        return
    info = json.loads(path.read_text())
    if psutil.pid_exists(info.get("pid", -1)):
        try:
            if "sdbench" in " ".join(psutil.Process(info["pid"]).cmdline()) and info["pid"] != os.getpid():
                raise UserError(f"another sdbench sweep (pid {info['pid']}) is running on {out}; wait for it or stop it first")
        except psutil.Error:
            pass
    temp = info.get("ray_temp")
    if not temp:
        return
    victims = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.info["pid"] != os.getpid() and temp in " ".join(p.info["cmdline"] or []):
                victims.append(p)
        except psutil.Error:
            continue
    for p in victims:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=10)


def _ray_temp_dir(out: Path) -> str:
    """A short, per-sweep Ray temp dir (Unix socket paths must stay under ~100 characters)."""
    return f"/tmp/sdbench-ray-{hashlib.sha1(str(out).encode()).hexdigest()[:10]}"


# -------------------------------------------------------------------- Ray trainable
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
    except (TrialFailed, UserError) as e:
        error = str(e)
        result = json.loads((trial_dir / "result.json").read_text()) if (trial_dir / "result.json").is_file() else None
        if result is None:  # bad input found on the worker (e.g. missing weights there)
            result = _failed_result(spec, error)
            write_json(trial_dir / "result.json", result)
    if config.get("wandb", "disabled") != "disabled":
        _log_wandb(config, spec, trial_dir, result)
    tune.report({"status": result["status"], "error": error or "", **{f"metric/{k}": v for k, v in result["metrics"].items()}})


def _failed_result(spec, error: str) -> dict[str, Any]:
    t = spec.trial
    return {
        "prompt": t.prompt,
        "loss": t.loss,
        "representation": t.representation,
        "prior": t.prior,
        "seed": t.seed,
        "budget": {"kind": t.budget.kind, "value": t.budget.value},
        "status": "failed",
        "error": error.splitlines()[0] if error else "failed",
        "metrics": {},
        "cost": {},
        "hardware": {},
        "versions": {},
        "config": spec.config_dict(),
    }


def _log_wandb(config: dict[str, Any], spec, trial_dir: Path, result: dict[str, Any]) -> None:
    """One W&B run per trial, grouped by sweep: config, per-step history, metrics, cost, views."""
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    run = wandb.init(
        project=config.get("wandb_project", "sdbench"),
        group=config["sweep_name"],
        name=trial_dir.name,
        dir=config["wandb_dir"],
        mode=config["wandb"],
        config=spec.config_dict(),
        tags=[spec.trial.loss, spec.trial.representation, spec.trial.prior],
        reinit="finish_previous",
    )
    history = trial_dir / "history.jsonl"
    if history.is_file():
        for line in history.read_text().splitlines():
            entry = json.loads(line)
            run.log({k: v for k, v in entry.items() if k != "step"}, step=entry["step"])
    run.summary.update({"status": result["status"], **result["metrics"], **{f"cost/{k}": v for k, v in result["cost"].items()}})
    if (trial_dir / "views.png").is_file():
        run.log({"views": wandb.Image(str(trial_dir / "views.png"))})
    run.finish()


# ------------------------------------------------------------------------ the sweep
@dataclass
class SweepSummary:
    out: Path
    total: int
    completed: int
    failed: list[tuple[str, str]]
    skipped: int
    seconds: float
    report: Path | None


def run_sweep(
    cfg: SweepConfig | Sequence[SweepConfig],
    out: Path,
    workers: int | None = None,
    address: str | None = None,
    wandb_mode: str = "offline",
    progress: bool = True,
    fid: bool = True,
) -> SweepSummary:
    """Run (or resume) a sweep into ``out`` and rebuild its report."""
    from sdbench.trial import check_writable

    if wandb_mode not in ("offline", "online", "disabled"):
        raise UserError(f"--wandb must be offline, online or disabled, got {wandb_mode!r}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    grid = plan(cfg)
    if address is None:  # a local Ray: a prior that cannot be built here (missing weights) is bad input
        checked = set()
        for _, spec in grid:
            key = (spec.prior_cls, json.dumps(cfgutil.to_dict(spec.prior), sort_keys=True))
            if key not in checked:
                checked.add(key)
                spec.prior_cls.check_available(spec.prior)
    out = check_writable(out)
    _check_sweep_file(out, cfg)
    _end_stale_driver(out)
    todo = [(i, s) for i, s in grid if trial_status(out / "trials" / i) != "completed"]
    start = time.time()
    if todo:
        _run_on_ray(todo, out, workers, address, wandb_mode, progress)
    from sdbench.report import build_report

    report = build_report(out, [i for i, _ in grid], fid=fid)
    statuses = {i: trial_status(out / "trials" / i) for i, _ in grid}
    failed = []
    for i, st in statuses.items():
        if st != "completed":
            err = ""
            f = out / "trials" / i / "result.json"
            if f.is_file():
                err = json.loads(f.read_text()).get("error") or ""
            failed.append((i, err or "no result (the trial was interrupted)"))
    return SweepSummary(
        out,
        len(grid),
        sum(s == "completed" for s in statuses.values()),
        failed,
        len(grid) - len(todo),
        time.time() - start,
        report,
    )


def _run_on_ray(
    todo: list[tuple[str, Any]], out: Path, workers: int | None, address: str | None, wandb_mode: str, progress: bool
) -> None:
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import ray
    from ray import tune

    env_vars = {
        k: os.environ[k]
        for k in (
            "SDBENCH_PLUGINS",
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
        temp = _ray_temp_dir(out)
        cpus = os.cpu_count() or 1
        ray.init(
            num_cpus=cpus,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=temp,
            runtime_env={"env_vars": env_vars},
            logging_level=logging.ERROR,
        )
    write_json(out / DRIVER_FILE, {"pid": os.getpid(), "ray_temp": temp, "started": time.time()})
    try:
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        workers = min(workers or cpus, len(todo))
        per_trial: dict[str, float] = {"cpu": max(1, cpus // workers)}
        if gpus:
            per_trial["gpu"] = gpus / workers
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
                from sdbench.trial import spec_from_config

                write_json(
                    Path(cfg["dir"]) / "result.json",
                    _failed_result(spec_from_config(cfg["config"]), f"{type(r.error).__name__}: {r.error}"),
                )
        if bar is not None:
            bar.close()
    finally:
        ray.shutdown()
        (out / DRIVER_FILE).unlink(missing_ok=True)


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
