"""``run_trial``: one trial from spec to directory, and how its failures are recorded."""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from sdbench.errors import TrialFailed, UserError
from sdbench.hardware import PeakMemory, hardware, versions
from sdbench.io import write_text
from sdbench.results import Cost, TrialResult, write_result
from sdbench.trial.checkpoint import CHECKPOINT_FILE, restore_checkpoint
from sdbench.trial.export import export_files
from sdbench.trial.loop import optimise
from sdbench.trial.metrics import evaluate
from sdbench.trial.spec import TrialSpec
from sdbench.trial.state import TrialState, build


def check_writable(directory: Path) -> Path:
    """Create ``directory`` (and parents) and prove a file can be written there; ``UserError`` if not."""
    directory = Path(directory).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to output directory {directory}: {e.strerror or e}") from None
    return directory.resolve()


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def new_result(spec: TrialSpec, error: str | None = None, started: bool = True) -> TrialResult:
    """The result of ``spec`` before it has run: identity, config and versions, status ``failed``
    (``run_trial`` fills in the rest; the sweep records a trial that never ran with ``error``).
    ``started``: stamp ``started_at`` with the current time (False: unknown)."""
    t = spec.trial
    return TrialResult(
        prompt=t.prompt,
        loss=t.loss,
        representation=t.representation,
        prior=t.prior,
        seed=t.seed,
        budget=t.budget,
        status="failed",
        error=error.strip().splitlines()[0] if error and error.strip() else error,
        versions=versions(),
        config=spec.config_dict(),
        started_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds") if started else None,
    )


def run_trial(
    spec: TrialSpec,
    out_dir: Path,
    progress: bool = True,
    prior: Any | None = None,
    on_step: Callable[[TrialState], None] | None = None,
    resume: bool = True,
    defer_missing_metrics: bool = False,
) -> TrialResult:
    """Run one trial and write its directory; returns its result (what ``result.json`` holds).

    A resumable ``checkpoint.pt`` of the same config in ``out_dir`` (from ``checkpoint_every``) is
    continued bit-identically; at the end ``checkpoint.pt`` holds the final representation and loss
    state (LoRA, operator) without optimiser states.

    Bad input raises :class:`UserError` before anything is written. A failure during the
    trial is recorded as ``status: failed`` with a one-line ``error`` and re-raised as
    :class:`TrialFailed`.

    A metric named in the config whose weights are missing (a :class:`~sdbench.evaluation.base.Notice`)
    is a :class:`UserError` at the end, unless ``defer_missing_metrics``: then the trial completes
    without it and says so in its warnings, for ``sdbench eval`` to add it once the weights exist.
    """
    out_dir = check_writable(out_dir)
    started_at = time.time()
    result = new_result(spec)
    state = build(spec, prior)  # UserError (bad prompt, missing weights) propagates: nothing written
    ckpt = out_dir / CHECKPOINT_FILE
    if resume and ckpt.is_file():
        data = torch.load(ckpt, map_location="cpu", weights_only=False)
        if data.get("resumable") and data["config"] == spec.config_dict():
            restore_checkpoint(state, data)
    weights = state.prior.weights_id()
    result = replace(
        result,
        hardware=hardware(state.prior.device),
        versions={**result.versions, **({"prior_weights": weights} if weights else {})},
    )
    memory = PeakMemory(state.prior.device)
    memory.start()
    try:
        history = optimise(state, progress=progress, on_step=on_step, checkpoint_path=ckpt)
        cost = Cost(
            seconds=round(state.seconds, 3),
            steps=state.step,
            nfe=state.nfe,
            seconds_per_step=round(state.seconds / max(state.step, 1), 5),
            peak_memory_mb=round(memory.peak_mb(), 1),
            nfe_with_grad=state.nfe_with_grad,
            nonfinite_grad_steps=state.nonfinite_grad_steps,
        )
        result = replace(result, cost=cost)
        write_text(out_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        eval_start = time.perf_counter()
        metrics, warnings = evaluate(state.spec, state.prior, state.representation, out_dir, strict=not defer_missing_metrics)
        export_files(state, out_dir)
        cost = replace(
            cost,
            eval_seconds=round(time.perf_counter() - eval_start, 3),
            started_at=round(started_at, 3),
            finished_at=round(time.time(), 3),
        )
        result = replace(result, status="completed", metrics=metrics, warnings=tuple(warnings), cost=cost)
    except Exception as e:  # noqa: BLE001 - recorded, then re-raised
        if isinstance(e, UserError):
            raise
        if result.cost == Cost():
            cost = Cost(seconds=round(state.seconds, 3), steps=state.step, nfe=state.nfe)
            result = replace(result, cost=replace(cost, nonfinite_grad_steps=state.nonfinite_grad_steps))
            write_text(out_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in state.history))
        result = replace(result, error=_one_line(e))
        write_result(out_dir, result)
        raise TrialFailed(result.error) from e
    write_result(out_dir, result)
    return result
