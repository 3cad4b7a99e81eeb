"""``run_trial``: one trial from spec to directory, and how its failures are recorded."""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sdbench.errors import TrialFailed, UserError
from sdbench.hardware import PeakMemory, hardware, versions
from sdbench.io import write_json, write_text
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


def run_trial(
    spec: TrialSpec,
    out_dir: Path,
    progress: bool = True,
    prior: Any | None = None,
    on_step: Callable[[TrialState], None] | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Run one trial and write its directory; returns the ``result.json`` content.

    A resumable ``checkpoint.pt`` of the same config in ``out_dir`` (from ``checkpoint_every``) is
    continued bit-identically; at the end ``checkpoint.pt`` holds the final representation and loss
    state (LoRA, operator) without optimiser states.

    Bad input raises :class:`UserError` before anything is written. A failure during the
    trial is recorded as ``status: failed`` with a one-line ``error`` and re-raised as
    :class:`TrialFailed`.
    """
    out_dir = check_writable(out_dir)
    started_at = time.time()
    t = spec.trial
    result: dict[str, Any] = {
        "prompt": t.prompt,
        "loss": t.loss,
        "representation": t.representation,
        "prior": t.prior,
        "seed": t.seed,
        "budget": {"kind": t.budget.kind, "value": t.budget.value},
        "status": "failed",
        "error": None,
        "metrics": {},
        "cost": {},
        "hardware": {},
        "versions": versions(),
        "config": spec.config_dict(),
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    state = build(spec, prior)  # UserError (bad prompt, missing weights) propagates: nothing written
    ckpt = out_dir / CHECKPOINT_FILE
    if resume and ckpt.is_file():
        data = torch.load(ckpt, map_location="cpu", weights_only=False)
        if data.get("resumable") and data["config"] == spec.config_dict():
            restore_checkpoint(state, data)
    result["hardware"] = hardware(state.prior.device)
    memory = PeakMemory(state.prior.device)
    memory.start()
    try:
        history = optimise(state, progress=progress, on_step=on_step, checkpoint_path=ckpt)
        peak = memory.peak_mb()
        result["cost"] = {
            "seconds": round(state.seconds, 3),
            "steps": state.step,
            "nfe": state.nfe,
            "seconds_per_step": round(state.seconds / max(state.step, 1), 5),
            "peak_memory_mb": round(peak, 1),
            "nfe_with_grad": state.nfe_with_grad,
        }
        write_text(out_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        eval_start = time.perf_counter()
        metrics, warnings = evaluate(state.spec, state.prior, state.representation, out_dir)
        export_files(state, out_dir)
        result["cost"]["eval_seconds"] = round(time.perf_counter() - eval_start, 3)
        result["cost"]["started_at"], result["cost"]["finished_at"] = round(started_at, 3), round(time.time(), 3)  # unix time
        result["metrics"] = metrics
        if warnings:
            result["warnings"] = warnings
        result["status"] = "completed"
    except Exception as e:  # noqa: BLE001 - recorded, then re-raised
        if isinstance(e, UserError):
            raise
        result["error"] = _one_line(e)
        result["cost"] = result["cost"] or {"seconds": round(state.seconds, 3), "steps": state.step, "nfe": state.nfe}
        write_json(out_dir / "result.json", result)
        raise TrialFailed(result["error"]) from e
    write_json(out_dir / "result.json", result)
    return result
