"""Real-scale cost on a GPU (issue: real scale): every loss, 3DGS, the SD 2.1 base architecture at 512×512.

For each loss: ``steps`` optimisation steps (DreamMapping's set-up: 4 views of 512×512 per step,
3D Gaussians initialised with 50k points, fp16 prior) on the SD 2.1 base UNet and VAE architectures
with random weights (no weights can be downloaded; cost does not depend on the weights' values),
wall seconds with CUDA synchronised, NFE, peak CUDA memory, and the time extrapolated to 5000 steps
next to the paper's ~15 min per asset on one A100. Writes ``benchmarks/results/gpu.json`` with the
device name. Without CUDA it prints why and writes nothing.

``python -m benchmarks.gpu`` (or ``python -m benchmarks.run gpu``); ``main(steps=..., latent=...,
device="cpu")`` runs the same code at a toy size (used by a test).
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import save
from benchmarks.losses import LOSSES, sd21_like_prior

PAPER_MINUTES_5000_STEPS_A100 = 15.0


def run_loss(prior, loss: str, steps: int, resolution: int, batch: int, points: int) -> dict:
    from sdbench import trial
    from sdbench.budget import Budget

    spec = trial.resolve(
        trial.TrialConfig(prompt="a red cube", loss=loss, representation="gaussians", budget=Budget("steps", steps), batch_size=batch, resolution=resolution),
        [f"rep.num_points={points}", f"rep.max_points={max(points * 4, 6144)}", "rep.densify_until=3000"],
    )
    state = trial.build(spec, prior)
    device = prior.device
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trial.optimise(state, progress=False)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    out = {
        "steps": steps,
        "seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / steps, 4),
        "nfe_per_step": round(state.nfe / steps, 2),
        "extrapolated_5000_steps_minutes": round(seconds / steps * 5000 / 60, 1),
    }
    if cuda:
        out["peak_cuda_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def main(steps: int = 200, latent: int = 64, device: str = "cuda", batch: int = 4, points: int = 50_000) -> dict | None:
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu benchmark: no CUDA device here; nothing measured (benchmarks/results/gpu.json untouched)")
        return None
    from sdbench.priors.diffusers_prior import DiffusersPrior

    prior = sd21_like_prior(latent=latent, cfg=DiffusersPrior.Config(device=device))
    resolution = latent * 8
    results: dict = {
        "setup": f"SD 2.1 base architecture (random weights, {prior.dtype}), {resolution}x{resolution} renders, "
        f"{batch} views per step, 3DGS from {points} points",
        "paper_minutes_5000_steps_a100": PAPER_MINUTES_5000_STEPS_A100,
        "losses": {},
    }
    for loss in LOSSES:
        results["losses"][loss] = run_loss(prior, loss, steps, resolution, batch, points)
        print(loss, results["losses"][loss], flush=True)
    base = results["losses"]["sds"]["seconds_per_step"]
    for row in results["losses"].values():
        row["time_vs_sds"] = round(row["seconds_per_step"] / base, 3)
    if device == "cuda":
        save("gpu", results, device="cuda")
    return results


if __name__ == "__main__":
    main()
