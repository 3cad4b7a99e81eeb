"""Colour science of the toy world: sRGB ↔ CIELAB, and the range each colour word covers.

Conversions follow the sRGB standard (IEC 61966-2-1: piecewise gamma, D65 white) and CIE 1976
L*a*b* with the D65 reference white ``(0.95047, 1.0, 1.08883)``; a render's RGB in [0, 1] is taken
as sRGB-encoded. Known values: white → (100, 0, 0), black → (0, 0, 0), pure red (1, 0, 0) →
(53.24, 80.09, 67.20). Chroma ``C* = hypot(a*, b*)``, hue ``h = atan2(b*, a*)`` (LCh).

World v2 gives each colour word a range (:class:`ColourRange`): the same hue as v1, from pastel
(lighter, ``pastel_chroma`` × the chroma) to vivid (the v1 albedo itself), plus a small lightness
jitter. :func:`sample_albedos` draws a scene's true albedo from it; out-of-gamut draws lose chroma
(hue and lightness kept) until they fit in sRGB. v1 albedos are the range's vivid end
(``vividness = 1``, ``lightness = 0``), so a prior trained on v2 data has chroma headroom above
every training colour up to the sRGB gamut: over-saturation can exceed anything it saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

WHITE_D65 = (0.95047, 1.0, 1.08883)
# Linear sRGB → XYZ (D65), IEC 61966-2-1.
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_EPS = 216 / 24389  # (6/29)^3
_KAPPA = 24389 / 27


def _move(x: Tensor, dim: int) -> Tensor:
    if x.shape[dim] != 3:
        raise ValueError(f"expected 3 colour channels in dim {dim}, got shape {tuple(x.shape)}")
    return x.movedim(dim, -1)


def srgb_to_linear(c: Tensor) -> Tensor:
    """Undo the sRGB transfer curve (any shape, values in [0, 1])."""
    return torch.where(c <= 0.04045, c / 12.92, ((c.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: Tensor) -> Tensor:
    """Apply the sRGB transfer curve (any shape; negative values stay linear)."""
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * c.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def rgb_to_lab(rgb: Tensor, dim: int = -1) -> Tensor:
    """sRGB in [0, 1] → CIELAB ``(L*, a*, b*)`` along ``dim`` (e.g. ``dim=1`` for ``[B, 3, H, W]``)."""
    x = srgb_to_linear(_move(rgb, dim))
    m = x.new_tensor(_RGB_TO_XYZ)
    xyz = (x @ m.T) / x.new_tensor(WHITE_D65)
    f = torch.where(xyz > _EPS, xyz.clamp(min=_EPS) ** (1 / 3), (_KAPPA * xyz + 16) / 116)
    lab = torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], dim=-1)
    return lab.movedim(-1, dim)


def lab_to_rgb(lab: Tensor, dim: int = -1, clamp: bool = True) -> Tensor:
    """CIELAB → sRGB along ``dim``; ``clamp=False`` keeps out-of-gamut values (to test the gamut)."""
    L, a, b = _move(lab, dim).unbind(-1)
    fy = (L + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=-1)
    xyz = torch.where(f**3 > _EPS, f**3, (116 * f - 16) / _KAPPA) * f.new_tensor(WHITE_D65)
    x = xyz @ torch.linalg.inv(f.new_tensor(_RGB_TO_XYZ)).T
    rgb = linear_to_srgb(x)
    if clamp:
        rgb = rgb.clamp(0, 1)
    return rgb.movedim(-1, dim)


def lab_to_lch(lab: Tensor, dim: int = -1) -> Tensor:
    """``(L*, a*, b*)`` → ``(L*, C*, h)`` with the hue ``h`` in degrees in [0, 360)."""
    L, a, b = _move(lab, dim).unbind(-1)
    h = torch.rad2deg(torch.atan2(b, a)) % 360
    return torch.stack([L, torch.hypot(a, b), h], dim=-1).movedim(-1, dim)


def lch_to_lab(lch: Tensor, dim: int = -1) -> Tensor:
    L, C, h = _move(lch, dim).unbind(-1)
    r = torch.deg2rad(h)
    return torch.stack([L, C * torch.cos(r), C * torch.sin(r)], dim=-1).movedim(-1, dim)


def chroma(rgb: Tensor, dim: int = -1) -> Tensor:
    """CIELAB chroma ``C*`` of sRGB colours (the channel ``dim`` is reduced)."""
    lab = _move(rgb_to_lab(rgb, dim), dim)
    return torch.hypot(lab[..., 1], lab[..., 2])


@dataclass(frozen=True)
class ColourRange:
    """The albedos one colour word covers in world v2 (see the module docstring)."""

    vivid: tuple[float, float, float]
    """The vivid end: the v1 albedo (sRGB)."""
    pastel_chroma: float = 0.5
    """Chroma at the pastel end, as a fraction of the vivid chroma."""
    pastel_lightness: float = 0.45
    """Lightness at the pastel end moves this fraction of the way from the vivid L* to ``pastel_white``."""
    pastel_white: float = 92.0
    """L* the pastel end moves towards."""
    lightness_jitter: float = 5.0
    """Extra L* shift, uniform in ±this, independent of vividness."""

    def lch(self, vividness: Tensor, lightness: Tensor) -> Tensor:
        """LCh ``[N, 3]`` for ``vividness`` in [0, 1] (0 pastel, 1 vivid) and ``lightness`` in [-1, 1]."""
        L1, C1, h1 = lab_to_lch(rgb_to_lab(torch.tensor(self.vivid, dtype=torch.float64))).tolist()
        v, lj = vividness.double(), lightness.double()
        L = L1 + (1 - v) * self.pastel_lightness * (self.pastel_white - L1) + self.lightness_jitter * lj
        C = C1 * (self.pastel_chroma + (1 - self.pastel_chroma) * v)
        return torch.stack([L.clamp(0, 100), C, torch.full_like(L, h1)], dim=-1)

    def albedo(self, vividness: Tensor, lightness: Tensor) -> Tensor:
        """sRGB albedos ``[N, 3]`` (float32) in gamut: chroma is reduced by bisection where needed."""
        lch = self.lch(vividness, lightness)
        lo, hi = torch.zeros_like(lch[:, 1]), torch.ones_like(lch[:, 1])
        fits = _in_gamut(lch)
        for _ in range(30):  # largest chroma factor in [0, 1] that fits
            mid = (lo + hi) / 2
            ok = _in_gamut(torch.stack([lch[:, 0], lch[:, 1] * mid, lch[:, 2]], -1))
            lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
        scale = torch.where(fits, torch.ones_like(lo), lo)
        out = lab_to_rgb(lch_to_lab(torch.stack([lch[:, 0], lch[:, 1] * scale, lch[:, 2]], -1)))
        return out.float()

    def chroma_range(self, samples: int = 2001) -> tuple[float, float]:
        """Smallest and largest ``C*`` of the range's albedos (over a grid of its parameters)."""
        g = torch.linspace(0, 1, int(math.sqrt(samples)))
        v, lj = torch.meshgrid(g, 2 * g - 1, indexing="ij")
        c = chroma(self.albedo(v.flatten(), lj.flatten()))
        return c.min().item(), c.max().item()


def _in_gamut(lch: Tensor, tol: float = 1e-6) -> Tensor:
    rgb = lab_to_rgb(lch_to_lab(lch), clamp=False)
    return ((rgb >= -tol) & (rgb <= 1 + tol)).all(-1)


def sample_albedos(colour_range: ColourRange, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` albedos ``[n, 3]`` drawn uniformly over the range's (vividness, lightness) square,
    with the parameters drawn ``[n]`` and ``[n]``."""
    v = torch.rand(n, generator=generator)
    lj = 2 * torch.rand(n, generator=generator) - 1
    return colour_range.albedo(v, lj), v, lj
