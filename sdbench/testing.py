"""Tiny random diffusers checkpoints built from configs, for tests and CPU benchmarks (no downloads).

``tiny_checkpoint(dir)`` writes a Stable-Diffusion-layout folder (model_index.json, unet,
scheduler, text_encoder, tokenizer and, with ``latent=True``, a VAE) whose networks are random
and small enough to run in milliseconds. Each component is seeded on its own, as in diffusers'
own tests, so the folder is the same for the same seed. ``tiny_evaluator(dir)`` does the same for
the toy evaluator (an open_clip folder).
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sdbench.priors.base import NFECounter, Prior
from sdbench.world import toy_models


def tiny_checkpoint(
    root: Path, latent: bool = False, resolution: int = 16, seed: int = 0, scheduler: str = "DDPMScheduler"
) -> Path:
    """Write a tiny random text-to-image checkpoint to ``root``; returns ``root``.

    Pixel space: UNet on ``3 × resolution²``. Latent space (``latent=True``): a 2-level VAE
    (factor 2) and a UNet on ``4 × (resolution/2)²``.
    """
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = Path(root)
    tokenizer = toy_models.build_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=toy_models.MAX_TOKENS,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        )
    )
    channels = 4 if latent else 3
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel(
        sample_size=resolution // 2 if latent else resolution,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    sched_cls = getattr(diffusers, scheduler)
    accepted = inspect.signature(sched_cls.__init__).parameters
    sched_kwargs = {k: v for k, v in toy_models.SCHEDULER_CONFIG.items() if k in accepted}
    sched = sched_cls(**sched_kwargs)
    toy_models.save_pipeline_folder(root, unet, text_encoder, tokenizer, sched)
    if latent:
        torch.manual_seed(seed + 2)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 16),
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            norm_num_groups=4,
            sample_size=resolution,
        )
        vae.save_pretrained(root / "vae", safe_serialization=True)
        import json

        index = json.loads((root / "model_index.json").read_text())
        index["vae"] = ["diffusers", "AutoencoderKL"]
        index["_class_name"] = "StableDiffusionPipeline"
        (root / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return root


def tiny_evaluator(root: Path, world: str = "v2", resolution: int = 32, seed: int = 0) -> Path:
    """Write a tiny random toy evaluator to ``root`` (an open_clip ``local-dir:`` folder laid out like the
    shipped one, with the toy tokenizer of ``world``); returns ``root``. Its read-outs are random but
    well-formed: for wiring tests, not for numbers."""
    import json

    import open_clip

    from sdbench.world import train_evaluator

    tokenizer = toy_models.build_tokenizer(world)
    cfg = json.loads(json.dumps(train_evaluator.EVALUATOR_CONFIG["model_cfg"]))
    cfg["embed_dim"] = 16
    cfg["vision_cfg"].update(image_size=resolution, patch_size=8, width=32, layers=1, head_width=16)
    cfg["text_cfg"].update(vocab_size=len(tokenizer), width=32, heads=2, layers=1)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    train_evaluator.save(model, cfg, tokenizer, Path(root))
    return Path(root)


def sd_alphas_cumprod(num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> torch.Tensor:
    """ᾱ_t of Stable Diffusion's ``scaled_linear`` schedule, ``[T]`` float32."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


class StubPrior(Prior):
    """A closed-form pixel-space "prior" for checking loss maths exactly.

    ε(x_t, t, e) = a·x_t + b·mean(e) + c·t/1000, with the embedding ``e`` ``[2, 4]`` of a prompt
    drawn from a generator seeded by the prompt's CRC32 (``""`` embeds to zeros). Every number a
    loss gets from it can be recomputed independently with :meth:`formula` and :meth:`embedding`.
    """

    name = "stub"
    a, b, c = 0.5, 0.8, 0.3

    @dataclass(frozen=True)
    class Config:
        resolution: int = 8

    def __init__(self, cfg: StubPrior.Config | None = None):
        self.cfg = cfg or self.Config()
        self.resolution = self.cfg.resolution
        self.latent_shape = (3, self.resolution, self.resolution)
        self.alphas_cumprod = sd_alphas_cumprod()
        self.device = torch.device("cpu")
        self.nfe = NFECounter()

    @staticmethod
    def embedding(prompt: str) -> torch.Tensor:
        if prompt == "":
            return torch.zeros(2, 4)
        g = torch.Generator().manual_seed(zlib.crc32(prompt.encode()))
        return torch.randn(2, 4, generator=g)

    @classmethod
    def formula(cls, x_t: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x_t.dim() - 1)
        return cls.a * x_t + cls.b * embeddings.mean(dim=(1, 2)).view(shape) + cls.c * (t.float() / 1000).view(shape)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        return torch.stack([self.embedding(p) for p in prompts])

    def unet_forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        embeddings: torch.Tensor,
        *,
        network: Any = None,
        raw: bool = False,
        **kwargs: Any,
    ) -> torch.Tensor:
        self.nfe.forward += x_t.shape[0]
        if torch.is_grad_enabled():
            self.nfe.with_grad += x_t.shape[0]
        if network is not None:
            return network(x_t, t, embeddings, **kwargs)
        return self.formula(x_t, t, embeddings)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.resolution, self.resolution):
            images = F.interpolate(images, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        return images * 2 - 1

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return ((z + 1) / 2).clamp(0, 1)

    def sample(
        self,
        prompts,
        num_steps=50,
        guidance_scale=7.5,
        scheduler="dpmsolver++",
        negative_prompt="",
        generator=None,
        batch_size=16,
    ):
        return torch.rand((len(prompts), 3, self.resolution, self.resolution), generator=generator)


def tiny_shap_e(root: Path, seed: int = 0) -> Path:
    """A tiny random diffusers ``ShapEPipeline`` folder (prior transformer, projecting text encoder,
    renderer, Heun scheduler; the toy word tokenizer), sized like diffusers' own fast tests."""
    from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEPipeline
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    width, time_dim, renderer_dim = 32, 32, 8
    tokenizer = toy_models.build_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModelWithProjection(
        CLIPTextConfig(
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
            hidden_size=width,
            projection_dim=width,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=toy_models.MAX_TOKENS,
        )
    )
    torch.manual_seed(seed + 1)
    prior = PriorTransformer(
        num_attention_heads=2,
        attention_head_dim=16,
        embedding_dim=time_dim,
        num_embeddings=32,
        embedding_proj_dim=width,
        time_embed_dim=4 * time_dim,
        num_layers=1,
        clip_embed_dim=2 * time_dim,
        additional_embeddings=0,
        time_embed_act_fn="gelu",
        norm_in_type="layer",
        encoder_hid_proj_type=None,
        added_emb_type=None,
    )
    torch.manual_seed(seed + 2)
    renderer = ShapERenderer(
        param_shapes=((renderer_dim, 93), (renderer_dim, 8), (renderer_dim, 8), (renderer_dim, 8)),
        d_latent=time_dim,
        d_hidden=renderer_dim,
        n_output=12,
        background=(0.1, 0.1, 0.1),
    )
    scheduler = HeunDiscreteScheduler(
        beta_schedule="exp",
        num_train_timesteps=1024,
        prediction_type="sample",
        use_karras_sigmas=True,
        clip_sample=True,
        clip_sample_range=1.0,
    )
    pipe = ShapEPipeline(
        prior=prior, text_encoder=text_encoder, tokenizer=tokenizer, shap_e_renderer=renderer, scheduler=scheduler
    )
    pipe.save_pretrained(root)
    return Path(root)
