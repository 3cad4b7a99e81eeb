"""sRGB ↔ CIELAB (D65), for colour metrics that see lightness as well as chroma.

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

# sRGB (linear) → XYZ, D65 (http://www.brucelindbloom.com/Eqn_RGB_XYZ_Matrix.html)
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_DELTA = 6.0 / 29.0


def srgb_to_linear(rgb: Tensor) -> Tensor:
    """Undo the sRGB transfer curve; ``rgb`` in [0, 1] (clamped), any shape."""
    c = rgb.clamp(0, 1)
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(lin: Tensor) -> Tensor:
    """Apply the sRGB transfer curve; ``lin`` in [0, 1] (clamped), any shape."""
    c = lin.clamp(0, 1)
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * c.clamp(min=1e-12) ** (1 / 2.4) - 0.055)


def _float(x: Tensor) -> Tensor:
    """At least float32 (float64 stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _matrix(like: Tensor) -> Tensor:
    return torch.tensor(_RGB_TO_XYZ, dtype=like.dtype, device=like.device)


def srgb_to_lab(rgb: Tensor) -> Tensor:
    """``[..., 3, H, W]`` sRGB in [0, 1] → ``[..., 3, H, W]`` CIELAB (L* in [0, 100], a*, b*)."""
    if rgb.dim() < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"expected [..., 3, H, W] sRGB, got {tuple(rgb.shape)}")
    m = _matrix(_float(rgb))
    xyz = torch.einsum("ij,...jhw->...ihw", m, srgb_to_linear(_float(rgb)))
    xyz = xyz / m.sum(1).view(3, 1, 1)  # relative to the white M @ (1, 1, 1)
    f = torch.where(xyz > _DELTA**3, xyz.clamp(min=1e-12) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def lab_to_srgb(lab: Tensor) -> Tensor:
    """Inverse of :func:`srgb_to_lab`; colours outside the sRGB gamut are clamped to [0, 1]."""
    if lab.dim() < 3 or lab.shape[-3] != 3:
        raise ValueError(f"expected [..., 3, H, W] CIELAB, got {tuple(lab.shape)}")
    L, a, b = _float(lab).unbind(-3)
    fy = (L + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=-3)
    xyz = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29))
    m = _matrix(_float(lab))
    xyz = xyz * m.sum(1).view(3, 1, 1)
    lin = torch.einsum("ij,...jhw->...ihw", torch.linalg.inv(m), xyz)
    return linear_to_srgb(lin)


def chroma(lab: Tensor) -> Tensor:
    """``C* = sqrt(a*² + b*²)`` of ``[..., 3, H, W]`` CIELAB → ``[..., H, W]``."""
    return torch.hypot(lab[..., 1, :, :], lab[..., 2, :, :])
