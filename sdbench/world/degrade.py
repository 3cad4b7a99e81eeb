"""Image degradations named by the toy world's degradation words.

Each takes images ``[B, 3, H, W]`` in [0, 1] and returns the same shape in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LUMA = (0.299, 0.587, 0.114)


def luminance(x: Tensor) -> Tensor:
    """``[B, 3, H, W]`` → ``[B, 1, H, W]`` (Rec. 601 weights)."""
    w = x.new_tensor(LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def blur(x: Tensor, sigma: float = 1.2) -> Tensor:
    radius = max(1, int(round(3 * sigma)))
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def dark(x: Tensor, factor: float = 0.4) -> Tensor:
    return x * factor


def low_contrast(x: Tensor, factor: float = 0.3) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * factor


def noisy(x: Tensor, std: float = 0.12, generator: torch.Generator | None = None) -> Tensor:
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + std * noise).clamp(0, 1)


def oversaturated(x: Tensor, factor: float = 2.5) -> Tensor:
    grey = luminance(x)
    return (grey + (x - grey) * factor).clamp(0, 1)


DEGRADE = {
    "blurry": blur,
    "dark": dark,
    "low contrast": low_contrast,
    "noisy": noisy,
    "oversaturated": oversaturated,
}


def apply(name: str, x: Tensor) -> Tensor:
    """Apply the degradation named ``name`` (one of :data:`sdbench.world.grammar.DEGRADATIONS`)."""
    return DEGRADE[name](x)
