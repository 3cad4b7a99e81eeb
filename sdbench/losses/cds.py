"""CDS: Consistency Distillation Sampling (Consistent3D, Wu et al., CVPR 2024, arXiv:2401.09050).

SDS follows the stochastic SDE; CDS follows the deterministic PF-ODE: under one fixed noise ε*,
the render is noised to t, moved by one DDIM (η = 0) step to t' < t, and the prediction at the
less noisy, ODE-consistent point replaces SDS's noise (the paper's CDS loss; its equation numbers
were not re-read here, ``shared/reference/losses-2.md`` §5, §9)::

    x_t = α_t z + σ_t ε*,   ε̂_t = Ĉ_s(x_t, t),   x_t' = α_t' x̂_0 + σ_t' ε̂_t,   x̂_0 = (x_t − σ_t ε̂_t)/α_t
    g = w(t) · (ε̂_t − Ĉ_s(x_t', t'))

(α = √ᾱ, σ = √(1−ᾱ); the official VE form x_t' = α_t'(z + σ̃_t ε* + (σ̃_t' − σ̃_t) ε̂_t), σ̃ = σ/α, is the
same step). Ĉ_s = ε_∅ + s(ε_y − ε_∅). ε* ~ N(0, I) of one view's shape is drawn once, on the first
step, and shared by every view and step (a buffer, saved in the trial checkpoint).
Timesteps: t' = ⌊v0 + (v1 − v0)·√(k/K)⌋ (700 → 100 over K = 3000 steps), clamped to
[t_σmin, t_σmax − g0]; t = t' + U{g0, …, g0 + P − 1} per view (g0 = 100, P = 200), clamped to
[t_σmin, t_σmax] = [100, 980]. w(t) = 1 (``uniform``), each element of g clamped to ±c(k), c linear 2 → 8.
Official code: ``sail-sg/Consistent3D: threestudio/models/guidance/stable_diffusion_guidance.py``
at 9118a5c (``compute_grad_consistency`` :309-424, t sampling :575-580, ``update_step`` :884-902, ``anneal_t``
:904-916), coarse stage ``configs/consistency-coarse.yaml``. Two sequential CFG pairs.
NFE per view and step: 4. No trainable parts.

Implements the official CDS gradient with the coarse-stage settings (CFG 100 → 50 in threestudio's
form, i.e. s = 101 → 51 here, t' √-annealed 700 → 100, t − t' ∈ U{100..299}, uniform weight, clamp
2 → 8, one fixed ε* for the whole run, drawn on the first step from the loss's generator and saved
in the checkpoint, so a resumed trial reuses it); does not reproduce the refine/texture stages
(DMTet, other t and CFG ranges: set them through the config), the coarse stage's batch of 8 views
with azimuths stratified in 4 bins (a camera-sampling choice of the trial), the unused
``recon_std_rescale`` (0 in every shipped config) or Perp-Neg: the official
``compute_grad_consistency`` raises ``NotImplementedError("Perp neg not implemented for consistency
loss")`` on it, so ``loss.perp_neg=true`` is rejected here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from sdbench.cameras import Cameras
from sdbench.config import StepSchedule
from sdbench.errors import UserError
from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import (
    Linear,
    Weighting,
    ddim_hop,
    grad_logs,
    randn_like,
    sample_timesteps,
    surrogate_loss,
    timestep_bounds,
    weight,
)
from sdbench.priors.base import TextConditioning


@dataclass(frozen=True)
class SqrtAnneal:
    """A value moving from ``start`` (at ``from_step``) to ``end`` (at ``to_step``) along √progress,
    then staying there (Consistent3D's ``anneal_t``, ``perturb_indices: sqrt``)."""

    start: float
    end: float
    from_step: int = 0
    to_step: int = 0

    def __call__(self, step: int) -> float:
        if step <= self.from_step:
            return self.start
        if step >= self.to_step:
            return self.end
        return self.start + (self.end - self.start) * math.sqrt((step - self.from_step) / (self.to_step - self.from_step))


class CDS(Loss):
    """Consistency Distillation Sampling (Consistent3D): w(t)(eps_cfg(x_t, t) - eps_cfg(x_t', t')) on one ODE step."""

    @dataclass(frozen=True)
    class Config:
        cfg_scale: Linear = Linear(101.0, 51.0, 0, 3000)
        """CFG scale s(step), diffusers form: official threestudio-form [0, 100, 50, 3000] is s − 1."""
        t_next: SqrtAnneal = SqrtAnneal(700.0, 100.0, 0, 3000)
        """t'(step) before clamping (official ``cur_steps`` [0, 700, 100, 3000], √ annealing)."""
        end_gap: int = 100
        """g0: smallest gap t − t' (official ``end_gap``)."""
        perturb_factor: int = 200
        """P: t − t' ~ U{g0, …, g0 + P − 1} per view (official ``perturb_factor``)."""
        sigma_range: tuple[float, float] = (0.1, 0.98)
        """t and t' stay in [⌊T·p_min⌋, ⌊T·p_max⌋] (official ``min/max_sigma_percent``, coarse stage)."""
        weighting: Weighting = "uniform"
        """w(t) at the larger t: 'uniform' (coarse stage), 'sds' = 1 − ᾱ_t (refine and texture stages)."""
        grad_clip: Linear | None = Linear(2.0, 8.0, 0, 3000)
        """Clamp each element of g to ±c(step) (official [0, 2, 8, 3000]); None: off."""
        share_noise: bool = True
        """One fixed ε* for all views and steps (official ``share_noise``); False: fresh ε per view and step."""
        perp_neg: bool = False
        """Perp-Neg: not available (the official code raises on it; True is rejected with a UserError)."""
        step_schedule: ClassVar[StepSchedule] = StepSchedule(3000, ("cfg_scale.to_step", "t_next.to_step", "grad_clip.to_step"))
        """The step counts above are the paper's (CFG, t' and the clamp anneal over the 3000-step coarse stage);
        a trial scales them to its own length (``TrialConfig.scale_schedules``)."""

    def __init__(self, cfg: CDS.Config, prior):
        if cfg.perp_neg:
            raise UserError(
                "cds has no Perp-Neg: Consistent3D's official code raises on it (Perp neg not implemented for consistency "
                "loss); drop loss.perp_neg"
            )
        super().__init__(cfg, prior)
        #: ε* ``[C, h, w]``, drawn from the loss's generator on the first step (``noise_drawn``).
        self.register_buffer("fixed_noise", torch.zeros(prior.latent_shape, device=prior.device))
        self.register_buffer("noise_drawn", torch.zeros((), dtype=torch.bool, device=prior.device))

    def timesteps(self, B: int, step: int, device: torch.device, t: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(t, t')``, each ``[B]``: t' from the √ schedule, t = t' + a random gap (unless given), both clamped."""
        cfg = self.cfg
        lo, hi = timestep_bounds(cfg.sigma_range, self.prior.num_train_timesteps)
        t_next = torch.full((B,), min(max(int(cfg.t_next(step)), lo), hi - cfg.end_gap), dtype=torch.long, device=device)
        if t is None:
            gap = sample_timesteps(B, cfg.end_gap, cfg.end_gap + cfg.perturb_factor - 1, device, self.generator)
            t = (t_next + gap).clamp(lo, hi)
        return t.to(device), t_next

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
        """``t`` fixes the larger timestep (t' still follows the schedule); ``noise`` replaces ε* for this call."""
        cfg, prior = self.cfg, self.prior
        z = prior.encode_images(images)
        B, device = z.shape[0], z.device
        t, t_next = self.timesteps(B, step, device, t)
        if noise is None:
            if cfg.share_noise:
                if not self.noise_drawn:
                    self.fixed_noise.copy_(randn_like(self.fixed_noise, self.generator))
                    self.noise_drawn.fill_(True)
                noise = self.fixed_noise.expand_as(z)
            else:
                noise = randn_like(z, self.generator)
        if noise.shape != z.shape:
            raise ValueError(f"noise must match the prior-space images {tuple(z.shape)}, got {tuple(noise.shape)}")
        s = cfg.cfg_scale(step)
        cond, uncond = text.cond(cameras), text.uncond(B)
        x_t = prior.add_noise(z.detach(), t, noise)
        eps_t, _, _ = prior.predict_cfg(x_t, t, cond, uncond, s)
        x_next = ddim_hop(prior, x_t, t, t_next, eps_t)  # the PF-ODE (DDIM, η = 0) step t → t'
        eps_next, _, _ = prior.predict_cfg(x_next, t_next, cond, uncond, s)
        g = weight(cfg.weighting, prior.alphas_cumprod, t) * (eps_t - eps_next)
        g = self.prepare_grad(g, cfg.grad_clip(step) if cfg.grad_clip is not None else None)
        logs = {**grad_logs(g, t), "t_next": t_next.float().mean().item(), "cfg_scale": s}
        return LossOutput(surrogate_loss(z, g), logs)
