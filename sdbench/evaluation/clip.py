"""CLIP models through open_clip, strictly offline: one code path for the toy evaluator and real CLIP.

Two ways to name a model:

* ``local-dir:/path``: an open_clip folder (``open_clip_config.json`` + ``open_clip_model.safetensors``
  and, for a Hugging Face tokenizer, its files). The toy evaluator ships in this form.
* an architecture and a local checkpoint file, e.g. ``ViT-L-14`` with ``pretrained=/path/to/open_clip_pytorch_model.bin``.

CLIP score (Hessel et al. 2021, as used by DreamMapping): ``100 · max(cos(E_img(x), E_txt(y)), 0)``.
Images are ``[B, 3, H, W]`` in [0, 1]; they are resized to the model's input size (bicubic,
antialiased) and normalised with the model's mean and std.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from sdbench.cameras import CameraConfig
from sdbench.errors import UserError
from sdbench.evaluation.base import EvalContext, Metric
from sdbench.world.evaluator import EVALUATOR_DIR


class ClipScorer:
    """An open_clip model with its tokenizer and preprocessing, in eval mode, gradients off."""

    def __init__(self, model, tokenizer, device: torch.device | str = "cpu"):
        self.model = model.to(device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", getattr(model.visual, "image_size", 224))
        self.size = tuple(size) if isinstance(size, (list, tuple)) else (int(size), int(size))
        self.mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), device=self.device).view(1, 3, 1, 1)
        self._text_cache: dict[str, Tensor] = {}

    @classmethod
    def load(cls, name: str, pretrained: str | None = None, device: torch.device | str = "cpu") -> ClipScorer:
        """Load ``local-dir:/path``, or architecture ``name`` with a local checkpoint file ``pretrained``."""
        import open_clip

        if name.startswith("local-dir:"):
            folder = Path(name[len("local-dir:") :])
            if not (folder / "open_clip_config.json").is_file():
                raise UserError(
                    f"CLIP folder {folder} not found (it needs open_clip_config.json and open_clip_model.safetensors)"
                )
            model = open_clip.create_model(name, device="cpu")
            tokenizer = open_clip.get_tokenizer(name)
        else:
            if not pretrained or not Path(pretrained).expanduser().is_file():
                raise UserError(
                    f"CLIP weights for {name} not found at {pretrained or '(no path given)'}; "
                    "download the open_clip checkpoint file elsewhere and point the metric's config at it"
                )
            model = open_clip.create_model(name, pretrained=str(Path(pretrained).expanduser()), device="cpu")
            tokenizer = open_clip.get_tokenizer(name)
        return cls(model, tokenizer, device)

    # ---------------------------------------------------------------- encode
    def preprocess(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in [0, 1] → normalised model input ``[B, 3, S, S]``."""
        x = images.to(self.device, torch.float32)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        return (x - self.mean) / self.std

    def encode_images(self, images: Tensor) -> Tensor:
        """Unit-norm image embeddings ``[B, D]``."""
        return F.normalize(self.model.encode_image(self.preprocess(images)).float(), dim=-1)

    def encode_text(self, prompts: Sequence[str]) -> Tensor:
        """Unit-norm text embeddings ``[N, D]`` (cached per prompt)."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if missing:
            tokens = self.tokenizer(list(missing)).to(self.device)
            emb = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
            self._text_cache.update(zip(missing, emb))
        return torch.stack([self._text_cache[p] for p in prompts])

    # ---------------------------------------------------------------- scores
    @torch.no_grad()
    def score(self, images: Tensor, prompt: str) -> Tensor:
        """CLIP score of each image against one prompt, ``[B]``: 100 · max(cos, 0)."""
        cos = self.encode_images(images) @ self.encode_text([prompt])[0]
        return 100 * cos.clamp(min=0)

    @torch.no_grad()
    def probabilities(self, images: Tensor, prompts: Sequence[str]) -> Tensor:
        """Zero-shot class probabilities ``[B, len(prompts)]`` (softmax of scaled cosine logits)."""
        scale = self.model.logit_scale.exp().float() if hasattr(self.model, "logit_scale") else torch.tensor(100.0)
        return (scale * self.encode_images(images) @ self.encode_text(prompts).T).softmax(dim=-1)


# --------------------------------------------------------------------------- metrics

#: The documented real models: open_clip architecture, pretrained tag, and where sdbench looks.
REAL_MODELS = {
    "ViT-L-14": ("openai", "SDBENCH_CLIP_VIT_L14"),
    "ViT-bigG-14": ("laion2b_s39b_b160k", "SDBENCH_CLIP_VIT_BIGG14"),
}


@lru_cache(maxsize=4)
def _cached_scorer(name: str, pretrained: str | None, device: str) -> ClipScorer:
    return ClipScorer.load(name, pretrained, device)


class ClipScore(Metric):
    """CLIP score of random views, 100*max(cos, 0) (toy evaluator for toy prompts, else ViT-L/14)."""

    metric_name = "clip"

    @dataclass(frozen=True)
    class Config:
        model: str = "auto"
        """'auto' (the toy evaluator for toy-world prompts, else ViT-L-14), 'toy', 'ViT-L-14', 'ViT-bigG-14',
        or 'local-dir:/path' to any open_clip folder."""
        checkpoint: str = ""
        """Local open_clip checkpoint file of a real model; empty: the model's environment variable."""
        views: int = 16
        """Random views scored (from the trial seed)."""
        cameras: CameraConfig = CameraConfig()

    def resolve(self, prompt: str) -> tuple[str, str | None, str]:
        """(open_clip name, checkpoint path or None, label of the reported number) for this prompt."""
        model = self.cfg.model
        if model == "auto":
            from sdbench.world.grammar import parse

            try:
                parse(prompt)
                model = "toy"
            except ValueError:
                model = "ViT-L-14"
        if model == "toy":
            return f"local-dir:{EVALUATOR_DIR}", None, "toy"
        if model.startswith("local-dir:"):
            return model, None, os.path.basename(model.rstrip("/")).replace("-", "_").lower()
        env = REAL_MODELS.get(model, (None, ""))[1]
        return model, self.cfg.checkpoint or os.environ.get(env, "") or None, model.replace("-", "_").lower()

    def applies(self, ctx: EvalContext) -> str | None:
        name, checkpoint, _ = self.resolve(ctx.prompt)
        if name.startswith("local-dir:"):
            folder = name[len("local-dir:") :]
            return None if os.path.isfile(os.path.join(folder, "open_clip_config.json")) else f"no open_clip folder at {folder}"
        if not checkpoint or not os.path.isfile(checkpoint):
            env = REAL_MODELS.get(name, (None, "SDBENCH_CLIP_CHECKPOINT"))[1]
            tag = REAL_MODELS.get(name, ("",))[0]
            return (
                f"{name} weights not found; download open_clip's {name} ({tag}) checkpoint file elsewhere "
                f"and set {env}=/path/to/it"
            )
        return None

    @torch.no_grad()
    def compute(self, ctx: EvalContext) -> dict[str, float]:
        name, checkpoint, label = self.resolve(ctx.prompt)
        scorer = _cached_scorer(name, checkpoint, "cuda" if ctx.prior.device.type == "cuda" else "cpu")
        _, out = ctx.random_views(self.cfg.views, self.cfg.cameras)
        rgb = out.rgb
        return {f"{self.metric_name}_{label}": scorer.score(rgb, ctx.prompt).mean().item()}


class ClipScoreL14(ClipScore):
    """CLIP score with open_clip ViT-L/14 (openai) from a local checkpoint."""

    @dataclass(frozen=True)
    class Config(ClipScore.Config):
        model: str = "ViT-L-14"


class ClipScoreBigG14(ClipScore):
    """CLIP score with open_clip ViT-bigG-14 (laion2b_s39b_b160k) from a local checkpoint."""

    @dataclass(frozen=True)
    class Config(ClipScore.Config):
        model: str = "ViT-bigG-14"
