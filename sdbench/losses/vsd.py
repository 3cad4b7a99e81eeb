"""VSD: Variational Score Distillation (ProlificDreamer, Wang et al. 2023, arXiv:2305.16213).

The rendered distribution's score is estimated by a LoRA-adapted, camera-conditioned copy φ' of the
prior's UNet, trained on the renders themselves (paper Eq. 9 and Algorithm 1)::

    g = w(t) · (ε_pre,cfg(x_t, t, y) − ε_φ'(x_t, t, y, c))

* ε_pre,cfg: the frozen prior with CFG (diffusers form, s = 7.5), view-dependent prompt, uncond "";
* ε_φ': the LoRA copy (rank 4 on every attention projection, up-projection zero-initialised, via
  peft) with a camera embedding, an MLP 16 → D → D (D: the UNet's time-embedding width, 1280 for SD)
  of the flattened camera-to-world matrix added to the timestep embedding (``class_embedding``);
  conditioned on the view-independent prompt; one forward (the official code's choice);
* w(t) = 1 − ᾱ_t; t ~ U{20, …, 980}, upper end 500 from step 5000;
* LoRA update, once per step on the detached render z̄: t' ~ U{0, …, 999}, ε' ~ N(0, I), target ε'
  (v for v-prediction priors), camera zeroed with probability 0.1, MSE, one AdamW step (lr 1e-4).

Simplification: φ' is a copy of *this* prior's UNet (official: SD 2.1 768 v-prediction beside
SD 2.1 base), so the toy prior works too. NFE per view and step: 2 (prior) + 1 (LoRA) + 1 (LoRA
training forward, with a backward). Trainable: the LoRA and camera weights (part of the checkpoint).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sdbench.cameras import Cameras
from sdbench.errors import UserError
from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import (
    Linear,
    Weighting,
    anneal_bounds,
    grad_logs,
    noise_images,
    randn_like,
    sample_timesteps,
    surrogate_loss,
    uniform,
    weight,
)
from sdbench.priors.base import TextConditioning


class CameraEmbedding(nn.Module):
    """Linear(16, D) → SiLU → Linear(D, D) on the flattened 4×4 camera-to-world matrix."""

    def __init__(self, width: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(16, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, c2w: Tensor) -> Tensor:
        return self.mlp(c2w.to(self.mlp[0].weight.dtype))


class VSD(Loss):
    """Variational Score Distillation (ProlificDreamer): w(t)(eps_pretrained,cfg - eps_lora)."""

    @dataclass(frozen=True)
    class Config:
        cfg_scale: float = 7.5
        lora_rank: int = 4
        lora_lr: float = 1e-4
        camera_condition: bool = True
        camera_dropout: float = 0.1
        """Probability of zeroing the camera in the LoRA update."""
        lora_cfg_scale: float = 1.0
        """Camera CFG of ε_φ' (threestudio); 1.0 means one camera-conditional forward (official)."""
        t_range: tuple[float, float] = (0.02, 0.98)
        t_max: Linear | None = Linear(0.98, 0.5, 5000, 5000)
        weighting: Weighting = "sds"
        lora_updates: int = 1
        """LoRA optimiser steps per optimisation step (K in the paper; 1)."""
        grad_clip: float | None = None

    def __init__(self, cfg: VSD.Config, prior):
        super().__init__(cfg, prior)
        if not hasattr(prior, "unet"):
            raise UserError("VSD needs a prior with a diffusers UNet (its LoRA copy is made from it)")
        from peft import LoraConfig

        unet = copy.deepcopy(prior.unet).requires_grad_(False)
        unet.add_adapter(
            LoraConfig(
                r=cfg.lora_rank,
                lora_alpha=cfg.lora_rank,
                init_lora_weights=True,
                target_modules=["to_q", "to_k", "to_v", "to_out.0"],
            )
        )
        if cfg.camera_condition:
            unet.class_embedding = CameraEmbedding(unet.time_embedding.linear_2.out_features).to(prior.device)
        for p in unet.parameters():  # LoRA and camera weights train in float32 even under an fp16 prior
            if p.requires_grad:
                p.data = p.data.float()
        self.unet_lora = unet
        self._optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=cfg.lora_lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"lora": self._optimizer}

    def _camera(self, cameras: Cameras) -> dict[str, Tensor]:
        if not self.cfg.camera_condition:
            return {}
        return {"class_labels": cameras.c2w.reshape(len(cameras), 16).to(self.prior.device)}

    def lora_eps(self, x_t: Tensor, t: Tensor, text: TextConditioning, cameras: Cameras) -> Tensor:
        """ε_φ'(x_t, t, y, c) (no gradient), with camera CFG when ``lora_cfg_scale`` ≠ 1."""
        emb = text.embed(text.prompt, x_t.shape[0])
        cam = self._camera(cameras)
        with torch.no_grad():
            if self.cfg.lora_cfg_scale == 1.0 or not cam:
                return self.prior.unet_forward(x_t, t, emb, network=self.unet_lora, **cam)
            both = self.prior.unet_forward(
                torch.cat([x_t, x_t]),
                torch.cat([t, t]),
                torch.cat([emb, emb]),
                network=self.unet_lora,
                class_labels=torch.cat([cam["class_labels"], torch.zeros_like(cam["class_labels"])]),
            )
            e_c, e_0 = both.chunk(2)
            return e_0 + self.cfg.lora_cfg_scale * (e_c - e_0)

    def lora_step(self, z: Tensor, text: TextConditioning, cameras: Cameras) -> float:
        """One AdamW step of the LoRA copy's denoising loss on the detached renders ``z``."""
        B = z.shape[0]
        self.unet_lora.train()
        with torch.enable_grad():
            t = sample_timesteps(B, 0, self.prior.num_train_timesteps - 1, device=z.device, generator=self.generator)
            noise = randn_like(z, self.generator)
            x_t = self.prior.add_noise(z, t, noise)
            cam = self._camera(cameras)
            if cam:
                keep = (uniform((B,), z.device, self.generator) >= self.cfg.camera_dropout).to(z.dtype)
                cam = {"class_labels": cam["class_labels"] * keep[:, None]}
            pred = self.prior.unet_forward(x_t, t, text.embed(text.prompt, B), network=self.unet_lora, raw=True, **cam)
            loss = (pred - self.prior.network_target(z, noise, t)).pow(2).mean()
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._optimizer.step()
        self.unet_lora.eval()
        return loss.item()

    def forward(
        self,
        images: Tensor,
        text: TextConditioning,
        cameras: Cameras,
        step: int,
        *,
        t: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> LossOutput:
        cfg = self.cfg
        n = noise_images(self.prior, images, anneal_bounds(cfg.t_range, cfg.t_max, step), t, noise, self.generator)
        B = n.z.shape[0]
        eps_pre, _, _ = self.prior.predict_cfg(n.x_t, n.t, text.cond(cameras), text.uncond(B), cfg.cfg_scale)
        eps_lora = self.lora_eps(n.x_t, n.t, text, cameras)
        g = self.prepare_grad(weight(cfg.weighting, self.prior.alphas_cumprod, n.t) * (eps_pre - eps_lora), cfg.grad_clip)
        lora_loss = float("nan")
        for _ in range(cfg.lora_updates):
            lora_loss = self.lora_step(n.z.detach(), text, cameras)
        return LossOutput(surrogate_loss(n.z, g), {**grad_logs(g, n.t), "lora_loss": lora_loss})
