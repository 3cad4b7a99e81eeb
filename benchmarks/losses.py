"""Per-step cost of every loss relative to SDS, measured in one process (issue: the loss zoo).

(a) the toy prior (32×32 pixels) with the 2D image at its resolution;
(b) the Stable Diffusion 2.1 base UNet architecture built from its config with random weights (865.9 M
    parameters) and SD's VAE architecture, on the CPU at a reduced size: 128×128 renders → 16×16
    latents (the real run uses 512 → 64; the UNet's cost scales with the latent area).

For every registered loss (VDM's ablations aside: :func:`benchmarks.common.registered_losses`):
median seconds per optimisation step (render → loss → backward → optimiser step), measured in
interleaved rounds after a warm-up step, NFE per view and step as counted by the prior, and the
process's peak memory during two further steps. Each trial starts at step 0 of its loss's schedules.
SDI's NFE depends on t (2·(hops + 1) per view): its row ``sdi`` is the schedule's start (t ≈ 980: 24),
the row ``sdi@mid`` holds t at the schedule's midpoint (step 5000 of 10k, t = 615: 18; the mean over
the whole schedule is 17.25, so ``sdi@mid`` is the run's typical cost). Writes
``benchmarks/results/losses.json``; the target is VDM ≤ 1.10× SDS on (b).

``python -m benchmarks.losses [--quick]``: ``--quick`` is a smoke run (one step per row, no warm-up and
no memory pass, 8×8 latents on (b)) that writes nothing.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.common import registered_losses, save
from sdbench.hardware import PeakMemory

LOSSES = registered_losses()
#: Extra rows: (row name, loss, overrides) measured next to the loss's own row.
VARIANTS = (("sdi@mid", "sdi", ("loss.t_schedule.start=0.615", "loss.t_schedule.end=0.615")),)


def rows(losses=LOSSES) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Row name → (loss, ``--set`` overrides): every loss as configured, each variant after its loss."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name in losses:
        out[name] = (name, ())
        out.update({row: (loss, overrides) for row, loss, overrides in VARIANTS if loss == name})
    return out


def sd21_like_prior(latent: int = 16, cfg=None):
    """SD 2.1 base's UNet and VAE architectures with random weights, and a 1-layer text encoder of
    SD's width (the text encoder's depth does not enter a loss step: embeddings are cached)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdbench.priors.diffusers_prior import DiffusersPrior
    from sdbench.world import toy_models

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=latent,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=latent * 8,
    )
    tokenizer = toy_models.build_tokenizer()
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=1024,
            intermediate_size=1024,
            num_hidden_layers=1,
            num_attention_heads=16,
            max_position_embeddings=toy_models.MAX_TOKENS,
        )
    )
    sched = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    return DiffusersPrior.from_components(cfg, unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=sched)


class _Stop(Exception):
    pass


def _steps(state, n: int) -> list[tuple[float, int]]:
    """Run ``n`` more optimisation steps of a live trial; (timestamp, NFE) after each."""
    from sdbench import trial

    marks: list[tuple[float, int]] = [(time.perf_counter(), state.nfe)]

    cuda = state.prior.device.type == "cuda"

    def on_step(s):
        if cuda:
            torch.cuda.synchronize()  # device work is asynchronous: a step ends when its kernels do
        marks.append((time.perf_counter(), s.nfe))
        if len(marks) > n:
            raise _Stop

    try:
        trial.optimise(state, progress=False, on_step=on_step)
    except _Stop:
        pass
    return marks


def measure_all(
    prior,
    steps: int,
    rounds: int,
    resolution: int,
    batch: int = 1,
    losses=LOSSES,
    warmup: int = 1,
    memory_steps: int = 2,
) -> dict[str, dict]:
    """Per-step time of every row of :func:`rows` (``losses`` and their variants) after ``warmup``
    steps, interleaved over ``rounds`` rounds (so that drifts of the machine affect all losses alike);
    NFE per step; peak memory of a separate pass of ``memory_steps`` per row (None when 0)."""
    from sdbench import trial
    from sdbench.budget import Budget

    table = rows(losses)
    states = {}
    for name, (loss, overrides) in table.items():
        spec = trial.resolve(
            trial.TrialConfig(
                prompt="a red cube",
                loss=loss,
                representation="image",
                budget=Budget("steps", 10**6),
                resolution=resolution,
                batch_size=batch,
            ),
            list(overrides),
        )
        states[name] = trial.build(spec, prior)
        if warmup:
            _steps(states[name], warmup)  # first-call allocations, caches
    times: dict[str, list[float]] = {n: [] for n in table}
    nfe: dict[str, list[int]] = {n: [] for n in table}
    for _ in range(rounds):
        for name in table:
            marks = _steps(states[name], steps)
            times[name] += [b[0] - a[0] for a, b in zip(marks, marks[1:])]
            nfe[name] += [b[1] - a[1] for a, b in zip(marks, marks[1:])]
    out = {}
    for name in table:
        peak = None
        if memory_steps:
            memory = PeakMemory(prior.device)
            memory.start()
            _steps(states[name], memory_steps)
            peak = round(memory.peak_mb(), 1)
        ts, ns = sorted(times[name]), sorted(nfe[name])
        out[name] = {
            "seconds_per_step": round(ts[len(ts) // 2], 4),
            "nfe_per_step": ns[len(ns) // 2],
            "peak_memory_mb": peak,
            "steps_measured": len(ts),
        }
    return out


def relative(table: dict[str, dict]) -> None:
    base = table["sds"]["seconds_per_step"]
    for row in table.values():
        row["time_vs_sds"] = round(row["seconds_per_step"] / base, 3)


def main(quick: bool = False) -> dict:
    """The full benchmark (writes ``losses.json``), or with ``quick`` a smoke run that writes nothing."""
    from sdbench.priors.toy import ToyPrior

    start = time.perf_counter()
    toy_steps, toy_rounds, sd_steps, sd_rounds, latent = (1, 1, 1, 1, 8) if quick else (10, 4, 2, 3, 16)
    warm = {"warmup": 0, "memory_steps": 0} if quick else {}
    results: dict = {"method": "median seconds per step over interleaved rounds (every loss a few steps per round)"}
    results["toy"] = measure_all(ToyPrior(), steps=toy_steps, rounds=toy_rounds, resolution=32, **warm)
    relative(results["toy"])
    print(f"toy prior: {time.perf_counter() - start:.0f} s", flush=True)
    sd = sd21_like_prior(latent=latent)
    key = f"sd21_architecture_cpu_{latent * 8}px"
    results["sd21_unet_parameters"] = sum(p.numel() for p in sd.unet.parameters())
    results[key] = measure_all(sd, steps=sd_steps, rounds=sd_rounds, resolution=latent * 8, **warm)
    relative(results[key])
    results["target_vdm_le_1.10x_sds_on_sd21"] = results[key]["vdm"]["time_vs_sds"] <= 1.10
    print(f"toy prior and SD 2.1 architecture: {time.perf_counter() - start:.0f} s", flush=True)
    if quick:
        print(json.dumps(results, indent=2))
        print("quick run: nothing written")
    else:
        save("losses", results)
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 step per row, 8x8 latents on SD; writes nothing")
    main(quick=ap.parse_args().quick)
