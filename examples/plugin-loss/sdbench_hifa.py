"""SDS with HiFA's deterministic timestep annealing (Zhu et al. 2023, arXiv:2305.18766).

HiFA replaces SDS's random t ~ U[t_min, t_max] by a schedule that sweeps from noisy to clean::

    t(i) = t_max − (t_max − t_min) · √(i / N)          (i: step, N: anneal_steps)

and keeps the SDS gradient g = w(t)(ε̂_cfg − ε). NFE per view and step: 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sdbench.losses.base import Loss, LossOutput
from sdbench.losses.common import Weighting, grad_logs, noise_images, surrogate_loss, timestep_bounds, weight


class HiFASDS(Loss):
    """SDS with HiFA's square-root timestep annealing (example plugin)."""

    @dataclass(frozen=True)
    class Config:
        cfg_scale: float = 100.0
        """Classifier-free guidance scale (diffusers form)."""
        t_range: tuple[float, float] = (0.02, 0.98)
        """(t_min, t_max) as fractions of the schedule."""
        anneal_steps: int = 500
        """N: steps over which t goes from t_max to t_min."""
        weighting: Weighting = "sds"
        """w(t), as in SDS."""

    def timestep(self, step: int) -> int:
        lo, hi = timestep_bounds(self.cfg.t_range, self.prior.num_train_timesteps)
        return round(hi - (hi - lo) * math.sqrt(min(step / self.cfg.anneal_steps, 1.0)))

    def forward(self, images, text, cameras, step, *, t=None, noise=None):
        if t is None:
            t = torch.full((images.shape[0],), self.timestep(step), dtype=torch.long)
        n = noise_images(self.prior, images, self.cfg.t_range, t, noise)
        eps_cfg, _, _ = self.prior.predict_cfg(n.x_t, n.t, text.cond(cameras), text.uncond(len(images)), self.cfg.cfg_scale)
        g = self.prepare_grad(weight(self.cfg.weighting, self.prior.alphas_cumprod, n.t) * (eps_cfg - n.noise), None)
        return LossOutput(surrogate_loss(n.z, g), grad_logs(g, n.t))
