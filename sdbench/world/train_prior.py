"""Train the toy text-to-image prior from a seed on the CPU.

    python -m sdbench.world.train_prior --steps 4000 --out sdbench/world/weights/prior

Recipe (measured on 2 CPU cores, see the README): cached renders of every (shape, colour) from
random views; one random degradation on 30 % of images, named in the prompt; view words on half
the prompts; 10 % out-of-vocabulary filler words; 10 % empty prompts for classifier-free guidance.
ε-prediction with min-SNR-γ loss weighting (Hang et al. 2023, γ = 5), AdamW with warm-up and cosine
decay, gradient clipping, and an EMA of the weights, which is what gets saved.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sdbench.world import toy_models
from sdbench.world.data import make_renders, sample_batch, training_setup


def min_snr_weight(alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR_t, γ) / SNR_t: the min-SNR-γ weight of the ε-prediction MSE."""
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
    return snr.clamp(max=gamma) / snr


def lr_factor(step: int, warmup: int, total: int, floor: float = 0.05) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the diffusers-layout weights")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--min-snr-gamma", type=float, default=5.0)
    ap.add_argument("--per-class", type=int, default=800, help="cached renders per (shape, colour)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=50)
    args = ap.parse_args(argv)

    rng = training_setup(args.seed, args.threads)

    data = make_renders(args.per_class, seed=args.seed + 1)
    tokenizer = toy_models.build_tokenizer()
    text_encoder = toy_models.build_text_encoder(len(tokenizer))
    unet = toy_models.build_unet()
    scheduler = toy_models.build_scheduler()
    alphas_cumprod = scheduler.alphas_cumprod.float()

    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()
    ema_params = list(ema_unet.parameters()) + list(ema_text.parameters())

    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "train_log.jsonl"
    log_path.write_text("")
    start, running = time.time(), []
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = args.lr * lr_factor(step, args.warmup, args.steps)
        images, prompts = sample_batch(data, args.batch_size, rng)
        ids = tokenizer(
            prompts, padding="max_length", max_length=toy_models.MAX_TOKENS, truncation=True, return_tensors="pt"
        ).input_ids
        x0 = images * 2 - 1
        noise = torch.randn_like(x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],))
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = unet(x_t, t, text_encoder(ids).last_hidden_state).sample
        per_sample = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
        loss = (min_snr_weight(alphas_cumprod, t, args.min_snr_gamma) * per_sample).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema_params, params):
                e.lerp_(p, 1 - decay)
        running.append(per_sample.mean().item())
        if (step + 1) % args.log_every == 0:
            entry = {"step": step + 1, "mse": sum(running) / len(running), "seconds": round(time.time() - start, 1)}
            running = []
            with log_path.open("a") as f:
                f.write(json.dumps(entry) + "\n")
            print(json.dumps(entry), flush=True)
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            toy_models.save_pipeline_folder(args.out, ema_unet, ema_text, tokenizer, scheduler)
    summary = {
        "command": "python -m sdbench.world.train_prior " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seconds": round(time.time() - start, 1),
        "threads": torch.get_num_threads(),
        "final_mse": entry["mse"] if args.steps >= args.log_every else None,
        "parameters": {
            "unet": sum(p.numel() for p in unet.parameters()),
            "text_encoder": sum(p.numel() for p in text_encoder.parameters()),
        },
    }
    (args.out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
