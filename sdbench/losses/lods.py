"""LODS: Learn to Optimize Denoising Scores (Yang et al., ECCV 2024, arXiv:2312.04820), embedding variant.

The 3D model and a learnable part of the prior are optimised together: here the unconditional
embedding α (the paper's embedding-based configuration; its LoRA-based one is not implemented), used
as the unconditional slot of CFG and trained with the ordinary diffusion loss on the renders, so that
the guided prior is evaluated on images it has been fitted to. Per step, with x_t = √ᾱ_t z + √(1−ᾱ_t) ε::

    g = w(t) · [ε_c + ((1 − s)/s) · ε_α − ε/s] = (w(t)/s) · (CFG_s(ε_c, ε_α) − ε)

    L_α = mean ‖ε_φ(x_t′; α, t′) − ε′‖²,  x_t′ = √ᾱ_t′ sg(z) + √(1−ᾱ_t′) ε′,  t′ ~ U{0, …, 999}

* ε_c = ε_φ(x_t; y_vd, t) (view-dependent prompt), ε_α = ε_φ(x_t; α, t), both without gradient, one
  batched CFG call; CFG_s(ε_c, ε_α) = ε_α + s(ε_c − ε_α) (diffusers form); s = 1000, so
  g ≈ w(ε_c − 0.999 ε_α − 0.001 ε); w(t) = 1 − ᾱ_t.
* α: one ``[L, D]`` tensor shared by all views, initialised to the negative prompt's embedding
  ("" for NeRF); after g is formed (g uses the pre-step α), one AdamW step on L_α, whose gradient
  flows through the frozen network into α only (lr 1e-5, betas (0.9, 0.99), eps 1e-15, weight decay
  0.01: torch's default, which the NeRF config leaves in place).
* t ~ U{20, …, 980} → U{20, …, 500} from step 10000 (NeRF config ``max_step_percent
  [10000, 0.98, 0.5, 10001]``).

Official code followed: ``yangxiaofeng/LODS`` at 74f3280,
``threestudio/models/guidance/lods_embedding_guidance.py``: ``compute_grad_embedding`` :326-375 (g at
:369), ``train_embedding`` :377-409 (L_α); ``configs/lods-ngp-embedding.yaml`` (s, t schedule, α's
AdamW group); paper appendix §1.1 (CFG 1000, embedding lr 1e-5 on T3Bench). The paper's equations were
read only at summary level (``shared/reference/losses-2.md`` §3, §9); the formulas above are the
official code's.

Implements the embedding-variant update above (g and L_α as in the official code, α trained by its
own AdamW inside the loss); does not reproduce the LoRA variant (LoRA scale 0.5, prompt "<new1>",
lr 5e-7), the 3DGS recipe (α lr 1e-4, weight decay 0, "a point cloud image" as the negative prompt,
t_max 0.55 after step 500), or SD 2.1-base's 77×1024 α as such: α has the prior's embedding shape
(16×64 = 1,024 numbers on the toy prior, 77×1024 = 78,848 on SD 2.1); the official code steps the 3D
model and α with one optimiser, here α has its own, stepped in the same optimisation step. No
Perp-Neg: neither the official code nor its configs use it, and its negatives would have to be taken
relative to the learned α in the unconditional slot, a combination no reference defines;
``loss.perp_neg=true`` is rejected.
NFE per view and step: 2 (the CFG pair) + 1 (α's training forward, with a backward through the network).
Trainable: α (in the checkpoint with its optimiser state).
"""

from __future__ import annotations

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
    noise_images,
    surrogate_loss,
    weight,
)
from sdbench.priors.base import TextConditioning


