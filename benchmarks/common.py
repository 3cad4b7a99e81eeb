"""Shared helpers: timing, result files with the machine they were measured on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any

import torch

from sdbench.hardware import hardware, versions
from sdbench.io import write_json, write_text

RESULTS = Path(__file__).resolve().parent / "results"


def label_arg(text: str) -> str:
    """``--label`` of a benchmark (a world version's run written beside the first): letters, digits and ``_``
    only, as it becomes part of file names; an argparse ``type``."""
    import argparse

    if text and not text.replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"a short name of letters, digits and _, got {text!r}")
    return text


def labelled(name: str, label: str) -> str:
    """``name`` with ``_label`` appended (unchanged without a label): ``controls`` → ``controls_v21``."""
    return f"{name}_{label}" if label else name


#: The README's order of the first six losses; every other registered loss follows alphabetically.
FIRST = ("sds", "csd", "nfsd", "ism", "vsd", "vdm")


def registered_losses() -> tuple[str, ...]:
    """Every registered loss except VDM's ablations (``sdbench.study.ABLATIONS``, a study of their own),
    in :data:`FIRST`'s order, then alphabetically: what the cost and 2D benchmarks measure."""
    from sdbench import registry
    from sdbench.study import ABLATIONS

    names = [n for n in registry.LOSSES.names() if n not in ABLATIONS or n in ("sds", "vdm")]
    return tuple([n for n in FIRST if n in names] + sorted(set(names) - set(FIRST)))


def run_times(fn, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Sorted wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)


def timed(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    times = run_times(fn, repeats, warmup)
    return times[len(times) // 2]


def compact_json(data: Any) -> str:
    """``data`` as indented JSON with each innermost list (numbers, strings) on one line."""
    text = json.dumps(data, indent=2, allow_nan=True)
    return re.sub(r"\[\n\s+([^\[\]{}]*?)\n\s*\]", lambda m: "[" + re.sub(r",\n\s+", ", ", m.group(1)) + "]", text) + "\n"


def save(
    name: str, results: dict[str, Any], device: str = "cpu", directory: Path = RESULTS, echo: bool = True, compact: bool = False
) -> Path:
    """Write ``{directory}/{name}.json``: ``results`` with when and on what they were measured; ``echo``
    prints them too; ``compact`` writes each list of numbers on one line (:func:`compact_json`)."""
    payload = {
        "benchmark": name,
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": dataclasses.asdict(hardware(torch.device(device))),
        "versions": versions(),
        "results": results,
    }
    path = Path(directory) / f"{name}.json"
    path = write_text(path, compact_json(payload)) if compact else write_json(path, payload)
    if echo:
        print(json.dumps(results, indent=2))
    print(f"wrote {path}")
    return path
