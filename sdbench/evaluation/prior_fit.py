"""Prior fit: how well the prior denoises the rendered views given the prompt.

    denoise_mse = E_{t ∈ T, ε} ‖ε_φ(x_t, t, y_view) − ε‖²,   x_t = √ᾱ_t z + √(1−ᾱ_t) ε

over the evaluation views, at fixed timesteps and with noise drawn from the trial's seed. A view
the prior finds likely under the prompt is denoised well (a lower number). It works with any prior,
so it is a sanity metric when no evaluator (CLIP, toy classifier) is available.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sdbench.evaluation.base import EvalContext, Metric
from sdbench.priors.base import TextConditioning


class PriorFit(Metric):
    """Denoising error of the prior on the rendered views given the prompt (lower is better)."""

    @dataclass(frozen=True)
    class Config:
        timesteps: tuple[int, ...] = (100, 300, 500, 700, 900)
        """Timesteps at which the denoising error is averaged."""

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        prior = ctx.prior
        g = torch.Generator().manual_seed(ctx.seed + 7919)
        cond = TextConditioning(prior, ctx.prompt).cond(ctx.cameras)
        with torch.no_grad():
            z = prior.encode_images(ctx.views.rgb)
            errors = []
            for t_val in self.cfg.timesteps:
                t = torch.full((z.shape[0],), t_val, dtype=torch.long, device=z.device)
                eps = torch.randn(z.shape, generator=g).to(z.device)
                (pred,) = prior.predict_noise(prior.add_noise(z, t, eps), t, [cond])
                errors.append((pred - eps).pow(2).mean().item())
        return {"denoise_mse": sum(errors) / len(errors)}
