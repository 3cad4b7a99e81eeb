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
from typing import ClassVar

import torch
from torch import Tensor, nn

from sdbench.cameras import Cameras
from sdbench.config import StepSchedule
from sdbench.errors import UserError
from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import (
    Linear,
    Weighting,
    anneal_bounds,
    denoising_step,
    grad_logs,
    guided_noise,
    noise_images,
    surrogate_loss,
    uniform,
    weight,
)
from sdbench.priors.base import TextConditioning
from sdbench.priors.guidance import PerpNeg, cfg_combine


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
        """CFG scale s of the frozen prior (diffusers form ε_u + s(ε_c − ε_u), uncond "")."""
        lora_rank: int = 4
        """Rank of the LoRA on every attention projection of φ' (diffusers' LoRAAttnProcessor default)."""
        lora_lr: float = 1e-4
        """AdamW learning rate of the LoRA and camera weights (both official codes)."""
        lora_betas: tuple[float, float] = (0.9, 0.999)
        """AdamW betas of the LoRA optimiser (torch's default)."""
        lora_eps: float = 1e-8
        """AdamW epsilon of the LoRA optimiser (torch's default)."""
        camera_condition: bool = True
        """Condition φ' on the camera (an MLP of the flattened c2w added to the timestep embedding)."""
        camera_dropout: float = 0.1
        """Probability of zeroing the camera in the LoRA update."""
        lora_cfg_scale: float = 1.0
        """Camera CFG of ε_φ' (threestudio); 1.0 means one camera-conditional forward (official)."""
        perp_neg: bool = False
        """Perp-Neg guidance (view-dependent negatives perpendicular to the positive direction, NFE 4 per
        view) for the frozen prior's CFG (not the LoRA's camera CFG): :mod:`sdbench.priors.guidance`."""
        perp_neg_options: PerpNeg = PerpNeg()
        """Perp-Neg's weight curves and overhead threshold (used when ``perp_neg`` is on)."""
        t_range: tuple[float, float] = (0.02, 0.98)
        """t ~ U{⌊1000 p_min⌋, …, ⌊1000 p_max⌋}."""
        t_max: Linear | None = Linear(0.98, 0.5, 5000, 5000)
        """Schedule of p_max in steps: 0.98, then 0.5 from step 5000 (threestudio's [5000, 0.98, 0.5, 5001])."""
        weighting: Weighting = "sds"
        """w(t): ``sds`` = 1 − ᾱ_t."""
        lora_updates: int = 1
        """LoRA optimiser steps per optimisation step (K in the paper; 1)."""
        grad_clip: float | None = None
        """Clamp g element-wise to [−c, c] (None: no clamp)."""
        step_schedule: ClassVar[StepSchedule] = StepSchedule(25_000, ("t_max.from_step", "t_max.to_step"))
        """The step counts above are the paper's (the t_max switch at step 5000 of ProlificDreamer's 25k steps);
        a trial scales them to its own length (``TrialConfig.scale_schedules``)."""

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
        self._optimizer = torch.optim.AdamW(
            [p for p in unet.parameters() if p.requires_grad], lr=cfg.lora_lr, betas=cfg.lora_betas, eps=cfg.lora_eps
        )

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
            return cfg_combine(e_c, e_0, self.cfg.lora_cfg_scale)

    def lora_step(self, z: Tensor, text: TextConditioning, cameras: Cameras) -> float:
        """One AdamW step of the LoRA copy's denoising loss on the detached renders ``z``, each view's
        camera zeroed with probability ``camera_dropout``."""
        B = z.shape[0]
        cam = self._camera(cameras)

        def dropped_camera() -> dict[str, Tensor]:
            if not cam:
                return {}
            keep = (uniform((B,), z.device, self.generator) >= self.cfg.camera_dropout).to(z.dtype)
            return {"class_labels": cam["class_labels"] * keep[:, None]}

        self.unet_lora.train()
        loss = denoising_step(
            self.prior,
            self._optimizer,
            z,
            text.embed(text.prompt, B),
            self.generator,
            network=self.unet_lora,
            condition=dropped_camera,
        )
        self.unet_lora.eval()
        return loss

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
        perp_neg = cfg.perp_neg_options if cfg.perp_neg else None
        eps_pre, _, _ = guided_noise(self.prior, n.x_t, n.t, text, cameras, text.uncond(B), cfg.cfg_scale, perp_neg)
        eps_lora = self.lora_eps(n.x_t, n.t, text, cameras)
        g = self.prepare_grad(weight(cfg.weighting, self.prior.alphas_cumprod, n.t) * (eps_pre - eps_lora), cfg.grad_clip)
        lora_loss = float("nan")
        for _ in range(cfg.lora_updates):
            lora_loss = self.lora_step(n.z.detach(), text, cameras)
        return LossOutput(surrogate_loss(n.z, g), {**grad_logs(g, n.t), "lora_loss": lora_loss})
