"""Weights & Biases logging of finished trials (offline by default)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from sdbench.results import TrialResult


def log_wandb(config: dict[str, Any], spec, trial_dir: Path, result: TrialResult) -> None:
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
    cost = {f"cost/{k}": v for k, v in dataclasses.asdict(result.cost).items() if v is not None}
    run.summary.update({"status": result.status, **result.metrics, **cost})
    if (trial_dir / "views.png").is_file():
        run.log({"views": wandb.Image(str(trial_dir / "views.png"))})
    run.finish()
