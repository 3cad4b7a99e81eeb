"""CSD: Classifier Score Distillation (Yu et al. 2023, arXiv:2310.19415).

The classifier-free-guidance term alone, without SDS's generative term (paper Eq. 7, with the
annealed negative classifier score of its Sec. 3.3)::

    g = w(t) · [ ω1 (ε_y − ε_∅) − ω2 (ε_neg − ε_∅) ]

ε_y: the prompt (with view words), ε_∅: the empty prompt, ε_neg: the negative prompt
"oversaturated color, ugly, tiling, low quality, noisy" (official code). There is no sampled-noise
term and no CFG combination; ω1 and ω2 are the only scales.

Defaults follow the official SD configuration (``csd-sd*.yaml``) where it applies to a single
stage from scratch: w(t) = 1 − ᾱ_t, ω1 = 1, ω2 linear 0 → 1 over steps 0–5000 (stage 1's
schedule), t ∈ [20, 980] with the upper end dropping to 500 from step 5000. The IF stage's
global gradient normalisation is available as ``grad_normalize``.
NFE per view and step: 3 (ε_y, ε_neg, ε_∅ in one batched call), 2 while ω2 = 0. No trainable parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from sdbench.cameras import Cameras
from sdbench.config import StepSchedule
from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import Linear, Weighting, anneal_bounds, grad_logs, noise_images, surrogate_loss, weight
from sdbench.priors.base import TextConditioning

NEGATIVE = "oversaturated color, ugly, tiling, low quality, noisy"


class CSD(Loss):
    """Classifier Score Distillation: w(t)[w1(eps_y - eps_0) - w2(eps_neg - eps_0)]."""

    @dataclass(frozen=True)
    class Config:
        omega1: Linear = Linear.constant(1.0)
        """ω1(step): weight of the prompt's classifier score."""
        omega2: Linear = Linear(0.0, 1.0, 0, 5000)
        """ω2(step): weight of the negative prompt's classifier score (annealed)."""
        negative_prompt: str = NEGATIVE
        t_range: tuple[float, float] = (0.02, 0.98)
        t_max: Linear | None = Linear(0.98, 0.5, 5000, 5000)
        """Upper end of t over steps (None: fixed t_range)."""
        weighting: Weighting = "sds"
        grad_normalize: bool = False
        """Divide g by its global L2 norm (the official DeepFloyd-IF stage)."""
        grad_clip: float | None = None
        step_schedule: ClassVar[StepSchedule] = StepSchedule(10_000, ("omega2.to_step", "t_max.from_step", "t_max.to_step"))
        """The step counts above are the paper's (ω2's ramp and the t_max switch at step 5000 of the official 10k-step run);
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
        cfg = self.cfg
        n = noise_images(self.prior, images, anneal_bounds(cfg.t_range, cfg.t_max, step), t, noise, self.generator)
        B = n.z.shape[0]
        w1, w2 = cfg.omega1(step), cfg.omega2(step)
        if w2 != 0.0:
            eps_y, eps_neg, eps_0 = self.prior.predict_noise(
                n.x_t, n.t, [text.cond(cameras), text.embed(cfg.negative_prompt, B), text.uncond(B)]
            )
            delta = w1 * (eps_y - eps_0) - w2 * (eps_neg - eps_0)
        else:
            eps_y, eps_0 = self.prior.predict_noise(n.x_t, n.t, [text.cond(cameras), text.uncond(B)])
            delta = w1 * (eps_y - eps_0)
        g = weight(cfg.weighting, self.prior.alphas_cumprod, n.t) * delta
        if cfg.grad_normalize:
            g = g / g.norm().clamp(min=1e-12)
        g = self.prepare_grad(g, cfg.grad_clip)
        return LossOutput(surrogate_loss(n.z, g), {**grad_logs(g, n.t), "omega1": w1, "omega2": w2})
