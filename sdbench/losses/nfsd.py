"""NFSD: Noise-Free Score Distillation (Katzir et al., ICLR 2024, arXiv:2310.17590).

The unconditional prediction is split into a domain and a noise part, ε_∅ = δ_D + δ_N, and only
the domain part and the condition direction are distilled (paper Eqs. 9–11)::

    δ_C = ε_y − ε_∅
    δ_D = ε_∅              if t < 200
          ε_∅ − ε_neg      otherwise
    g   = w(t) · (δ_D + s · δ_C)

with s = 7.5, the negative prompt p_neg = "unrealistic, blurry, low quality, out of focus, ugly,
low contrast, dull, dark, low-resolution, gloomy", w(t) = 1 − ᾱ_t and t ~ U{20, …, 980}. The
sampled noise ε never enters g. NFE per view and step: 3 (ε_y, ε_∅, ε_neg in one batched call); 2
when every t of the batch is below 200 (ε_neg is not needed). No trainable parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sdbench.cameras import Cameras
from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import Weighting, grad_logs, noise_images, surrogate_loss, weight
from sdbench.priors.base import TextConditioning

NEGATIVE = "unrealistic, blurry, low quality, out of focus, ugly, low contrast, dull, dark, low-resolution, gloomy"


class NFSD(Loss):
    """Noise-Free Score Distillation: w(t)(delta_D + s delta_C), delta_D noise-free."""

    @dataclass(frozen=True)
    class Config:
        guidance_scale: float = 7.5
        """s, the scale of the condition direction δ_C."""
        negative_prompt: str = NEGATIVE
        domain_cutoff: int = 200
        """δ_D = ε_∅ for t below this timestep, ε_∅ − ε_neg otherwise."""
        t_range: tuple[float, float] = (0.02, 0.98)
        weighting: Weighting = "sds"
        grad_clip: float | None = None

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
        n = noise_images(self.prior, images, cfg.t_range, t, noise, self.generator)
        B = n.z.shape[0]
        late = n.t >= cfg.domain_cutoff
        if bool(late.any()):
            eps_y, eps_0, eps_neg = self.prior.predict_noise(
                n.x_t, n.t, [text.cond(cameras), text.uncond(B), text.embed(cfg.negative_prompt, B)]
            )
            delta_D = torch.where(late.view(-1, 1, 1, 1), eps_0 - eps_neg, eps_0)
        else:
            eps_y, eps_0 = self.prior.predict_noise(n.x_t, n.t, [text.cond(cameras), text.uncond(B)])
            delta_D = eps_0
        delta_C = eps_y - eps_0
        g = self.prepare_grad(
            weight(cfg.weighting, self.prior.alphas_cumprod, n.t) * (delta_D + cfg.guidance_scale * delta_C), cfg.grad_clip
        )
        return LossOutput(
            surrogate_loss(n.z, g), {**grad_logs(g, n.t), "delta_D_norm": delta_D.flatten(1).norm(dim=1).mean().item()}
        )
