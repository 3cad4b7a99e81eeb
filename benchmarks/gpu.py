"""Real-scale cost on a GPU: every loss on the SD 2.1 base architecture at 512×512, then 3DGS end to end.

DreamMapping's set-up: 4 views of 512×512 per step, fp16 prior, 3D Gaussians from 50k points. The
SD 2.1 base UNet and VAE architectures carry random weights (no weights can be downloaded; the cost
of a step does not depend on the weights' values).

Part 1, ``losses_image``: what the losses differ in. Every registered loss (VDM's ablations aside;
with SDI also at its schedule's midpoint, the row ``sdi@mid``: :mod:`benchmarks.losses`) drives the 2D
image representation (4 × 512² images, nothing to render), interleaved over rounds after a warm-up
step; median seconds per step with CUDA synchronised, NFE per step, peak CUDA memory, time relative
to SDS.

Part 2, ``gaussians``: end to end with gsplat's CUDA rasteriser for the losses named (SDS and VDM by
default): median seconds per step after warm-up, every timed step (``step_seconds``: the claims
study's C22 bootstraps the VDM/SDS ratio from them, ``sdbench report --claims ... --gpu-timings``),
peak memory, and the time extrapolated to 5000 steps next to the paper's ~15 min per asset on one A100.

Writes ``benchmarks/results/gpu.json`` (with the device name) after each part. Without CUDA it
prints why and writes nothing. ``python -m benchmarks.gpu [--steps N --rounds R --gaussian-steps N]``;
``--quick``: a smoke run (one step per row and loss, no warm-up, no memory pass) that writes nothing;
``--device cpu`` (or ``main(..., device="cpu")``, used by a test) runs the same code at a toy size
(8×8 latents, one view, 256 Gaussians).
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import save
from benchmarks.losses import LOSSES, _steps, measure_all, relative, sd21_like_prior
from sdbench.hardware import PeakMemory

PAPER_MINUTES_5000_STEPS_A100 = 15.0


def run_gaussians(prior, loss: str, steps: int, resolution: int, batch: int, points: int, warmup: int = 2) -> dict:
    """Median seconds per step of ``loss`` on 3DGS (after ``warmup`` steps), NFE per step, peak memory."""
    from sdbench import trial
    from sdbench.budget import Budget

    spec = trial.resolve(
        trial.TrialConfig(
            prompt="a red cube",
            loss=loss,
            representation="gaussians",
            budget=Budget("steps", 10**6),
            batch_size=batch,
            resolution=resolution,
        ),
        [f"rep.num_points={points}", f"rep.max_points={max(points * 4, 6144)}"],
    )
    state = trial.build(spec, prior)
    if warmup:
        _steps(state, warmup)
    memory = PeakMemory(prior.device)
    memory.start()
    marks = _steps(state, steps)
    times = sorted(b[0] - a[0] for a, b in zip(marks, marks[1:]))
    per_step = times[len(times) // 2]
    return {
        "steps_measured": len(times),
        "seconds_per_step": round(per_step, 4),
        "nfe_per_step": round((marks[-1][1] - marks[0][1]) / len(times), 2),
        "peak_memory_mb": round(memory.peak_mb(), 1),
        "gaussians_at_end": int(state.representation.num_points),
        "extrapolated_5000_steps_minutes": round(per_step * 5000 / 60, 1),
        "step_seconds": [round(t, 6) for t in times],  # every timed step: the claims report resamples them (C22)
    }


def main(
    steps: int = 5,
    rounds: int = 3,
    latent: int = 64,
    device: str = "cuda",
    batch: int = 4,
    points: int = 50_000,
    gaussian_steps: int = 20,
    gaussian_losses: tuple[str, ...] = ("sds", "vdm"),
    quick: bool = False,
    losses: tuple[str, ...] = LOSSES,
) -> dict | None:
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu benchmark: no CUDA device here; nothing measured (benchmarks/results/gpu.json untouched)")
        return None
    warm = {"warmup": 0, "memory_steps": 0} if quick else {}
    if quick:
        steps, rounds, gaussian_steps = 1, 1, 1
    write = device == "cuda" and not quick
    from sdbench.priors.diffusers_prior import DiffusersPrior

    prior = sd21_like_prior(latent=latent, cfg=DiffusersPrior.Config(device=device))
    resolution = latent * 8
    results: dict = {
        "setup": (
            f"SD 2.1 base architecture (random weights, {prior.dtype}), {resolution}x{resolution} renders, {batch} views per step"
        ),
        "method": "median seconds per step, CUDA synchronised at every step, after a warm-up",
        "paper_minutes_5000_steps_a100": PAPER_MINUTES_5000_STEPS_A100,
    }
    results["losses_image"] = measure_all(
        prior, steps=steps, rounds=rounds, resolution=resolution, batch=batch, losses=losses, **warm
    )
    relative(results["losses_image"])
    print("losses_image", results["losses_image"], flush=True)
    if write:
        save("gpu", results, device="cuda")
    results["gaussians"] = {"points": points}
    for loss in gaussian_losses:
        results["gaussians"][loss] = run_gaussians(
            prior, loss, gaussian_steps, resolution, batch, points, warmup=0 if quick else 2
        )
        print("gaussians", loss, results["gaussians"][loss], flush=True)
        if write:
            save("gpu", results, device="cuda")
    if "sds" in results["gaussians"]:
        base = results["gaussians"]["sds"]["seconds_per_step"]
        for loss in gaussian_losses:
            results["gaussians"][loss]["time_vs_sds"] = round(results["gaussians"][loss]["seconds_per_step"] / base, 3)
    if write:
        save("gpu", results, device="cuda")
    elif quick:
        print("quick run: nothing written")
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="steps per round and loss (part 1)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gaussian-steps", type=int, default=20)
    ap.add_argument("--gaussian-losses", default="sds,vdm")
    ap.add_argument("--points", type=int, default=50_000)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 step per row, no warm-up; writes nothing")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for the same code at a toy size")
    ap.add_argument("--losses", default=",".join(LOSSES), help="losses of part 1 (default: every registered one)")
    a = ap.parse_args()
    toy = {"latent": 8, "batch": 1, "points": 256} if a.device == "cpu" else {"points": a.points}
    main(
        steps=a.steps,
        rounds=a.rounds,
        gaussian_steps=a.gaussian_steps,
        gaussian_losses=tuple(a.gaussian_losses.split(",")),
        device=a.device,
        quick=a.quick,
        losses=tuple(a.losses.split(",")),
        **toy,
    )
