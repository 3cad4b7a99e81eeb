"""The sweep directory on disk: ``sweep.json`` (which grid it holds) and each trial's status."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from sdbench import __version__
from sdbench import config as cfgutil
from sdbench.errors import UserError
from sdbench.io import write_json
from sdbench.results import load_result
from sdbench.sweep.definition import SweepConfig

SWEEP_FILE = "sweep.json"


def trial_status(trial_dir: Path) -> str:
    """'completed', 'failed', or 'missing' (never started, or interrupted before its result)."""
    try:
        return load_result(trial_dir).status
    except UserError:  # no result.json, or one cut short: the trial runs again
        return "missing"


def check_sweep_file(out: Path, cfg: SweepConfig | Sequence[SweepConfig]) -> None:
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
    write_json(path, {**record, "sdbench": __version__})
