"""Per-step cost of every loss relative to SDS, measured in one process (issue: the loss zoo).

(a) the toy prior (32×32 pixels) with the 2D image at its resolution;
(b) the Stable Diffusion 2.1 base UNet architecture built from its config with random weights (865.9 M
    parameters) and SD's VAE architecture, on the CPU at a reduced size: 128×128 renders → 16×16
    latents (the real run uses 512 → 64; the UNet's cost scales with the latent area).

For each loss: median seconds per optimisation step (render → loss → backward → optimiser step),
measured in interleaved rounds after a warm-up step, NFE per view and step as counted by the prior,
and the process's peak memory during two further steps. Writes ``benchmarks/results/losses.json``;
the target is VDM ≤ 1.10× SDS on (b).
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import save
from sdbench.hardware import PeakMemory

LOSSES = ("sds", "csd", "nfsd", "ism", "vsd", "vdm")


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


def measure_all(prior, steps: int, rounds: int, resolution: int, batch: int = 1, losses=LOSSES) -> dict[str, dict]:
    """Per-step time of every loss, interleaved over ``rounds`` rounds (so that drifts of the machine
    affect all losses alike); NFE per step; peak memory of a separate pass per loss."""
    from sdbench import trial
    from sdbench.budget import Budget

    states = {}
    for name in losses:
        spec = trial.resolve(
            trial.TrialConfig(
                prompt="a red cube",
                loss=name,
                representation="image",
                budget=Budget("steps", 10**6),
                resolution=resolution,
                batch_size=batch,
            ),
            [],
        )
        states[name] = trial.build(spec, prior)
        _steps(states[name], 1)  # warm-up (first-call allocations, caches)
    times: dict[str, list[float]] = {n: [] for n in losses}
    nfe: dict[str, list[int]] = {n: [] for n in losses}
    for _ in range(rounds):
        for name in losses:
            marks = _steps(states[name], steps)
            times[name] += [b[0] - a[0] for a, b in zip(marks, marks[1:])]
            nfe[name] += [b[1] - a[1] for a, b in zip(marks, marks[1:])]
    out = {}
    for name in losses:
        memory = PeakMemory(prior.device)
        memory.start()
        _steps(states[name], 2)
        ts, ns = sorted(times[name]), sorted(nfe[name])
        out[name] = {
            "seconds_per_step": round(ts[len(ts) // 2], 4),
            "nfe_per_step": ns[len(ns) // 2],
            "peak_memory_mb": round(memory.peak_mb(), 1),
            "steps_measured": len(ts),
        }
    return out


def relative(table: dict[str, dict]) -> None:
    base = table["sds"]["seconds_per_step"]
    for row in table.values():
        row["time_vs_sds"] = round(row["seconds_per_step"] / base, 3)


def main() -> dict:
    from sdbench.priors.toy import ToyPrior

    results: dict = {"method": "median seconds per step over interleaved rounds (every loss a few steps per round)"}
    results["toy"] = measure_all(ToyPrior(), steps=10, rounds=4, resolution=32)
    relative(results["toy"])
    sd = sd21_like_prior()
    results["sd21_unet_parameters"] = sum(p.numel() for p in sd.unet.parameters())
    results["sd21_architecture_cpu_128px"] = measure_all(sd, steps=2, rounds=3, resolution=128)
    relative(results["sd21_architecture_cpu_128px"])
    results["target_vdm_le_1.10x_sds_on_sd21"] = results["sd21_architecture_cpu_128px"]["vdm"]["time_vs_sds"] <= 1.10
    save("losses", results)
    return results


if __name__ == "__main__":
    main()
