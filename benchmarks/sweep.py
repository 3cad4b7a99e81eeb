"""Ray sweep throughput: 4 toy trials with 2 workers vs 1 worker, and Ray's per-trial overhead.

Writes ``benchmarks/results/sweep.json``; the target is a speed-up ≥ 1.7× with 2 workers on 2 cores.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import save

PROMPTS = ("a red cube", "a blue sphere", "a yellow cone", "a green torus")


def main(steps: int = 200) -> dict:
    from sdbench import trial
    from sdbench.budget import Budget
    from sdbench.sweep import SweepConfig, run_sweep

    cfg = SweepConfig(prompts=PROMPTS, losses=("sds",), representations=("gaussians",), budget=Budget("steps", steps))
    results: dict = {"trials": len(PROMPTS), "steps": steps, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            start = time.perf_counter()
            summary = run_sweep(cfg, Path(tmp) / f"w{workers}", workers=workers, wandb_mode="disabled", progress=False, fid=False)
            results[f"wall_seconds_{workers}_worker"] = round(time.perf_counter() - start, 1)
            assert summary.completed == len(PROMPTS)
        results["speedup_2_vs_1"] = round(results["wall_seconds_1_worker"] / results["wall_seconds_2_worker"], 2)
        # the same trial run directly in this process (prior load, optimisation, evaluation, files)
        start = time.perf_counter()
        spec = trial.resolve(trial.TrialConfig(prompt=PROMPTS[0], loss="sds", representation="gaussians", budget=Budget("steps", steps)))
        trial.run_trial(spec, Path(tmp) / "direct", progress=False)
        direct = time.perf_counter() - start
    results["direct_trial_seconds"] = round(direct, 1)
    results["ray_overhead_per_trial_seconds"] = round(results["wall_seconds_1_worker"] / len(PROMPTS) - direct, 1)
    results["target_speedup>=1.7"] = results["speedup_2_vs_1"] >= 1.7
    save("sweep", results)
    return results


if __name__ == "__main__":
    main()
