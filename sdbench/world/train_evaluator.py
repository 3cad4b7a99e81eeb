"""Train the toy evaluator: a small contrastive image–text model built with open_clip.

    python -m sdbench.world.train_evaluator --steps 1200 --out sdbench/world/weights/evaluator
    python -m sdbench.world.train_evaluator --world v2 --steps 3000 --device cuda --out sdbench/world/weights/evaluator_v2

The model is an ordinary open_clip ``CLIP`` (ViT image tower, causal text transformer with EOS
pooling over the toy tokenizer) from a custom config, saved as an open_clip ``local-dir:`` folder,
so CLIP-score code is the same for it and for ViT-L/14. Augmentations make it robust to what score
distillation produces: degradations, tinted backgrounds, noise, shifts and scale changes (hue is
never changed: colour is the label).

* ``--world v1``: CLIP's image→text cross-entropy against the 30 ``a {colour} {shape}`` prompts.
* ``--world v2``: one zero-shot read-out per attribute (:func:`~sdbench.world.grammar.readout_prompts`:
  "a cube", "a red object", "a striped object", "an object with a face" / "... with no face"),
  each a cross-entropy over its prompts, plus CLIP's symmetric in-batch loss between images and
  their full prompts ("a red striped cube with a face"; equal prompts share the target), so the
  image embedding (used for diversity) and CLIP scores of full prompts mean something. The labels
  are what the image *shows*: the marking label is its visibility in that view (≥ 2 px visible,
  < 0.25 px hidden, in between left out); a patterned render blurred with σ ≥ 1.5 px is labelled
  ``plain`` (its pattern is gone: the read-out must see blur), σ in [1, 1.5) is left out of the
  pattern and marking losses.

``--checkpoint-every`` / ``--resume`` and ``train_log.jsonl`` work as in :mod:`sdbench.world.train_prior`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from sdbench.world import degrade, toy_models
from sdbench.world.data import RenderSet, make_renders, training_setup
from sdbench.world.grammar import DEGRADATIONS, base_prompts, readout_prompts
from sdbench.world.scenes import COLOURS, SHAPES
from sdbench.world.training import Checkpoint, TrainLog, resolve_device

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
# v2: a wider, deeper image tower for patterns and markings (a 4-px patch holds less than one stripe period).
EVALUATOR_CONFIG_V2 = json.loads(json.dumps(EVALUATOR_CONFIG))
EVALUATOR_CONFIG_V2["model_cfg"]["vision_cfg"].update(width=128, layers=4)
# v2 blur augmentation: σ drawn in this range (pixels); the labels follow the thresholds below.
BLUR_SIGMA = (0.5, 2.5)
PATTERN_GONE_SIGMA = 1.5
LABEL_UNSURE_SIGMA = 1.0
ATTRIBUTES = ("shape", "colour", "pattern", "marking")


def build_model(vocab_size: int, world: str = "v1", resolution: int = 32):
    import open_clip

    config = EVALUATOR_CONFIG if world == "v1" else EVALUATOR_CONFIG_V2
    cfg = json.loads(json.dumps(config["model_cfg"]))
    cfg["text_cfg"]["vocab_size"] = vocab_size
    cfg["vision_cfg"]["image_size"] = resolution
    model = open_clip.CLIP(**cfg)
    model.visual.preprocess_cfg = dict(config["preprocess_cfg"], size=resolution)
    return model, cfg


def save(model, cfg: dict, tokenizer, out: Path) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": cfg, "preprocess_cfg": dict(EVALUATOR_CONFIG["preprocess_cfg"], size=cfg["vision_cfg"]["image_size"])}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    tokenizer.save_pretrained(out)


def augment(
    images: torch.Tensor, alpha: torch.Tensor, rng: random.Random, strength: float = 1.0, blur_sigmas: list | None = None
) -> torch.Tensor:
    """Label-preserving augmentations of ``[B, 3, H, W]`` renders over white with coverage ``alpha``.

    With ``blur_sigmas`` (a list, v2) the ``blurry`` degradation draws σ from :data:`BLUR_SIGMA`
    and appends it per image (0 where not blurred); without it, v1's fixed blur is used."""
    out = images.clone()
    B, _, H, W = out.shape
    for i in range(B):
        x, a = out[i : i + 1], alpha[i : i + 1]
        sigma = 0.0
        if rng.random() < 0.35 * strength:  # tinted or grey background, as SDS produces
            bg = torch.tensor([rng.random(), rng.random(), rng.random()]).view(1, 3, 1, 1)
            if rng.random() < 0.5:
                bg = bg * 0.5 + 0.5 * bg.mean()
            x = x - (1 - a) + (1 - a) * bg
        if rng.random() < 0.35 * strength:
            name = rng.choice(DEGRADATIONS)
            if name == "blurry" and blur_sigmas is not None:
                sigma = rng.uniform(*BLUR_SIGMA)
                x = degrade.blur(x, sigma)
            else:
                x = degrade.apply(name, x)
        if rng.random() < 0.5 * strength:  # shift and scale
            s = 1 + rng.uniform(-0.25, 0.2)
            theta = torch.tensor([[[s, 0, rng.uniform(-0.2, 0.2)], [0, s, rng.uniform(-0.2, 0.2)]]], dtype=x.dtype)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            fill = x[..., :1, :1].clone()
            x = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
        if rng.random() < 0.3 * strength:
            x = x + rng.uniform(0.02, 0.1) * torch.randn_like(x)
        out[i : i + 1] = x.clamp(0, 1)
        if blur_sigmas is not None:
            blur_sigmas.append(sigma)
    return out


