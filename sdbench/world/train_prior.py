"""Train the toy text-to-image prior from a seed, on the CPU or a CUDA device.

    python -m sdbench.world.train_prior --steps 4000 --out sdbench/world/weights/prior
    python -m sdbench.world.train_prior --world v2 --steps 20000 --device cuda \\
        --warm-start sdbench/world/weights/prior --out sdbench/world/weights/prior_v2

Recipe (measured on 2 CPU cores, see the README): cached renders from random views; ε-prediction
with min-SNR-γ loss weighting (Hang et al. 2023, γ = 5), AdamW with warm-up and cosine decay,
gradient clipping, and an EMA of the weights, which is what gets saved.

* ``--world v1`` (default): every (shape, colour); one random degradation on 30 % of images, named
  in the prompt; view words on half the prompts; 10 % out-of-vocabulary filler words; 10 % empty
  prompts for classifier-free guidance (:mod:`sdbench.world.data`).
* ``--world v2``: colour ranges, patterns, a front marking, front-biased views, ambiguous and
  web-caption-like prompts (:mod:`sdbench.world.data_v2`, whose docstring gives the shares);
  :data:`~sdbench.world.toy_models.UNET_CONFIG_V2` (v1's architecture; ``--unet large``:
  :data:`~sdbench.world.toy_models.UNET_CONFIG_V2_LARGE`, twice the cost per image). ``--warm-start``
  copies a v1 folder's matching tensors and extends its token embeddings
  (:func:`sdbench.world.training.warm_start`).

``--checkpoint-every`` writes ``checkpoint.pt`` in ``--out``; ``--resume`` continues from it (on the
CPU exactly as the uninterrupted run). ``train_log.jsonl`` gets step, loss, steps/s and wall time.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from sdbench.world import toy_models
from sdbench.world.data import training_setup
from sdbench.world.training import Checkpoint, TrainLog, resolve_device, warm_start, warm_start_unet


def min_snr_weight(alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR_t, γ) / SNR_t: the min-SNR-γ weight of the ε-prediction MSE."""
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
    return snr.clamp(max=gamma) / snr


def lr_factor(step: int, warmup: int, total: int, floor: float = 0.05) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the diffusers-layout weights")
    ap.add_argument("--world", choices=("v1", "v2"), default="v1", help="toy world (data, vocabulary, UNet)")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--min-snr-gamma", type=float, default=5.0)
    ap.add_argument("--per-class", type=int, default=None, help="cached renders per class (v1: 800 per shape×colour; v2: 100)")
    ap.add_argument("--resolution", type=int, default=toy_models.RESOLUTION, help="image size (v2 only)")
    ap.add_argument("--unet", choices=toy_models.UNET_SIZES, default="base", help="v2 only: base (v1's architecture) or large")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    ap.add_argument("--warm-start", type=Path, default=None, help="diffusers folder to copy matching weights from")
    ap.add_argument("--save-every", type=int, default=500, help="write the EMA weights every N steps")
    ap.add_argument("--checkpoint-every", type=int, default=500, help="write checkpoint.pt every N steps (0: never)")
    ap.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt if it exists")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="v2 only, repeatable: override a field of data_v2.DataConfig, e.g. --data p_omit_shape=0.3",
    )
    args = ap.parse_args(argv)
    if args.world == "v1" and args.resolution != toy_models.RESOLUTION:
        ap.error("--resolution is a v2 option (v1 is 32x32)")
    if args.world == "v1" and args.unet != "base":
        ap.error("--unet is a v2 option")
    if args.per_class is None:
        args.per_class = 800 if args.world == "v1" else 100
    if args.data and args.world == "v1":
        ap.error("--data is a v2 option")
    try:
        args.data_overrides = parse_data_overrides(args.data)
    except ValueError as e:
        ap.error(str(e))
    return args


def parse_data_overrides(items: list[str]) -> dict[str, float]:
    """``["p_omit_shape=0.3"]`` → ``{"p_omit_shape": 0.3}``, checked against the share fields
    (``p_*``, each in [0, 1]) of :class:`~sdbench.world.data_v2.DataConfig`."""
    import dataclasses

    from sdbench.world.data_v2 import DataConfig

    shares = {f.name for f in dataclasses.fields(DataConfig) if f.name.startswith("p_")}
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in shares:
            raise ValueError(f"--data {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(sorted(shares))}")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"--data {item!r}: {value!r} is not a number") from None
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"--data {item!r}: a share lies in [0, 1]")
        out[name] = v
    return out


