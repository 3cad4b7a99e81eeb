"""Ray sweep throughput: 4 toy trials with 2 workers vs 1 worker, and Ray's per-trial overhead.

Three runs of the same 4 trials (SDS, 3D Gaussians, 200 steps):

* 1 worker, 1 torch thread per trial: one trial at a time on one core;
* 1 worker, 2 threads (what ``--workers 1`` gives on 2 cores): one trial at a time on both cores;
* 2 workers, 1 thread each (the default on 2 cores): two trials at a time.

Throughput is measured over the trials' own span (first trial start → last trial end, from their
``result.json``); the sweep's fixed start-up (Ray, the first worker's imports) and report are given
separately, with the end-to-end wall time. The target, ≥ 1.7×, is Ray's trial-level scaling: 2 workers
vs 1 worker at the same threads per trial. Per-trial overhead: the 1-worker, 2-thread span per trial
minus the same trial run directly in this process (2 threads). Writes ``benchmarks/results/sweep.json``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import save

PROMPTS = ("a red cube", "a blue sphere", "a yellow cone", "a green torus")


def main(steps: int = 200) -> dict:
    from sdbench import trial
    from sdbench.budget import Budget
    from sdbench.results import load_results
    from sdbench.sweep import SweepConfig, run_sweep

    results: dict = {"trials": len(PROMPTS), "steps": steps, "cpus": os.cpu_count(), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, workers, overrides in (
            ("1_worker_1_thread", 1, ("trial.threads=1",)),
            ("1_worker_2_threads", 1, ()),
            ("2_workers_1_thread", 2, ()),
        ):
            cfg = SweepConfig(
                prompts=PROMPTS,
                losses=("sds",),
                representations=("gaussians",),
                budget=Budget("steps", steps),
                overrides=overrides,
            )
            start = time.perf_counter()
            summary = run_sweep(cfg, Path(tmp) / name, workers=workers, wandb_mode="disabled", progress=False, fid=False)
            wall = time.perf_counter() - start
            assert summary.completed == len(PROMPTS)
            costs = [r.cost for _, r in load_results(sorted((Path(tmp) / name / "trials").iterdir()))]
            span = max(c.finished_at for c in costs) - min(c.started_at for c in costs)
            results["runs"][name] = {
                "wall_seconds": round(wall, 1),
                "trial_span_seconds": round(span, 1),
                "fixed_seconds": round(wall - span, 1),
            }
        runs = results["runs"]
        results["throughput_speedup_2_workers_vs_1_worker_same_threads"] = round(
            runs["1_worker_1_thread"]["trial_span_seconds"] / runs["2_workers_1_thread"]["trial_span_seconds"], 2
        )
        results["throughput_speedup_2_workers_vs_1_worker_2_threads"] = round(
            runs["1_worker_2_threads"]["trial_span_seconds"] / runs["2_workers_1_thread"]["trial_span_seconds"], 2
        )
        results["end_to_end_speedup_2_workers_vs_1_worker_2_threads"] = round(
            runs["1_worker_2_threads"]["wall_seconds"] / runs["2_workers_1_thread"]["wall_seconds"], 2
        )
        # the same trial run directly in this process (prior load, optimisation, evaluation, files)
        threads = torch.get_num_threads()
        start = time.perf_counter()
        spec = trial.resolve(
            trial.TrialConfig(prompt=PROMPTS[0], loss="sds", representation="gaussians", budget=Budget("steps", steps), threads=2)
        )
        trial.run_trial(spec, Path(tmp) / "direct", progress=False)
        direct = time.perf_counter() - start
        torch.set_num_threads(threads)
    results["direct_trial_seconds_2_threads"] = round(direct, 1)
    results["ray_overhead_per_trial_seconds"] = round(runs["1_worker_2_threads"]["trial_span_seconds"] / len(PROMPTS) - direct, 1)
    results["target_throughput_speedup>=1.7"] = results["throughput_speedup_2_workers_vs_1_worker_same_threads"] >= 1.7
    save("sweep", results)
    return results


if __name__ == "__main__":
    main()