def labels(data: RenderSet, idx: list[int]) -> torch.Tensor:
    """Index into :func:`base_prompts` (colours outer, shapes inner)."""
    return data.colour[idx] * len(SHAPES) + data.shape[idx]


def labels_v2(data, idx: list[int], blur: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per attribute ``[B]`` class targets (−1: left out) of v2 renders ``idx`` blurred by ``blur [B]`` px."""
    pattern = data.pattern[idx].clone()
    marking = data.marking_visible()[idx].clone()
    unsure = (blur >= LABEL_UNSURE_SIGMA) & (blur < PATTERN_GONE_SIGMA)
    pattern[(blur >= PATTERN_GONE_SIGMA) & (pattern > 0)] = 0
    pattern[unsure] = -1
    marking[blur >= LABEL_UNSURE_SIGMA] = -1
    return {"shape": data.shape[idx], "colour": data.colour[idx], "pattern": pattern, "marking": marking}


def readout_tokens(tokenizer) -> dict[str, torch.Tensor]:
    return {
        k: tokenizer(v, padding="max_length", max_length=toy_models.MAX_TOKENS, truncation=True, return_tensors="pt").input_ids
        for k, v in readout_prompts().items()
    }


def attribute_logits(model, images: torch.Tensor, tokens: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scaled cosine logits ``[B, K]`` of images ``[B, 3, H, W]`` in [0, 1] against each read-out."""
    img = F.normalize(model.encode_image((images - 0.5) / 0.5), dim=-1)
    scale = model.logit_scale.exp().clamp(max=100)
    return {k: scale * img @ F.normalize(model.encode_text(t), dim=-1).T for k, t in tokens.items()}


@torch.no_grad()
def accuracy(model, tokenizer, data: RenderSet) -> dict[str, float]:
    """v1: shape and colour accuracy of the 30-prompt zero-shot read-out on ``data``."""
    tokens = tokenizer(
        base_prompts(), padding="max_length", max_length=toy_models.MAX_TOKENS, truncation=True, return_tensors="pt"
    ).input_ids
    model.eval()
    device = next(model.parameters()).device
    text = F.normalize(model.encode_text(tokens.to(device)), dim=-1)
    probs = []
    for i in range(0, len(data), 256):
        x = (data.images[i : i + 256].float().to(device) / 255 - 0.5) / 0.5
        probs.append((model.logit_scale.exp() * F.normalize(model.encode_image(x), dim=-1) @ text.T).softmax(-1))
    joint = torch.cat(probs).cpu().reshape(-1, len(COLOURS), len(SHAPES))
    model.train()
    return {
        "shape_accuracy": (joint.sum(1).argmax(-1) == data.shape).float().mean().item(),
        "colour_accuracy": (joint.sum(2).argmax(-1) == data.colour).float().mean().item(),
    }


@torch.no_grad()
def accuracy_v2(model, tokens: dict[str, torch.Tensor], data, blur_sigma: float = 0.0) -> dict[str, float]:
    """v2: per-attribute accuracy on ``data`` (marking: visibility, where the label is sure), each
    image blurred by ``blur_sigma`` px first if > 0 (labels as rendered: the pattern's truth)."""
    model.eval()
    device = next(model.parameters()).device
    tokens = {k: v.to(device) for k, v in tokens.items()}
    preds: dict[str, list[torch.Tensor]] = {k: [] for k in ATTRIBUTES}
    for i in range(0, len(data), 256):
        x = data.images[i : i + 256].float().to(device) / 255
        if blur_sigma > 0:
            x = degrade.blur(x, blur_sigma)
        for k, v in attribute_logits(model, x, tokens).items():
            preds[k].append(v.argmax(-1).cpu())
    model.train()
    truth = labels_v2(data, list(range(len(data))), torch.zeros(len(data)))
    out = {}
    for k in ATTRIBUTES:
        keep = truth[k] >= 0
        out[f"{k}_accuracy"] = (torch.cat(preds[k])[keep] == truth[k][keep]).float().mean().item()
    patterned = data.pattern > 0
    out["patterned_pattern_accuracy"] = (torch.cat(preds["pattern"])[patterned] == data.pattern[patterned]).float().mean().item()
    return out


def load_weights(model, folder: Path) -> str:
    """Load every tensor of ``folder/open_clip_model.safetensors`` into ``model`` (same architecture:
    a missing, extra or reshaped tensor is an error); returns the folder's name for the summary."""
    from safetensors.torch import load_file

    path = folder / "open_clip_model.safetensors"
    if not path.is_file():
        raise SystemExit(f"error: --warm-start folder lacks {path}")
    state = load_file(str(path))
    own = model.state_dict()
    bad = sorted(set(own) ^ set(state)) + sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if bad:
        raise SystemExit(f"error: --warm-start {folder} is another architecture ({len(bad)} tensors differ, e.g. {bad[0]})")
    model.load_state_dict(state)
    return str(folder)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--world", choices=("v1", "v2"), default="v1")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--per-class", type=int, default=None, help="renders per class (v1: 400 per shape×colour; v2: 40)")
    ap.add_argument("--held-out-per-class", type=int, default=None, help="held-out renders per class (v1: 20; v2: 3)")
    ap.add_argument("--resolution", type=int, default=32, help="image size (v2 only)")
    ap.add_argument("--caption-weight", type=float, default=0.5, help="v2: weight of the in-batch full-prompt loss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    ap.add_argument("--checkpoint-every", type=int, default=500, help="write checkpoint.pt every N steps (0: never)")
    ap.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt if it exists")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument(
        "--warm-start", type=Path, default=None, help="open_clip folder of the same architecture to start from (a second stage)"
    )
    args = ap.parse_args(argv)
    if args.world == "v1" and args.resolution != 32:
        ap.error("--resolution is a v2 option (v1 is 32x32)")
    if args.per_class is None:
        args.per_class = 400 if args.world == "v1" else 40
    if args.held_out_per_class is None:
        args.held_out_per_class = 20 if args.world == "v1" else 3
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    rng = training_setup(args.seed, args.threads)
    device = resolve_device(args.device)
    if args.world == "v1":
        train = make_renders(args.per_class, seed=args.seed + 101)
        held_out = make_renders(args.held_out_per_class, seed=args.seed + 202)
    else:
        from sdbench.world import data_v2

        train = data_v2.make_renders(data_v2.DataConfig(resolution=args.resolution, per_class=args.per_class), args.seed + 101)
        held_out = data_v2.make_renders(
            data_v2.DataConfig(resolution=args.resolution, per_class=args.held_out_per_class), args.seed + 202
        )
    tokenizer = toy_models.build_tokenizer(args.world)
    model, cfg = build_model(len(tokenizer), args.world, args.resolution)
    warm = None
    if args.warm_start is not None:
        warm = load_weights(model, args.warm_start)
        print(json.dumps({"warm_start": warm}), flush=True)
    model.to(device)
    tokens_v1 = tokenizer(
        base_prompts(), padding="max_length", max_length=toy_models.MAX_TOKENS, truncation=True, return_tensors="pt"
    ).input_ids.to(device)
    tokens_v2 = {k: v.to(device) for k, v in readout_tokens(tokenizer).items()} if args.world == "v2" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = Checkpoint(args.out)
    start_step, extra = 0, {}
    if args.resume and checkpoint.exists():
        start_step, extra = checkpoint.load({"model": model}, opt, rng)
        if extra.get("world") != args.world or extra.get("batch_size") != args.batch_size:
            raise SystemExit(f"error: {checkpoint.path} is a {extra.get('world')} run with batch {extra.get('batch_size')}")
        print(json.dumps({"resumed_from_step": start_step}), flush=True)
    log = TrainLog(args.out, resume_step=start_step if extra else None, seconds_before=extra.get("seconds", 0.0))
    for step in range(start_step, args.steps):
        warm = min(1.0, (step + 1) / 50)
        lr = args.lr * warm * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = [rng.randrange(len(train)) for _ in range(args.batch_size)]
        if args.world == "v1":
            x = augment(train.images[idx].float() / 255, train.alpha[idx].float() / 255, rng)
            img = F.normalize(model.encode_image((x.to(device) - 0.5) / 0.5), dim=-1)
            txt = F.normalize(model.encode_text(tokens_v1), dim=-1)
            loss = F.cross_entropy(model.logit_scale.exp().clamp(max=100) * img @ txt.T, labels(train, idx).to(device))
            parts = {}
        else:
            sigmas: list[float] = []
            x = augment(train.images[idx].float() / 255, train.alpha[idx].float() / 255, rng, blur_sigmas=sigmas)
            targets = labels_v2(train, idx, torch.tensor(sigmas))
            logits = attribute_logits(model, x.to(device), tokens_v2)
            parts = {
                k: F.cross_entropy(logits[k], targets[k].to(device), ignore_index=-1)
                if (targets[k] >= 0).any()
                else logits[k].sum() * 0
                for k in ATTRIBUTES
            }
            captions = [train.prompt(i).base for i in idx]
            unique = sorted(set(captions))
            ids = tokenizer(
                unique, padding="max_length", max_length=toy_models.MAX_TOKENS, truncation=True, return_tensors="pt"
            ).input_ids.to(device)
            img = F.normalize(model.encode_image((x.to(device) - 0.5) / 0.5), dim=-1)
            txt = F.normalize(model.encode_text(ids), dim=-1)
            caption_logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T  # [B, U]
            which = torch.tensor([unique.index(c) for c in captions], device=device)
            same = (which[:, None] == which[None, :]).float()  # text → image targets: all images of that caption
            parts["caption"] = 0.5 * (
                F.cross_entropy(caption_logits, which)
                + F.cross_entropy(caption_logits.T[which], same / same.sum(1, keepdim=True))
            )
            loss = sum(parts[k] for k in ATTRIBUTES) + args.caption_weight * parts["caption"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.add(loss=loss.item(), **{k: v.item() for k, v in parts.items()})
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            log.write(done, lr=lr)
        if args.checkpoint_every and (done % args.checkpoint_every == 0 or done == args.steps):
            checkpoint.save(
                done, {"model": model}, opt, rng, {"world": args.world, "batch_size": args.batch_size, "seconds": log.seconds}
            )
    if args.world == "v1":
        held = accuracy(model, tokenizer, held_out)
    else:
        held = accuracy_v2(model, tokens_v2, held_out)
        held["blurred_2px"] = accuracy_v2(model, tokens_v2, held_out, blur_sigma=2.0)
    save(model, cfg, tokenizer, args.out)
    summary = {
        "command": "python -m sdbench.world.train_evaluator " + " ".join(argv if argv is not None else sys.argv[1:]),
        "world": args.world,
        "steps": args.steps,
        "seconds": round(log.seconds, 1),
        "device": str(device),
        "final_loss": log.last.get("loss"),
        "held_out": held,
        "resumed_from_step": start_step or None,
        "warm_start": warm,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (args.out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
