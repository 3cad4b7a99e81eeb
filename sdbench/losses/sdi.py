"""SDI: Score Distillation via Inversion (Lukoianov et al., NeurIPS 2024, arXiv:2405.15891).

SDS with its i.i.d. noise replaced by the noise κ_t^y(z) that conditional DDIM inversion of the
render recovers (the paper's SDI update; its equation numbers were not re-read here,
``shared/reference/losses-2.md`` §1, §9). The official code is the first author's threestudio port,
``threestudio: threestudio/models/guidance/stable_diffusion_sdi_guidance.py`` at 28d9d80 (inversion grid
:331-377, ``invert_noise`` :379-408, ``ddim_inversion_step`` :269-329, ``compute_grad_sdi``
:426-473, loss :524-526, t anneal :647-661) with ``configs/sdi.yaml``. Per step, without gradient:

1. t: one value for all views, t = ⌊T·p(step)⌋ with p linear 0.98 → 0.25 over 10k steps;
2. grid τ_0 < τ_1 < … : τ_0 = o − T/n, then the "leading" grid o + k·T/n (n = 10, o = 1) below t,
   then t⁺ = min(t + δ, T − 1), δ = ⌊u·T/n⌋, u ~ U[0, 1) per view; start from x = z (no noise);
3. each hop τ → τ' with ε̂ = Ĉ_{s_inv}(x, τ) (the network is queried at τ, −99 on the first hop):
   x ← √ᾱ_τ' x̂_0 + √(1−ᾱ_τ') ε̂ + η ς_τ,τ' ξ,   x̂_0 = (x − √(1−ᾱ_τ) ε̂)/√ᾱ_τ,   ξ ~ N(0, I),
   ς² = (1−ᾱ_τ)/(1−ᾱ_τ') · (1 − ᾱ_τ'/ᾱ_τ), ᾱ_τ := ᾱ_0 for τ < 0, η = 0.3, s_inv = −7.5;
4. the inverted x̃ (noise level t⁺) is denoised at q = t: ε̂ = Ĉ_s(x̃, q), x̂_0 = (x̃ − σ_q ε̂)/α_q;

    g = z − x̂_0 = (σ_t/α_t) · (ε̂ − ε̃),   ε̃ = (x̃ − α_t z)/σ_t   (α = √ᾱ, σ = √(1−ᾱ)),

applied through the surrogate ½‖z − sg(z − g)‖²/B. Ĉ_s = ε_∅ + s(ε_y − ε_∅) (diffusers form) in
inversion and denoising alike, s = 7.5 (with ``perp_neg``: Perp-Neg's ε_∅ + s(Δ_pos + Σ_i w_i Δ_i^⊥),
:mod:`sdbench.priors.guidance`, at both scales). Draws, in this order, from the loss's generator: t (when
no schedule), u per view, then ξ per hop; ``forward``'s ``noise`` is not used (inversion finds it).
NFE per view and step: 2·(hops + 1), hops = 1 + #{k : o + k·T/n < t}: 24 at t = 980, 14 at 500,
10 at 250, 17.25 on average over the default schedule; with ``perp_neg`` every prediction, inversion
and final alike, is Perp-Neg's (the official ``predict_noise``, :198-267): 4 rows each, 4·(hops + 1)
(48 at t = 980). No trainable parts.

Implements the SDI update as the official code computes it (inversion with CFG −7.5 on the
leading 10-step grid, η = 0.3 noise, the random overshoot δ and the query at t on a latent at
level t + δ, t annealed 980 → 250); does not reproduce the official loss scale, a mean-reduced MSE
that divides g by B·C·h·w (16384·B on SD's 4×64×64 latents; ``reduction="mean"`` restores it: the
default "sum" keeps SDI on the scale of every other sdbench loss, because the official factor depends
on the prior's latent size and scales the Gaussians' densification gradients, compared with a fixed
threshold, by the same factor; Adam's updates barely change),
nor a separate t per view within a step (official batch size 1). Perp-Neg is off by default
(sdbench compares the losses themselves; Perp-Neg is its own arm): the official config enables it
(``configs/sdi.yaml`` :66, in the inversion's −7.5 guidance and the final prediction alike);
``--set loss.perp_neg=true`` reproduces it. (Without Perp-Neg the official code uses threestudio's
CFG form ε_y + s(ε_y − ε_∅), i.e. s + 1; here Ĉ_s is the diffusers form in both cases, which is the
official one with Perp-Neg.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from sdbench.cameras import Cameras
from sdbench.config import StepSchedule
from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import (
    Linear,
    ddim_hop,
    grad_logs,
    guided_noise,
    randn_like,
    sample_timesteps,
    surrogate_loss,
    timestep_bounds,
    uniform,
)
from sdbench.priors.base import TextConditioning
from sdbench.priors.guidance import PerpNeg


def inversion_grid(t: int, num_train_timesteps: int, steps: int, offset: int) -> list[int]:
    """τ_0 = offset − T/n, then the leading grid offset + k·T/n (k < n) below ``t`` (DDIMInverseScheduler)."""
    ratio = num_train_timesteps // steps
    return [offset - ratio] + [offset + k * ratio for k in range(steps) if offset + k * ratio < t]


class SDI(Loss):
    """Score Distillation via Inversion: z - x0_hat(x~, t), the noise found by DDIM inversion of the render."""

    @dataclass(frozen=True)
    class Config:
        cfg_scale: float = 7.5
        """CFG scale s of the final prediction (diffusers form); sdi.yaml: 7.5."""
        inversion_cfg_scale: float = -7.5
        """CFG scale of every inversion prediction (official: −7.5, i.e. ε_∅ − 7.5(ε_y − ε_∅))."""
        inversion_steps: int = 10
        """n: the inversion grid has spacing T/n (official 10)."""
        steps_offset: int = 1
        """o: the leading grid is o, o + T/n, … (SD 2.1's ``steps_offset`` 1); τ_0 = o − T/n."""
        inversion_eta: float = 0.3
        """η: scale of the fresh DDIM noise η·ς·ξ added on every inversion hop (official 0.3; 0: deterministic)."""
        random_delta: bool = True
        """Overshoot the last hop to t⁺ = min(t + ⌊u·T/n⌋, T − 1), u ~ U[0, 1) per view (official); False: t⁺ = t."""
        query: Literal["t", "t_plus"] = "t"
        """Timestep at which the inverted latent (level t⁺) is denoised: 't' as the official code, 't_plus' consistent."""
        t_schedule: Linear | None = Linear(0.98, 0.25, 0, 10_000)
        """t = ⌊T·p(step)⌋ for every view (official ``t_anneal``: 0.98 → 0.25 over the 10k-step run); None: t_range."""
        t_range: tuple[float, float] = (0.25, 0.98)
        """Without a schedule: one t ~ U{⌊T·p_min⌋, …, ⌊T·p_max⌋} per step, shared by the views."""
        reduction: Literal["sum", "mean"] = "sum"
        """'sum': g = z − x̂_0 (every sdbench loss's scale); 'mean': g / (B·C·h·w), the official ``mse_loss`` mean."""
        grad_clip: float | None = None
        """Clamp each element of g to [−c, c] (None: off, as the official code)."""
        perp_neg: bool = False
        """Perp-Neg guidance (view-dependent negatives perpendicular to the positive direction, NFE 4 per
        prediction) in every prediction, inversion and final alike (the official config's choice):
        :mod:`sdbench.priors.guidance`."""
        perp_neg_options: PerpNeg = PerpNeg()
        """Perp-Neg's weight curves and overhead threshold (used when ``perp_neg`` is on)."""
        step_schedule: ClassVar[StepSchedule] = StepSchedule(10_000, ("t_schedule.to_step",))
        """The step counts above are the paper's (t anneals over the whole official 10k-step run);
        a trial scales them to its own length (``TrialConfig.scale_schedules``)."""

    def timestep(self, B: int, step: int, device: torch.device) -> Tensor:
        """``[B]``: the step's t, one value shared by the views."""
        cfg, T = self.cfg, self.prior.num_train_timesteps
        if cfg.t_schedule is not None:
            t = timestep_bounds((cfg.t_schedule(step), cfg.t_schedule(step)), T)[0]
            return torch.full((B,), t, dtype=torch.long, device=device)
        lo, hi = timestep_bounds(cfg.t_range, T)
        return sample_timesteps(1, lo, hi, device=device, generator=self.generator).expand(B)

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
        B, device, T = z.shape[0], z.device, prior.num_train_timesteps
        t = self.timestep(B, step, device) if t is None else t.to(device)
        if t.shape != (B,) or bool((t != t[0]).any()):
            raise ValueError(f"SDI inverts all views on one grid: t must be [B] with one value, got {t.tolist()}")
        ac = prior.alphas_cumprod
        ratio = T // cfg.inversion_steps
        delta = (uniform((B,), device, self.generator) * ratio).floor().long() if cfg.random_delta else torch.zeros_like(t)
        t_plus = (t + delta).clamp(max=T - 1)
        uncond, perp_neg = text.uncond(B), cfg.perp_neg_options if cfg.perp_neg else None
        taus = [torch.full_like(t, tau) for tau in inversion_grid(int(t[0]), T, cfg.inversion_steps, cfg.steps_offset)]
        with torch.no_grad():
            x = z.detach()
            for tau, tau_next in zip(taus, taus[1:] + [t_plus]):
                # the network sees τ itself (−99 on the first hop, as the official code); ᾱ_τ := ᾱ_0 for τ < 0
                tau_query = tau if prior.prediction_type == "epsilon" else tau.clamp(min=0)
                eps_hat, _, _ = guided_noise(prior, x, tau_query, text, cameras, uncond, cfg.inversion_cfg_scale, perp_neg)
                a, a_next = ac[tau.clamp(min=0)].view(-1, 1, 1, 1), ac[tau_next].view(-1, 1, 1, 1)
                x = ddim_hop(prior, x, tau.clamp(min=0), tau_next, eps_hat)
                if cfg.inversion_eta:
                    varsigma = ((1 - a) / (1 - a_next) * (1 - a_next / a)).sqrt()
                    x = x + cfg.inversion_eta * varsigma * randn_like(x, self.generator)
            q = t if cfg.query == "t" else t_plus
            eps_hat, _, _ = guided_noise(prior, x, q, text, cameras, uncond, cfg.cfg_scale, perp_neg)
            a_q = ac[q].view(-1, 1, 1, 1)
            x0_hat = (x - (1 - a_q).sqrt() * eps_hat) / a_q.sqrt()
        g = z.detach() - x0_hat
        if cfg.reduction == "mean":
            g = g / z[0].numel() / B
        g = self.prepare_grad(g, cfg.grad_clip)
        logs = {**grad_logs(g, t), "t_plus": t_plus.float().mean().item(), "inversion_hops": float(len(taus))}
        return LossOutput(surrogate_loss(z, g), logs)
