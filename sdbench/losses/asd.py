"""ASD: Asynchronous Score Distillation (ScaleDreamer, Ma et al., ECCV 2024, arXiv:2407.02040).

SDS's noise term is replaced by the prior's own conditional prediction at a slightly later
timestep t⁺ > t, built from the same noise draw (the paper's ASD objective; its equation numbers
and Δt distribution were not re-read here, ``shared/reference/losses-2.md`` §2, §9)::

    g = w(t) · (Ĉ_s(x_t; y, t) − ε_φ(x_t⁺; y, t⁺)),   x_t = α_t z + σ_t ε,   x_t⁺ = α_t⁺ z + σ_t⁺ ε

with one ε ~ N(0, I) for both, Ĉ_s = ε_∅ + s(ε_y − ε_∅) (diffusers form, s = 7.5), the second term
conditional only (no CFG), w(t) = 1 − ᾱ_t, and

    t⁺ = clamp(t + ⌊u · clamp(η(t − t_min), 0, T − 1 − t)⌋, 1, T − 1),   u ~ U[0, 1) per view,

η = 0.1 (``plus_ratio``), t_min the current lower end of t's range. t ~ U{t_min, …, t_max} per
view with both ends linear over the run: [500, 980] → [20, 500] over 25k steps (MVDream's and
VSD's schedules). Official code: ``theEricMa/ScaleDreamer:
threestudio/models/guidance/stable_diffusion_asd_guidance.py`` at 23f433f (``__call__`` :211-292, the live
``get_t_plus`` :294-316, ``get_eps`` :333-428) with ``configs/single-prompt_benchmark/asd_sd_nerf.yaml``
(:85-128; ``asd_sd_nerf_long.yaml``, which the run script names, has the same guidance settings).
All three predictions run as one batched network call, as in the official ``get_eps``.

With ``perp_neg`` (official ``get_eps`` :355-366, 413-423) the first term is Perp-Neg's
Ĉ = ε_∅ + s(Δ_pos + Σ_i k·w_i Δ_i^⊥) (:mod:`sdbench.priors.guidance`, w_i threestudio's weights) with
k = ``perp_neg_scale``, the official −``guidance_perp_neg`` (0.5 in the shipped config: half of
threestudio's negative weights, same sign); the batch adds the two negatives at (x_t, t), and the t⁺
term takes Perp-Neg's interpolated positive embedding, still without CFG. NFE per view and step: 3;
5 with ``perp_neg`` (one call). No trainable parts.

Implements the official ASD gradient with the shipped single-prompt SD NeRF settings (s = 7.5,
η = 0.1, random shift u ~ U[0, 1), both t bounds annealed over 25k steps); the Δt distribution is
the code's (uniform up to η(t − t_min), not re-checked against the paper). Perp-Neg is off by default
(sdbench compares the losses themselves; Perp-Neg is its own arm): the official config enables it
with half of threestudio's negative weights (``guidance_perp_neg`` −0.5); ``--set loss.perp_neg=true``
reproduces it (``perp_neg_scale`` defaults to that 0.5; 1 gives threestudio's weights, as on every
other loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from sdbench.cameras import Cameras
from sdbench.config import StepSchedule
from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import (
    Linear,
    Weighting,
    grad_logs,
    noise_images,
    surrogate_loss,
    timestep_bounds,
    uniform,
    weight,
)
from sdbench.priors.base import TextConditioning
from sdbench.priors.guidance import PerpNeg, cfg_combine


class ASD(Loss):
    """Asynchronous Score Distillation (ScaleDreamer): w(t)(eps_cfg(x_t, t) - eps_y(x_t+, t+)), one noise."""

    @dataclass(frozen=True)
    class Config:
        cfg_scale: float = 7.5
        """CFG scale s of the first term (diffusers form, as the official code); the t⁺ term has none."""
        plus_ratio: float = 0.1
        """η: the shift t⁺ − t is at most η·(t − t_min) (official ``plus_ratio`` 0.1)."""
        plus_random: bool = True
        """Scale the shift by u ~ U[0, 1) per view (the shipped configs; the class default is False)."""
        t_min: Linear = Linear(0.5, 0.02, 0, 25_000)
        """Lower end of t (fraction of T) over steps: 0.5 → 0.02 over 25k steps (``min_step_percent``)."""
        t_max: Linear = Linear(0.98, 0.5, 0, 25_000)
        """Upper end of t (fraction of T) over steps: 0.98 → 0.5 over 25k steps (``max_step_percent``)."""
        weighting: Weighting = "sds"
        """w(t), evaluated at t: 'sds' = 1 − ᾱ_t (official), 'uniform', 'fantasia3d', 'sigma_over_alpha'."""
        grad_clip: float | None = None
        """Clamp each element of g to [−c, c] (None: off, as the official config)."""
        perp_neg: bool = False
        """Perp-Neg guidance in the first term (view-dependent negatives perpendicular to the positive
        direction, NFE 5 per view): :mod:`sdbench.priors.guidance`."""
        perp_neg_options: PerpNeg = PerpNeg()
        """Perp-Neg's weight curves and overhead threshold (used when ``perp_neg`` is on)."""
        perp_neg_scale: float = 0.5
        """k: Perp-Neg's negative weights are k·w_i (official −``guidance_perp_neg``: 0.5 in the shipped
        config, half of threestudio's; 1: threestudio's weights, as every other loss uses)."""
        step_schedule: ClassVar[StepSchedule] = StepSchedule(25_000, ("t_min.to_step", "t_max.to_step"))
        """The step counts above are the paper's (both ends of t anneal over the whole 25k-step run);
        a trial scales them to its own length (``TrialConfig.scale_schedules``)."""

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
        T = prior.num_train_timesteps
        t_range = (cfg.t_min(step), cfg.t_max(step))
        n = noise_images(prior, images, t_range, t, noise, self.generator)
        B = n.z.shape[0]
        t_lo = timestep_bounds(t_range, T)[0]
        shift = (cfg.plus_ratio * (n.t - t_lo).float()).clamp(min=0).minimum((T - 1 - n.t).float())
        if cfg.plus_random:
            shift = shift * uniform((B,), n.z.device, self.generator)
        t_plus = (n.t + shift.long()).clamp(1, T - 1)
        x_plus = prior.add_noise(n.z.detach(), t_plus, n.noise)
        uncond = text.uncond(B)
        if cfg.perp_neg:  # y: the interpolated positive embedding, in both terms
            cond, negatives, neg_weights = text.perp_neg(cameras, cfg.perp_neg_options, uncond)
            neg_weights = cfg.perp_neg_scale * neg_weights
        else:
            cond, negatives, neg_weights = text.cond(cameras), [], None
        rows = 2 + len(negatives)
        with torch.no_grad():  # one batched call: [ε_y(x_t, t), ε_∅(x_t, t), ε_neg,i(x_t, t)…, ε_y(x_t⁺, t⁺)]
            eps_y, eps_u, *eps_neg, eps_plus = prior.unet_forward(
                torch.cat([n.x_t] * rows + [x_plus]),
                torch.cat([n.t] * rows + [t_plus]),
                torch.cat([cond, uncond, *negatives, cond]),
            ).chunk(rows + 1)
        eps_hat = cfg_combine(eps_y, eps_u, cfg.cfg_scale, eps_neg, neg_weights)
        g = weight(cfg.weighting, prior.alphas_cumprod, n.t) * (eps_hat - eps_plus)
        g = self.prepare_grad(g, cfg.grad_clip)
        return LossOutput(surrogate_loss(n.z, g), {**grad_logs(g, n.t), "t_plus": t_plus.float().mean().item()})