class LODS(Loss):
    """LODS, embedding variant: (w(t)/s)(CFG_s(eps_c, eps_alpha) - eps) with a learned unconditional embedding alpha."""

    @dataclass(frozen=True)
    class Config:
        cfg_scale: float = 1000.0
        """CFG scale s with α in the unconditional slot (diffusers form); g is scaled by 1/s."""
        negative_prompt: str = ""
        """Text whose embedding initialises α ("" in the NeRF config)."""
        alpha_lr: float = 1e-5
        """AdamW learning rate of α (NeRF config; the paper's T3Bench value)."""
        alpha_betas: tuple[float, float] = (0.9, 0.99)
        """AdamW betas of α (NeRF config)."""
        alpha_eps: float = 1e-15
        """AdamW epsilon of α (NeRF config)."""
        alpha_weight_decay: float = 0.01
        """AdamW weight decay of α (torch's default, left in place by the NeRF config; the 3DGS system sets 0)."""
        alpha_updates: int = 1
        """α optimiser steps per optimisation step (1)."""
        t_range: tuple[float, float] = (0.02, 0.98)
        """t ~ U{⌊1000 p_min⌋, …, ⌊1000 p_max⌋}."""
        t_max: Linear | None = Linear(0.98, 0.5, 10000, 10000)
        """Schedule of p_max in steps: 0.98, then 0.5 from step 10000 (NeRF config)."""
        weighting: Weighting = "sds"
        """w(t): ``sds`` = 1 − ᾱ_t."""
        grad_clip: float | None = None
        """Clamp g element-wise to [−c, c] (None: no clamp, as the official config)."""
        perp_neg: bool = False
        """Perp-Neg: not available (no reference code; its unconditional slot is the learned α). True is
        rejected with a UserError."""
        step_schedule: ClassVar[StepSchedule] = StepSchedule(25_000, ("t_max.from_step", "t_max.to_step"))
        """The step counts above are the paper's (the t_max switch at step 10000 of the 25k-step NeRF config);
        a trial scales them to its own length (``TrialConfig.scale_schedules``)."""

    def __init__(self, cfg: LODS.Config, prior):
        if cfg.perp_neg:
            raise UserError(
                "lods has no Perp-Neg: no reference code combines it with LODS' learned unconditional embedding α "
                "(the slot Perp-Neg's negatives are measured from); drop loss.perp_neg"
            )
        super().__init__(cfg, prior)
        with torch.no_grad():
            alpha0 = prior.encode_text([cfg.negative_prompt])[0].float()
        #: α ``[L, D]``: the learned unconditional embedding (float32 even under an fp16 prior).
        self.alpha = nn.Parameter(alpha0.clone())
        self._optimizer = torch.optim.AdamW(
            [self.alpha], lr=cfg.alpha_lr, betas=cfg.alpha_betas, eps=cfg.alpha_eps, weight_decay=cfg.alpha_weight_decay
        )

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"embedding": self._optimizer}

    def embedding_step(self, z: Tensor) -> float:
        """One AdamW step of α on L_α over the detached renders ``z [B, C, h, w]``; returns L_α."""
        with torch.enable_grad():
            alpha = self.alpha.expand(z.shape[0], -1, -1)
        return denoising_step(self.prior, self._optimizer, z, alpha, self.generator)

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
        cfg, s = self.cfg, self.cfg.cfg_scale
        n = noise_images(self.prior, images, anneal_bounds(cfg.t_range, cfg.t_max, step), t, noise, self.generator)
        cond = text.cond(cameras)
        alpha = self.alpha.detach().to(cond.dtype).expand(n.z.shape[0], -1, -1)
        eps_cfg, _, _ = self.prior.predict_cfg(n.x_t, n.t, cond, alpha, s)
        g = self.prepare_grad(weight(cfg.weighting, self.prior.alphas_cumprod, n.t) / s * (eps_cfg - n.noise), cfg.grad_clip)
        embedding_loss = float("nan")
        for _ in range(cfg.alpha_updates):
            embedding_loss = self.embedding_step(n.z)
        return LossOutput(surrogate_loss(n.z, g), {**grad_logs(g, n.t), "embedding_loss": embedding_loss})
