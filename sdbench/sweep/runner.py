"""``run_sweep``: plan, check, run what is missing on Ray, rebuild the report."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sdbench import config as cfgutil
from sdbench.errors import UserError
from sdbench.results import load_result
from sdbench.sweep import storage as storage_mod
from sdbench.sweep.definition import SweepConfig
from sdbench.sweep.directory import check_sweep_file, trial_status
from sdbench.sweep.driver import acquire
from sdbench.sweep.plan import plan
from sdbench.sweep.ray_backend import DEFAULT_RETRIES, check_gpus_per_trial, log_attempt, run_on_ray


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
    gpus_per_trial: float | None = None,
    storage: str | None = None,
    retries: int = DEFAULT_RETRIES,
) -> SweepSummary:
    """Run (or resume) a sweep into ``out`` and rebuild its report.

    ``gpus_per_trial``: each trial's GPU share (0.25: Ray packs four trials per GPU); default, the
    cluster's GPUs split evenly over the concurrent trials (:func:`~sdbench.sweep.ray_backend.trial_resources`).
    ``storage``: where trials travel through from the nodes that run them (Ray Tune's ``storage_path``:
    a path every node mounts, or a URI such as ``s3://bucket/prefix``; default ``out/ray``), see
    :mod:`sdbench.sweep.storage`. ``retries``: how many times a trial whose attempt died (its node lost)
    is run again."""
    from sdbench.trial import check_writable

    if wandb_mode not in ("offline", "online", "disabled"):
        raise UserError(f"--wandb must be offline, online or disabled, got {wandb_mode!r}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    check_gpus_per_trial(gpus_per_trial)
    if retries < 0:
        raise UserError(f"--retries must be 0 or more, got {retries}")
    grid = plan(cfg)
    if address is None:  # a local Ray: a prior that cannot be built here (missing weights) is bad input
        checked = set()
        for _, spec in grid:
            key = (spec.prior_cls, json.dumps(cfgutil.to_dict(spec.prior), sort_keys=True))
            if key not in checked:
                checked.add(key)
                spec.prior_cls.check_available(spec.prior)
    out = check_writable(out)
    store = storage_mod.resolve(storage, out)
    lock = acquire(out)  # one driver per directory; a dead driver's leftovers are ended here
    try:
        check_sweep_file(out, cfg)
        storage_mod.tidy(out / "trials")
        todo, resume = [], {}
        for i, s in grid:
            if trial_status(out / "trials" / i) == "completed":
                continue
            if storage_mod.recover(store, i, out / "trials" / i, out / "wandb"):  # finished, never fetched
                log_attempt(out, i, "recovered")
                if trial_status(out / "trials" / i) == "completed":
                    storage_mod.discard(store, i, resume=True)
                    continue
            resume[i] = storage_mod.stash_partial(store, i)  # a partial checkpoint to continue from
            storage_mod.discard(store, i)
            todo.append((i, s))
        start = time.time()
        if todo:
            run_on_ray(todo, out, workers, address, wandb_mode, progress, lock, store, retries, resume, gpus_per_trial, len(grid))
            for i, _ in todo:
                if trial_status(out / "trials" / i) == "completed":
                    storage_mod.discard(store, i, resume=True)
        from sdbench.report import build_report

        report = build_report(out, [i for i, _ in grid], fid=fid)
    finally:
        lock.release()
    statuses = {i: trial_status(out / "trials" / i) for i, _ in grid}
    failed = []
    for i, st in statuses.items():
        if st != "completed":
            try:
                err = load_result(out / "trials" / i).error or ""
            except UserError:
                err = ""
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
