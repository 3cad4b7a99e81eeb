"""Independent re-computation of the quantities every loss test needs (closed-form stub prior)."""

from __future__ import annotations

import torch

from sdbench.cameras import Cameras
from sdbench.priors.base import TextConditioning
from sdbench.testing import StubPrior

PROMPT = "a red cube"


def setup(B: int = 3, size: int = 8, seed: int = 0):
    """Fixed renders, cameras, noise and the stub prior's text conditioning."""
    g = torch.Generator().manual_seed(seed)
    prior = StubPrior(StubPrior.Config(resolution=size))
    images = torch.rand(B, 3, size, size, generator=g).requires_grad_(True)
    noise = torch.randn(B, 3, size, size, generator=g)
    cams = Cameras.orbit(B, elevation=20.0)
    return prior, images, noise, cams, TextConditioning(prior, PROMPT)


def eps(x_t: torch.Tensor, t: torch.Tensor, prompts: list[str] | str) -> torch.Tensor:
    """The stub network's prediction, recomputed from its closed form."""
    B = x_t.shape[0]
    if isinstance(prompts, str):
        prompts = [prompts] * B
    return StubPrior.formula(x_t, t, torch.stack([StubPrior.embedding(p) for p in prompts]))


def forward_process(prior, images: torch.Tensor, t: torch.Tensor, noise: torch.Tensor):
    """z = 2x − 1 (the stub's pixel mapping), x_t = √ᾱ z + √(1−ᾱ) ε, and ᾱ_t as [B, 1, 1, 1]."""
    a = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    z = images.detach() * 2 - 1
    return z, a.sqrt() * z + (1 - a).sqrt() * noise, a


def expected_image_grad(g: torch.Tensor) -> torch.Tensor:
    """∂L/∂x for the surrogate: (dz/dx = 2) · g / B."""
    return 2 * g / g.shape[0]


def check(images: torch.Tensor, g: torch.Tensor) -> None:
    torch.testing.assert_close(images.grad, expected_image_grad(g), atol=1e-6, rtol=0)


def setup_double(B: int = 3, size: int = 8, seed: int = 0):
    """:func:`setup` in float64 (renders, noise, the stub's ᾱ): for losses whose g chains several
    predictions or multiplies them by a large CFG scale or σ_t/α_t, float32 rounding alone differs
    by ~1e-5 between two orders of the same arithmetic, so a 1e-6 comparison needs double precision."""
    prior, images, noise, cams, text = setup(B, size, seed)
    prior.alphas_cumprod = prior.alphas_cumprod.double()
    return prior, images.detach().double().requires_grad_(True), noise.double(), cams, text
