"""SDS: Score Distillation Sampling (DreamFusion, Poole et al. 2022, arXiv:2209.14988).

Gradient on the prior-space image z (DreamFusion Eq. 3, UNet Jacobian omitted)::

    g = w(t) · (ε̂_cfg(x_t; y, t) − ε),   ε̂_cfg = ε_∅ + s (ε_y − ε_∅)

with x_t = √ᾱ_t z + √(1−ᾱ_t) ε, t ~ U{20, …, 980}, w(t) = 1 − ᾱ_t and guidance scale s = 100
(DreamFusion; threestudio's ``dreamfusion-sd``). Applied through the surrogate ½‖z − sg(z − g)‖²/B.
NFE per view and step: 2 (conditional + unconditional, one batched call). No trainable parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from sdbench.cameras import Cameras
from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import Weighting, grad_logs, guided_noise, noise_images, surrogate_loss, weight
from sdbench.priors.base import TextConditioning
from sdbench.priors.guidance import PerpNeg


class SDS(Loss):
    """Score Distillation Sampling (DreamFusion): w(t)(eps_cfg - eps)."""

    @dataclass(frozen=True)
    class Config:
        cfg_scale: float = 100.0
        """Classifier-free guidance scale s (diffusers form); DreamFusion uses 100."""
        t_range: tuple[float, float] = (0.02, 0.98)
        """t ~ U{⌊1000·p_min⌋, …, ⌊1000·p_max⌋}."""
        weighting: Weighting = "sds"
        """w(t): 'sds' = 1 − ᾱ_t, 'uniform', 'fantasia3d', 'sigma_over_alpha'."""
        grad_clip: float | None = None
        """Clamp each element of g to [−c, c] (None: off)."""
        perp_neg: bool = False
        """Perp-Neg guidance (view-dependent negatives perpendicular to the positive direction, NFE 4 per
        view) instead of plain CFG: :mod:`sdbench.priors.guidance`."""
        perp_neg_options: PerpNeg = PerpNeg()
        """Perp-Neg's weight curves and overhead threshold (used when ``perp_neg`` is on)."""

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
        perp_neg = cfg.perp_neg_options if cfg.perp_neg else None
        eps_cfg, _, _ = guided_noise(self.prior, n.x_t, n.t, text, cameras, text.uncond(B), cfg.cfg_scale, perp_neg)
        g = self.prepare_grad(weight(cfg.weighting, self.prior.alphas_cumprod, n.t) * (eps_cfg - n.noise), cfg.grad_clip)
        return LossOutput(surrogate_loss(n.z, g), grad_logs(g, n.t))