def load_components(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The UNet's and text encoder's tensors of a diffusers folder (for ``--warm-start``)."""
    from safetensors.torch import load_file

    files = {
        "unet": folder / "unet" / "diffusion_pytorch_model.safetensors",
        "text": folder / "text_encoder" / "model.safetensors",
    }
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        raise SystemExit(f"error: --warm-start folder lacks {', '.join(missing)}")
    return {k: load_file(str(f)) for k, f in files.items()}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    rng = training_setup(args.seed, args.threads)
    device = resolve_device(args.device)

    if args.world == "v1":
        from sdbench.world.data import make_renders, sample_batch

        data = make_renders(args.per_class, seed=args.seed + 1)

        def batch(n: int):
            return sample_batch(data, n, rng)
    else:
        from sdbench.world import data_v2

        data_cfg = data_v2.DataConfig(resolution=args.resolution, per_class=args.per_class, **args.data_overrides)
        data = data_v2.make_renders(data_cfg, seed=args.seed + 1)

        def batch(n: int):
            images, prompts, _ = data_v2.sample_batch(data, n, rng, data_cfg)
            return images, prompts

    tokenizer = toy_models.build_tokenizer(args.world)
    text_encoder = toy_models.build_text_encoder(len(tokenizer))
    unet = toy_models.build_unet(args.world, args.resolution, args.unet)
    scheduler = toy_models.build_scheduler()
    warm = None
    if args.warm_start is not None:
        state = load_components(args.warm_start)
        warm = {
            "from": str(args.warm_start),
            "unet": warm_start_unet(unet, state["unet"]),
            "text_encoder": warm_start(text_encoder, state["text"], embedding_suffixes=("token_embedding.weight",)),
        }
        print(json.dumps({"warm_start": warm}), flush=True)
    unet.to(device), text_encoder.to(device)
    alphas_cumprod = scheduler.alphas_cumprod.float().to(device)

    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()
    ema_params = list(ema_unet.parameters()) + list(ema_text.parameters())
    modules = {"unet": unet, "text_encoder": text_encoder, "ema_unet": ema_unet, "ema_text_encoder": ema_text}

    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = Checkpoint(args.out)
    start_step, extra = 0, {}
    if args.resume and checkpoint.exists():
        start_step, extra = checkpoint.load(modules, opt, rng)
        unet_size = extra.get("unet", "large" if extra.get("world") == "v2" else "base")  # v2 runs before --unet: large
        if (extra.get("world"), extra.get("batch_size"), unet_size) != (args.world, args.batch_size, args.unet):
            raise SystemExit(
                f"error: {checkpoint.path} is a {extra.get('world')} run with batch {extra.get('batch_size')}"
                f" and the {unet_size} UNet"
            )
        print(json.dumps({"resumed_from_step": start_step}), flush=True)
    log = TrainLog(args.out, resume_step=start_step if extra else None, seconds_before=extra.get("seconds", 0.0))
    for step in range(start_step, args.steps):
        lr = args.lr * lr_factor(step, args.warmup, args.steps)
        for group in opt.param_groups:
            group["lr"] = lr
        images, prompts = batch(args.batch_size)
        ids = tokenizer(
            prompts, padding="max_length", max_length=toy_models.MAX_TOKENS, truncation=True, return_tensors="pt"
        ).input_ids.to(device)
        x0 = images.to(device) * 2 - 1
        noise = torch.randn_like(x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],)).to(device)
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
        log.add(mse=per_sample.mean().item(), loss=loss.item())
        done = step + 1
        if done % args.log_every == 0:
            log.write(done, lr=lr)
        if done % args.save_every == 0 or done == args.steps:
            toy_models.save_pipeline_folder(args.out, ema_unet, ema_text, tokenizer, scheduler)
        if args.checkpoint_every and (done % args.checkpoint_every == 0 or done == args.steps):
            checkpoint.save(
                done,
                modules,
                opt,
                rng,
                {"world": args.world, "batch_size": args.batch_size, "unet": args.unet, "seconds": log.seconds},
            )
    if start_step >= args.steps:
        toy_models.save_pipeline_folder(args.out, ema_unet, ema_text, tokenizer, scheduler)
    summary = {
        "command": "python -m sdbench.world.train_prior " + " ".join(argv if argv is not None else sys.argv[1:]),
        "world": args.world,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "resolution": args.resolution,
        "unet": args.unet,
        "seconds": round(log.seconds, 1),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "final_mse": log.last.get("mse"),
        "final_loss": log.last.get("loss"),
        "resumed_from_step": start_step or None,
        "warm_start": warm,
        "data_overrides": args.data_overrides or None,
        "parameters": {
            "unet": sum(p.numel() for p in unet.parameters()),
            "text_encoder": sum(p.numel() for p in text_encoder.parameters()),
        },
    }
    (args.out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
