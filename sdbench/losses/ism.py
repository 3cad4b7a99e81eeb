"""ISM: Interval Score Matching (LucidDreamer, Liang et al., CVPR 2024, arXiv:2311.11284).

SDS's target ε is replaced by the prior's own prediction at an earlier point of a deterministic
DDIM inversion trajectory (paper Eq. 14)::

    g = w(t) · (ε_cfg(x_t, t, y) − ε_φ(x_s, s, ∅)),      s = t − δ_T

One DDIM inversion hop τ → τ' (η = 0) with x̂_0(x, τ, ε̂) = (x − √(1−ᾱ_τ) ε̂) / √ᾱ_τ is
x_τ' = √ᾱ_τ' x̂_0 + √(1−ᾱ_τ') ε̂, with ε̂ = ε_φ(x_τ, τ, ∅). Per step (official ``train_step``):

1. t: one value for all views, t ~ U{20, …, 499 + ⌊480 r⌋}, r = 1 − min(step / 1500, 1);
   δ_T = ⌊50 + 50 r⌋ (100 → 50); s = max(t − δ_T, 0);
2. x_0' = √ᾱ_0 z + √(1−ᾱ_0) ε;
3. x_0' → x_s in hops of at most δ_S = 200 (τ = 0, 200, …, s), n_s = max(1, ⌈s / 200⌉) ≤ 5;
4. x_s → x_t in one hop with ε̂_s = ε_φ(x_s, s, ∅), which is also the target in g;
5. ε_cfg = ε_neg + 7.5 (ε_y − ε_neg) at (x_t, t): the "unconditional" slot holds the negative prompt.

w(t) = √((1−ᾱ_t)/ᾱ_t), then g ← 0.1 g (``lambda_guidance``), as in the official code.
Not reproduced: the 20 % depth-as-latent steps and the 0.1 noise offset (render-pipeline details).
NFE per view and step: n_s + 1 + 2 = 4…8. No trainable parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from sdbench.cameras import Cameras
from sdbench.config import StepSchedule
from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import (
    Weighting,
    ddim_hop,
    grad_logs,
    guided_noise,
    randn_like,
    sample_timesteps,
    surrogate_loss,
    weight,
)
from sdbench.priors.base import TextConditioning
from sdbench.priors.guidance import PerpNeg

NEGATIVE = "unrealistic, blurry, low quality, out of focus, ugly, low contrast, dull, dark, low-resolution, oversaturation."


class ISM(Loss):
    """Interval Score Matching (LucidDreamer): w(t)(eps_cfg(x_t) - eps_0(x_s)) on a DDIM-inversion path."""

    @dataclass(frozen=True)
    class Config:
        guidance_scale: float = 7.5
        negative_prompt: str = NEGATIVE
        inverse_text: str = ""
        """Prompt of the inversion and of the target ε_φ(x_s, s, ·) (official default: empty)."""
        t_min: int = 20
        t_max_start: int = 979
        t_max_end: int = 499
        delta_t_start: int = 100
        delta_t_end: int = 50
        anneal_steps: int = 1500
        """t's upper end and δ_T anneal linearly over this many steps (r = 1 − step/anneal_steps); scaled to the
        trial's length (30 % of it)."""
        delta_s: int = 200
        """Stride of the multi-step inversion x_0 → x_s."""
        max_inversion_hops: int = 5
        weighting: Weighting = "sigma_over_alpha"
        lambda_guidance: float = 0.1
        grad_clip: float | None = None
        perp_neg: bool = False
        """Perp-Neg guidance (view-dependent negatives perpendicular to the positive direction, NFE 4 per
        view) for ε_cfg at x_t, ``negative_prompt`` in the unconditional slot: :mod:`sdbench.priors.guidance`."""
        perp_neg_options: PerpNeg = PerpNeg()
        """Perp-Neg's weight curves and overhead threshold (used when ``perp_neg`` is on)."""
        step_schedule: ClassVar[StepSchedule] = StepSchedule(5000, ("anneal_steps",))
        """The step counts above are the paper's (t and δ_T anneal over 1500 of LucidDreamer's 5000 steps);
        a trial scales them to its own length (``TrialConfig.scale_schedules``)."""

    def schedule(self, step: int) -> tuple[int, int, int]:
        """(t_min, t_max, δ_T) at ``step``."""
        cfg = self.cfg
        r = 1 - min(step / cfg.anneal_steps, 1.0)
        t_max = cfg.t_max_end + math.floor((cfg.t_max_start - cfg.t_max_end) * r)
        delta_t = math.floor(cfg.delta_t_end + (cfg.delta_t_start - cfg.delta_t_end) * r)
        return cfg.t_min, t_max, delta_t

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
        cfg, prior = self.cfg, self.prior
        z = prior.encode_images(images)
        B, device = z.shape[0], z.device
        t_min, t_max, delta_t = self.schedule(step)
        if t is None:
            t = sample_timesteps(1, t_min, t_max, device=device, generator=self.generator).expand(B)
        t = t.to(device)
        noise = randn_like(z, self.generator) if noise is None else noise
        s = (t - delta_t).clamp(min=0)
        inv = text.embed(cfg.inverse_text, B)
        zero = torch.zeros_like(t)
        with torch.no_grad():
            x = prior.add_noise(z.detach(), zero, noise)  # x_0'
            hops = max(1, math.ceil(int(s.max()) / cfg.delta_s))
            if hops > cfg.max_inversion_hops:
                raise ValueError(
                    f"s = {int(s.max())} needs {hops} inversion hops > max_inversion_hops = {cfg.max_inversion_hops}"
                )
            tau = zero
            for _ in range(hops):  # x_0' → x_s
                tau_next = torch.minimum(tau + cfg.delta_s, s)
                (eps_hat,) = prior.predict_noise(x, tau, [inv])
                x = ddim_hop(prior, x, tau, tau_next, eps_hat)
                tau = tau_next
            (eps_s,) = prior.predict_noise(x, s, [inv])  # target ε_φ(x_s, s, ∅)
            x_t = ddim_hop(prior, x, s, t, eps_s)
            perp_neg = cfg.perp_neg_options if cfg.perp_neg else None
            neg = text.embed(cfg.negative_prompt, B)
            eps_cfg, _, _ = guided_noise(prior, x_t, t, text, cameras, neg, cfg.guidance_scale, perp_neg)
        g = cfg.lambda_guidance * weight(cfg.weighting, prior.alphas_cumprod, t) * (eps_cfg - eps_s)
        g = self.prepare_grad(g, cfg.grad_clip)
        return LossOutput(surrogate_loss(z, g), {**grad_logs(g, t), "s": s.float().mean().item(), "inversion_hops": float(hops)})
