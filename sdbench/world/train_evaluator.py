"""Train the toy evaluator: a small contrastive image–text model built with open_clip.

    python -m sdbench.world.train_evaluator --steps 1200 --out sdbench/world/weights/evaluator

The model is an ordinary open_clip ``CLIP`` (ViT image tower, causal text transformer with EOS
pooling over the toy tokenizer) from a custom config, saved as an open_clip ``local-dir:`` folder,
so CLIP-score code is the same for it and for ViT-L/14. Training is CLIP's image→text
cross-entropy against the full set of 30 ``a {colour} {shape}`` prompts. Augmentations make it
robust to what score distillation produces: degradations, tinted backgrounds, noise, shifts and
scale changes (hue is never changed: colour is the label).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sdbench.world import degrade, toy_models
from sdbench.world.data import RenderSet, make_renders, training_setup
from sdbench.world.evaluator import readout
from sdbench.world.grammar import DEGRADATIONS, base_prompts

EVALUATOR_CONFIG = {
    "model_cfg": {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 32, "patch_size": 4, "width": 96, "layers": 3, "head_width": 32, "mlp_ratio": 2.0},
        "text_cfg": {
            "context_length": toy_models.MAX_TOKENS,
            "vocab_size": None,  # filled from the tokenizer
            "hf_tokenizer_name": "sdbench-toy-words",  # the tokenizer files live in the same folder
            "width": 64,
            "heads": 4,
            "layers": 2,
            "pad_id": 0,
            "eos_id": 2,
            "pool_type": "eos",
        },
    },
    "preprocess_cfg": {
        "size": 32,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "interpolation": "bicubic",
        "resize_mode": "squash",
    },
}


def build_model(vocab_size: int):
    import open_clip

    cfg = json.loads(json.dumps(EVALUATOR_CONFIG["model_cfg"]))
    cfg["text_cfg"]["vocab_size"] = vocab_size
    model = open_clip.CLIP(**cfg)
    from open_clip.transform import PreprocessCfg  # noqa: F401 - documents where the keys come from

    model.visual.preprocess_cfg = dict(EVALUATOR_CONFIG["preprocess_cfg"])
    return model, cfg


def save(model, cfg: dict, tokenizer, out: Path) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": cfg, "preprocess_cfg": EVALUATOR_CONFIG["preprocess_cfg"]}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    tokenizer.save_pretrained(out)


def augment(images: torch.Tensor, alpha: torch.Tensor, rng: random.Random, strength: float = 1.0) -> torch.Tensor:
    """Label-preserving augmentations of ``[B, 3, H, W]`` renders over white with coverage ``alpha``."""
    out = images.clone()
    B, _, H, W = out.shape
    for i in range(B):
        x, a = out[i : i + 1], alpha[i : i + 1]
        if rng.random() < 0.35 * strength:  # tinted or grey background, as SDS produces
            bg = torch.tensor([rng.random(), rng.random(), rng.random()]).view(1, 3, 1, 1)
            if rng.random() < 0.5:
                bg = bg * 0.5 + 0.5 * bg.mean()
            x = x - (1 - a) + (1 - a) * bg
        if rng.random() < 0.35 * strength:
            x = degrade.apply(rng.choice(DEGRADATIONS), x)
        if rng.random() < 0.5 * strength:  # shift and scale
            s = 1 + rng.uniform(-0.25, 0.2)
            theta = torch.tensor([[[s, 0, rng.uniform(-0.2, 0.2)], [0, s, rng.uniform(-0.2, 0.2)]]], dtype=x.dtype)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            fill = x[..., :1, :1].clone()
            x = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
        if rng.random() < 0.3 * strength:
            x = x + rng.uniform(0.02, 0.1) * torch.randn_like(x)
        out[i : i + 1] = x.clamp(0, 1)
    return out


def labels(data: RenderSet, idx: list[int]) -> torch.Tensor:
    """Index into :func:`base_prompts` (colours outer, shapes inner)."""
    from sdbench.world.scenes import SHAPES

    return data.colour[idx] * len(SHAPES) + data.shape[idx]


@torch.no_grad()
def accuracy(model, tokenizer, data: RenderSet) -> dict[str, float]:
    tokens = tokenizer(
        base_prompts(), padding="max_length", max_length=toy_models.MAX_TOKENS, truncation=True, return_tensors="pt"
    ).input_ids
    model.eval()
    text = F.normalize(model.encode_text(tokens), dim=-1)
    probs = []
    for i in range(0, len(data), 256):
        x = (data.images[i : i + 256].float() / 255 - 0.5) / 0.5
        probs.append((model.logit_scale.exp() * F.normalize(model.encode_image(x), dim=-1) @ text.T).softmax(-1))
    r = readout(torch.cat(probs))
    model.train()
    return {
        "shape_accuracy": (r.shape == data.shape).float().mean().item(),
        "colour_accuracy": (r.colour == data.colour).float().mean().item(),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--per-class", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=50)
    args = ap.parse_args(argv)

    rng = training_setup(args.seed, args.threads)
    train = make_renders(args.per_class, seed=args.seed + 101)
    held_out = make_renders(20, seed=args.seed + 202)
    tokenizer = toy_models.build_tokenizer()
    model, cfg = build_model(len(tokenizer))
    tokens = tokenizer(
        base_prompts(), padding="max_length", max_length=toy_models.MAX_TOKENS, truncation=True, return_tensors="pt"
    ).input_ids
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    args.out.mkdir(parents=True, exist_ok=True)
    start, running, entry = time.time(), [], {}
    for step in range(args.steps):
        warm = min(1.0, (step + 1) / 50)
        for g in opt.param_groups:
            g["lr"] = args.lr * warm * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        idx = [rng.randrange(len(train)) for _ in range(args.batch_size)]
        x = augment(train.images[idx].float() / 255, train.alpha[idx].float() / 255, rng)
        img = F.normalize(model.encode_image((x - 0.5) / 0.5), dim=-1)
        txt = F.normalize(model.encode_text(tokens), dim=-1)
        loss = F.cross_entropy(model.logit_scale.exp().clamp(max=100) * img @ txt.T, labels(train, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(loss.item())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            entry = {"step": step + 1, "loss": sum(running) / len(running), "seconds": round(time.time() - start, 1)}
            running = []
            print(json.dumps(entry), flush=True)
    acc = accuracy(model, tokenizer, held_out)
    save(model, cfg, tokenizer, args.out)
    summary = {
        "command": "python -m sdbench.world.train_evaluator "
        + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "steps": args.steps,
        "seconds": round(time.time() - start, 1),
        "final_loss": entry.get("loss"),
        "held_out": acc,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (args.out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
