"""Pieces every score-distillation loss shares: timesteps, weights, CFG and the surrogate loss.

Notation follows ``shared/reference/losses.md``: ᾱ_t = ``alphas_cumprod[t]``,
x_t = √ᾱ_t z + √(1−ᾱ_t) ε, and a per-pixel gradient ``g`` on z is applied through the surrogate
L = ½ Σ (z − sg(z − g))² / B, whose gradient is exactly ∂L/∂z = g / B.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sdbench.cameras import Cameras
from sdbench.priors.base import Prior, TextConditioning
from sdbench.priors.guidance import PerpNeg

Weighting = Literal["sds", "uniform", "fantasia3d", "sigma_over_alpha"]


def timestep_bounds(t_range: tuple[float, float], num_train_timesteps: int) -> tuple[int, int]:
    """Fractions ``(p_min, p_max)`` of the schedule → inclusive integer bounds ⌊T·p⌋ (threestudio)."""
    lo, hi = (int(math.floor(num_train_timesteps * p)) for p in t_range)
    if not 0 <= lo <= hi < num_train_timesteps:
        raise ValueError(f"t_range {t_range} gives timesteps [{lo}, {hi}] outside [0, {num_train_timesteps - 1}]")
    return lo, hi


def sample_timesteps(
    n: int, lo: int, hi: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
) -> Tensor:
    """``[n]`` int64 drawn uniformly from {lo, …, hi} (both included), one per view, from ``generator``
    (the trial's own; the global generator when None)."""
    gen_device = generator.device if generator is not None else device
    return torch.randint(lo, hi + 1, (n,), device=gen_device, generator=generator).to(device)


def uniform(shape: tuple[int, ...], device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> Tensor:
    """U[0, 1) of ``shape`` from ``generator`` (the global generator when None), moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, device=gen_device, generator=generator).to(device)


def randn_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """N(0, I) shaped like ``x`` (dtype and device too), drawn from ``generator`` (global when None)."""
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def weight(kind: Weighting, alphas_cumprod: Tensor, t: Tensor) -> Tensor:
    """w(t) as ``[B, 1, 1, 1]``: ``sds`` 1−ᾱ_t, ``uniform`` 1, ``fantasia3d`` √ᾱ_t(1−ᾱ_t),
    ``sigma_over_alpha`` √((1−ᾱ_t)/ᾱ_t) (LucidDreamer's ISM weight)."""
    a = alphas_cumprod[t]
    if kind == "sds":
        w = 1 - a
    elif kind == "uniform":
        w = torch.ones_like(a)
    elif kind == "fantasia3d":
        w = a.sqrt() * (1 - a)
    elif kind == "sigma_over_alpha":
        w = ((1 - a) / a).sqrt()
    else:
        raise ValueError(f"unknown weighting {kind!r}")
    return w.view(-1, 1, 1, 1)


def guided_noise(
    prior: Prior,
    x_t: Tensor,
    t: Tensor,
    text: TextConditioning,
    cameras: Cameras,
    uncond: Tensor,
    scale: float,
    perp_neg: PerpNeg | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The guided prediction of every CFG-based loss, ``(eps_cfg, eps_cond, eps_uncond)`` ``[B, C, h, w]``:
    CFG ε_u + s (ε_c − ε_u) of the prompt with the cameras' view words against ``uncond [B, L, D]``
    (one call, NFE 2 per view); with ``perp_neg`` Perp-Neg instead (ε_c is the view-interpolated
    positive, NFE 4 per view; :mod:`sdbench.priors.guidance`)."""
    if perp_neg is None:
        return prior.predict_cfg(x_t, t, text.cond(cameras), uncond, scale)
    positive, negatives, weights = text.perp_neg(cameras, perp_neg, uncond)
    return prior.predict_cfg(x_t, t, positive, uncond, scale, negatives, weights)


def surrogate_loss(z: Tensor, grad: Tensor) -> Tensor:
    """½ Σ (z − sg(z − g))² / B: a scalar whose gradient w.r.t. ``z [B, ...]`` is ``g / B``."""
    target = (z - grad).detach()
    return 0.5 * (z - target).pow(2).sum() / z.shape[0]


def prepare_grad(grad: Tensor, clip: float | None) -> Tensor:
    """Replace NaN/inf by 0 and optionally clamp each element to [−clip, clip] (threestudio's grad_clip)."""
    grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)  # the default maps ±inf to ±max: an exploding step
    if clip is not None:
        grad = grad.clamp(-clip, clip)
    return grad


def grad_logs(grad: Tensor, t: Tensor) -> dict[str, float]:
    """The numbers logged for every loss: mean per-view ‖g‖₂ and mean t."""
    return {"grad_norm": grad.flatten(1).norm(dim=1).mean().item(), "t": t.float().mean().item()}


def denoising_step(
    prior,
    optimizer: torch.optim.Optimizer,
    z: Tensor,
    embeddings: Tensor,
    generator: torch.Generator | None = None,
    *,
    network=None,
    condition: Callable[[], dict[str, Tensor]] | None = None,
) -> float:
    """One optimiser step on the diffusion (denoising) loss of the detached renders ``z [B, C, h, w]``.

    t′ ~ U{0, …, T−1} and ε′ ~ N(0, I) from ``generator``, x_t′ = √ᾱ_t′ z + √(1−ᾱ_t′) ε′,
    L = mean ‖net(x_t′, t′, embeddings) − target‖² with the network's own target (ε′, or v / z). The
    network runs with autograd on, so the prior counts it as a forward and a ``with_grad``; the
    gradient reaches whatever ``optimizer`` holds (VSD's LoRA, LODS' embedding α, which then must be
    in ``embeddings``' graph). ``condition()``: extra network arguments, drawn after t′ and ε′ (VSD's
    camera dropout). Returns L's value.
    """
    z = z.detach()
    with torch.enable_grad():
        t = sample_timesteps(z.shape[0], 0, prior.num_train_timesteps - 1, device=z.device, generator=generator)
        noise = randn_like(z, generator)
        extra = condition() if condition is not None else {}
        pred = prior.unet_forward(prior.add_noise(z, t, noise), t, embeddings, network=network, raw=True, **extra)
        loss = (pred - prior.network_target(z, noise, t)).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return loss.item()


class Noised:
    """A rendered batch taken into the prior's space and noised: ``z`` (in the graph), ``t``,
    ``noise`` and ``x_t`` (detached)."""

    def __init__(self, z: Tensor, t: Tensor, noise: Tensor, x_t: Tensor):
        self.z, self.t, self.noise, self.x_t = z, t, noise, x_t


def noise_images(
    prior,
    images: Tensor,
    t_range: tuple[float, float],
    t: Tensor | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Noised:
    """Encode ``images [B, 3, H, W]`` to z, draw t ~ U{⌊T p_min⌋…⌊T p_max⌋} and ε ~ N(0, I) from
    ``generator`` unless given, and build x_t = √ᾱ_t sg(z) + √(1−ᾱ_t) ε."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
    z = prior.encode_images(images)
    if t is None:
        lo, hi = timestep_bounds(t_range, prior.num_train_timesteps)
        t = sample_timesteps(z.shape[0], lo, hi, device=z.device, generator=generator)
    if noise is None:
        noise = randn_like(z, generator)
    if noise.shape != z.shape:
        raise ValueError(f"noise must match the prior-space images {tuple(z.shape)}, got {tuple(noise.shape)}")
    return Noised(z, t.to(z.device), noise, prior.add_noise(z.detach(), t.to(z.device), noise))


@dataclass(frozen=True)
class Linear:
    """A value that moves linearly from ``start`` (at ``from_step``) to ``end`` (at ``to_step``) and
    stays there; ``to_step <= from_step`` means the constant ``end`` after ``from_step`` (a jump)."""

    start: float
    end: float
    from_step: int = 0
    to_step: int = 0

    def __call__(self, step: int) -> float:
        if self.to_step <= self.from_step:
            return self.start if step < self.from_step else self.end
        progress = min(max((step - self.from_step) / (self.to_step - self.from_step), 0.0), 1.0)
        return self.start + (self.end - self.start) * progress

    @classmethod
    def constant(cls, value: float) -> Linear:
        return cls(value, value)


def anneal_bounds(t_range: tuple[float, float], t_max: Linear | None, step: int) -> tuple[float, float]:
    """``t_range`` with its upper end replaced by ``t_max(step)`` when a schedule is given."""
    return (t_range[0], t_max(step)) if t_max is not None else t_range


def ddim_hop(prior, x: Tensor, tau: Tensor, tau_next: Tensor, eps: Tensor) -> Tensor:
    """One deterministic DDIM step τ → τ' (η = 0) of ``x [B, ...]``, ``tau``, ``tau_next`` ``[B]``, either way:
    x_τ' = √ᾱ_τ' x̂_0 + √(1−ᾱ_τ') ε̂ with x̂_0 = (x − √(1−ᾱ_τ) ε̂) / √ᾱ_τ. Inversion (τ' > τ) in ISM and SDI,
    the PF-ODE step towards less noise (τ' < τ) in CDS."""
    a, a_next = prior.alphas_cumprod[tau].view(-1, 1, 1, 1), prior.alphas_cumprod[tau_next].view(-1, 1, 1, 1)
    x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
    return a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
