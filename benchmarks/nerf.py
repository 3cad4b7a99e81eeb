"""NeRF on the CPU: render forward+backward time at the toy resolution, and a full 500-step SDS trial.

Writes ``benchmarks/results/nerf.json``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from benchmarks.common import save, timed


def main() -> dict:
    from sdbench import trial
    from sdbench.budget import Budget
    from sdbench.cameras import Cameras
    from sdbench.representations.nerf import NeRF

    torch.manual_seed(0)
    rep = NeRF(NeRF.Config(), 32)
    cams = Cameras.orbit(1, elevation=15.0)
    rep.post_step(0, {}, rep.render(cams, 32, 32))  # an occupancy grid, as after the first step

    def step():
        rep.render(cams, 32, 32).rgb.mean().backward()

    results: dict = {"render_forward_backward_seconds_32px_1_view": round(timed(step), 4)}
    prompt = "a yellow sphere"
    with tempfile.TemporaryDirectory() as tmp:
        spec = trial.resolve(trial.TrialConfig(prompt=prompt, loss="sds", representation="nerf", budget=Budget("steps", 500)))
        result = trial.run_trial(spec, Path(tmp) / "t", progress=False)
    results["sds_trial"] = {
        "prompt": prompt,
        "steps": result.cost.steps,
        "optimisation_seconds": result.cost.seconds,
        "evaluation_seconds": result.cost.eval_seconds,
        "seconds_per_step": result.cost.seconds_per_step,
        "metrics": result.metrics,
    }
    save("nerf", results)
    return results


if __name__ == "__main__":
    main()
