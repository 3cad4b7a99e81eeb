"""sRGB ↔ CIELAB (D65) on image tensors ``[..., 3, H, W]``, for colour metrics that see lightness as
well as chroma. The conversion itself is the world's (:mod:`sdbench.world.colour`, one implementation
for the scenes' albedo ranges and the metrics); this module fixes the channel axis and the dtype.

The chain is the standard one (IEC 61966-2-1 sRGB, CIE 1976 L*a*b*):

* sRGB → linear RGB: ``c / 12.92`` below ``0.04045``, else ``((c + 0.055) / 1.055) ** 2.4``;
* linear RGB → XYZ with the sRGB/D65 matrix ``M`` (Lindbloom's values);
* XYZ → L*a*b* against the white ``M @ (1, 1, 1)`` (= D65, ``Xn = 0.95047, Zn = 1.08883``) with
  ``f(t) = t ** (1/3)`` above ``(6/29) ** 3``, else ``t / (3 (6/29)^2) + 4/29``, and
  ``L* = 116 f(Y) − 16``, ``a* = 500 (f(X) − f(Y))``, ``b* = 200 (f(Y) − f(Z))``.

White ``(1, 1, 1)`` maps to ``(100, 0, 0)`` and sRGB red ``(1, 0, 0)`` to ``(53.24, 80.09, 67.20)``.
Chroma is ``C* = sqrt(a*² + b*²)``: 0 for greys, ~80–130 for vivid sRGB primaries. One unit of
ΔE (Euclidean distance in L*a*b*) is near the smallest visible difference (~2.3).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sdbench.world import colour as _world


def _float(x: Tensor) -> Tensor:
    """At least float32 (float64 stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _check(x: Tensor, what: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected [..., 3, H, W] {what}, got {tuple(x.shape)}")


def srgb_to_linear(rgb: Tensor) -> Tensor:
    """Undo the sRGB transfer curve; ``rgb`` in [0, 1] (clamped), any shape."""
    return _world.srgb_to_linear(rgb.clamp(0, 1))


def linear_to_srgb(lin: Tensor) -> Tensor:
    """Apply the sRGB transfer curve; ``lin`` in [0, 1] (clamped), any shape."""
    return _world.linear_to_srgb(lin.clamp(0, 1))


def srgb_to_lab(rgb: Tensor) -> Tensor:
    """``[..., 3, H, W]`` sRGB in [0, 1] (clamped) → ``[..., 3, H, W]`` CIELAB (L* in [0, 100], a*, b*)."""
    _check(rgb, "sRGB")
    return _world.rgb_to_lab(_float(rgb).clamp(0, 1), dim=-3)


def lab_to_srgb(lab: Tensor) -> Tensor:
    """Inverse of :func:`srgb_to_lab`; colours outside the sRGB gamut are clamped to [0, 1]."""
    _check(lab, "CIELAB")
    return _world.lab_to_rgb(_float(lab), dim=-3, clamp=True)


def chroma(lab: Tensor) -> Tensor:
    """``C* = sqrt(a*² + b*²)`` of ``[..., 3, H, W]`` CIELAB → ``[..., H, W]``."""
    return torch.hypot(lab[..., 1, :, :], lab[..., 2, :, :])
