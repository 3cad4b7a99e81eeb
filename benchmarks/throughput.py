"""Sweep throughput on this machine: trial-steps per second of a fixed mixed grid, the old path and the new.

The grid: every registered loss × image / 3DGS / NeRF × 2 prompts × 2 seeds at 200 steps, the toy
prior, run by ``run_sweep`` as ``sdbench sweep`` runs it (local Ray, one worker per CPU, W&B and FID
off). It runs twice in one process, back to back: first with ``SDBENCH_LEGACY_PATH=1`` (the trial path
before the throughput work: no in-process caches of evaluation truths, the per-parameter NaN/inf scan,
the autograd CPU splat renderer), then with today's default. Throughput = trial-steps / wall seconds
of the whole sweep (Ray start-up, evaluation, files and report included); ``trial_span`` gives the same over the trials' own span.

``--quick``: 3 losses (SDS, VDM, VSD) × 3 representations × 1 prompt × 2 seeds at 40 steps, a smoke
run whose ratio over-weights the per-trial costs (evaluation) against the steps.

    python -m benchmarks.throughput [--quick]

Writes ``benchmarks/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import save

PROMPTS = ("a red cube", "a blue sphere")


def grid(quick: bool):
    from sdbench import registry
    from sdbench.budget import Budget
    from sdbench.sweep import SweepConfig

    losses = ("sds", "vdm", "vsd") if quick else tuple(registry.LOSSES.names())
    return SweepConfig(
        prompts=PROMPTS[:1] if quick else PROMPTS,
        losses=losses,
        representations=("image", "gaussians", "nerf"),
        seeds=(0, 1),
        budget=Budget("steps", 40 if quick else 200),
    )


def measure(cfg, out: Path, legacy: bool, workers: int | None) -> dict:
    from sdbench.results import load_results
    from sdbench.sweep import run_sweep

    if legacy:
        os.environ["SDBENCH_LEGACY_PATH"] = "1"  # Ray's local workers inherit the driver's environment
    else:
        os.environ.pop("SDBENCH_LEGACY_PATH", None)
    try:
        start = time.perf_counter()
        summary = run_sweep(cfg, out, workers=workers, wandb_mode="disabled", progress=False, fid=False)
        wall = time.perf_counter() - start
    finally:
        os.environ.pop("SDBENCH_LEGACY_PATH", None)
    results = [r for _, r in load_results(sorted((out / "trials").iterdir()))]
    steps = sum(r.cost.steps for r in results if r.cost.steps)
    span = max(r.cost.finished_at or 0 for r in results) - min(r.cost.started_at or 1e18 for r in results)
    return {
        "trials": summary.total,
        "completed": summary.completed,
        "failed": len(summary.failed),
        "trial_steps": steps,
        "wall_seconds": round(wall, 1),
        "trial_span_seconds": round(span, 1),
        "trial_steps_per_second": round(steps / wall, 3),
        "trial_steps_per_second_over_span": round(steps / span, 3),
        "evaluation_seconds_mean": round(sum(r.cost.eval_seconds or 0 for r in results) / len(results), 3),
        "optimisation_seconds_per_step_mean": round(sum(r.cost.seconds for r in results) / max(steps, 1), 5),
    }


def main(quick: bool = False, workers: int | None = None) -> dict:
    cfg = grid(quick)
    out: dict = {
        "quick": quick,
        "cpus": os.cpu_count(),
        "workers": workers or os.cpu_count(),
        "grid": {
            "losses": list(cfg.losses),
            "representations": list(cfg.representations),
            "prompts": list(cfg.prompts),
            "seeds": list(cfg.seeds),
            "steps": int(cfg.budget.value),
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        out["old_path"] = measure(cfg, Path(tmp) / "old", legacy=True, workers=workers)
        print("old path:", out["old_path"])
        out["new_path"] = measure(cfg, Path(tmp) / "new", legacy=False, workers=workers)
        print("new path:", out["new_path"])
    old, new = out["old_path"], out["new_path"]
    out["speedup"] = round(new["trial_steps_per_second"] / old["trial_steps_per_second"], 3)
    out["speedup_over_span"] = round(new["trial_steps_per_second_over_span"] / old["trial_steps_per_second_over_span"], 3)
    out["goal_speedup>=2.5"] = out["speedup"] >= 2.5
    save("throughput", out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke-scale grid (18 trials, 40 steps)")
    parser.add_argument("--workers", type=int, default=None, help="concurrent trials (default: one per CPU)")
    args = parser.parse_args()
    main(args.quick, args.workers)
