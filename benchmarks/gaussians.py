"""3DGS on the CPU: rasteriser forward+backward time at the toy resolution, and a full SDS trial.

Writes ``benchmarks/results/gaussians.json``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from benchmarks.common import save, timed


def render_time(n: int, views: int, size: int = 32) -> float:
    from sdbench.cameras import Cameras
    from sdbench.representations.gaussians import Gaussians

    torch.manual_seed(0)
    rep = Gaussians(Gaussians.Config(num_points=n, densify=False), size)
    cams = Cameras.orbit(views, elevation=15.0)

    def step():
        out = rep.render(cams, size, size)
        out.rgb.mean().backward()

    return timed(step, repeats=5, warmup=2)


def main() -> dict:
    from sdbench import trial
    from sdbench.budget import Budget

    results: dict = {"render_forward_backward_seconds": {}}
    for n in (5000, 20000):
        for views in (1, 4):
            results["render_forward_backward_seconds"][f"{n}_gaussians_{views}_views_32px"] = round(render_time(n, views), 4)
    prompt = "a red cube"
    with tempfile.TemporaryDirectory() as tmp:
        spec = trial.resolve(
            trial.TrialConfig(prompt=prompt, loss="sds", representation="gaussians", budget=Budget("steps", 500))
        )
        result = trial.run_trial(spec, Path(tmp) / "t", progress=False)
    results["sds_trial"] = {
        "prompt": prompt,
        "steps": result.cost.steps,
        "optimisation_seconds": result.cost.seconds,
        "evaluation_seconds": result.cost.eval_seconds,
        "seconds_per_step": result.cost.seconds_per_step,
        "metrics": result.metrics,
    }
    save("gaussians", results)
    return results


if __name__ == "__main__":
    main()
