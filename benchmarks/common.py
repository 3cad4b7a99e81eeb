"""Shared helpers: timing, result files with the machine they were measured on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import torch

from sdbench.hardware import hardware, versions
from sdbench.io import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def save(name: str, results: dict[str, Any], device: str = "cpu") -> Path:
    payload = {
        "benchmark": name,
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": dataclasses.asdict(hardware(torch.device(device))),
        "versions": versions(),
        "results": results,
    }
    path = write_json(RESULTS / f"{name}.json", payload)
    print(json.dumps(results, indent=2))
    print(f"wrote {path}")
    return path
