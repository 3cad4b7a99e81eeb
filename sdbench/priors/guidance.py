"""Classifier-free guidance, the one combination every CFG site uses, and its Perp-Neg option.

CFG, diffusers form (``reference/losses-2.md`` §0)::

    ε̂ = ε_u + s · (ε_c − ε_u)

Perp-Neg (Armandpour et al. 2023, arXiv:2304.04968; threestudio ``utils/ops.py``
``perpendicular_component``, ``models/guidance/stable_diffusion_guidance.py`` ``use_perp_neg``,
``models/prompt_processors/base.py`` ``get_text_embeddings_perp_neg``, at 28d9d80): negative
prompts subtract only their component perpendicular to the positive direction, per sample over
(C, H, W)::

    ε̂ = ε_u + s · (Δ_pos + Σ_i w_i · Δ_i^⊥),   Δ_pos = ε_pos − ε_u,   Δ_i = ε_neg,i − ε_u
    v^⊥(x; y) = x − ⟨x, y⟩ / max(‖y‖², 1e-6) · y

For text-to-3D the positive and negative prompts depend on the view (threestudio's re-implementation,
with azimuth φ in [−180, 180), φ = 0 the front: :mod:`sdbench.cameras` uses the same convention;
E_v is the embedding of "p, {v} view")::

    elevation > 60°:  E_pos = E_overhead; negatives (E_u, E_u), w = (0, 0)  (evaluated, unused)
    |φ| < 90:         r = 1 − |φ|/90, E_pos = r E_front + (1 − r) E_side;
                      negatives (E_front, E_side), w = (−f_fs(r), −f_sf(1 − r))
    |φ| ≥ 90:         r = 2 − |φ|/90, E_pos = r E_side + (1 − r) E_back;
                      negatives (E_side, E_front), w = (−f_sb(r), −f_fsb(r))

with f(a, b, c; r) = a e^{−b r} + c, f_fs = f_sf = (4, 0.5, −2.426), f_sb = (1, 0.5, −0.606),
f_fsb = (1, 0.5, 0.967). One batched network call of 4 rows per view (ε_pos, ε_u, two negatives):
NFE 4 per view. Not reproduced: the authors' own stable-dreamfusion weight curves (another table,
``losses-2.md`` §7) and threestudio's prompt debiasing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def perpendicular(x: Tensor, y: Tensor) -> Tensor:
    """v^⊥(x; y) = x − ⟨x, y⟩ / max(‖y‖², 1e-6) · y per sample: ``x, y [B, ...]`` → ``[B, ...]``."""
    if x.shape != y.shape:
        raise ValueError(f"x and y must have one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    dims = tuple(range(1, x.dim()))
    coef = (x * y).sum(dim=dims) / (y * y).sum(dim=dims).clamp(min=1e-6)
    return x - coef.view(-1, *([1] * (x.dim() - 1))) * y


def cfg_combine(
    eps_cond: Tensor,
    eps_uncond: Tensor,
    scale: float,
    eps_negatives: Sequence[Tensor] = (),
    negative_weights: Tensor | None = None,
) -> Tensor:
    """Classifier-free guidance ε_u + s (ε_c − ε_u), all ``[B, C, h, w]``.

    With ``eps_negatives`` (K tensors ``[B, C, h, w]``) and ``negative_weights`` ``[B, K]``:
    Perp-Neg, ε_u + s (Δ_pos + Σ_k w_k (ε_neg,k − ε_u)^⊥(Δ_pos)) with ε_c as ε_pos.
    """
    if not eps_negatives:
        return eps_uncond + scale * (eps_cond - eps_uncond)
    if negative_weights is None or negative_weights.shape != (eps_cond.shape[0], len(eps_negatives)):
        got = None if negative_weights is None else tuple(negative_weights.shape)
        raise ValueError(f"negative_weights must be [B, K] = {(eps_cond.shape[0], len(eps_negatives))}, got {got}")
    delta_pos = eps_cond - eps_uncond
    direction = delta_pos
    for k, eps_neg in enumerate(eps_negatives):
        w = negative_weights[:, k].to(delta_pos.dtype).view(-1, *([1] * (delta_pos.dim() - 1)))
        direction = direction + w * perpendicular(eps_neg - eps_uncond, delta_pos)
    return eps_uncond + scale * direction


@dataclass(frozen=True)
class ExpDecay:
    """f(r) = a · e^{−b r} + c (threestudio's ``shifted_expotional_decay``)."""

    a: float
    b: float
    c: float

    def __call__(self, r: Tensor) -> Tensor:
        return self.a * torch.exp(-self.b * r) + self.c


@dataclass(frozen=True)
class PerpNeg:
    """Perp-Neg's view weights (threestudio's defaults; ``--set loss.perp_neg_options.f_sb.c=-0.5``)."""

    f_fs: ExpDecay = ExpDecay(4.0, 0.5, -2.426)
    """|φ| < 90: the weight on E_front is −f_fs(r), r = 1 − |φ|/90 (f_fs(1) ≈ 0: none at the front)."""
    f_sf: ExpDecay = ExpDecay(4.0, 0.5, -2.426)
    """|φ| < 90: the weight on E_side is −f_sf(1 − r)."""
    f_sb: ExpDecay = ExpDecay(1.0, 0.5, -0.606)
    """|φ| ≥ 90: the weight on E_side is −f_sb(r), r = 2 − |φ|/90 (f_sb(1) ≈ 0: none at the side)."""
    f_fsb: ExpDecay = ExpDecay(1.0, 0.5, 0.967)
    """|φ| ≥ 90: the weight on E_front is −f_fsb(r)."""
    overhead_elevation: float | None = None
    """Above this elevation (degrees) a view is overhead: E_pos = E_overhead, no negatives. None: the
    trial's ``cameras.overhead_elevation`` (60°, threestudio's), which also picks the 'overhead' view word."""


@dataclass
class PerpNegViews:
    """Per view: the positive interpolation E_pos = r E_a + (1 − r) E_b, two negative views and their
    weights. ``positive``/``negatives`` hold view names (``None``: the unconditional slot)."""

    positive: list[tuple[str, str]]
    ratio: Tensor  # [B], r
    negatives: list[tuple[str | None, str | None]]
    weights: Tensor  # [B, 2]


def perp_neg_views(azimuth: Tensor, elevation: Tensor, opts: PerpNeg, overhead_elevation: float) -> PerpNegViews:
    """The view interpolation and negative weights of ``B`` cameras (``azimuth``, ``elevation``: ``[B]``
    degrees; ``opts.overhead_elevation`` overrides ``overhead_elevation`` when set)."""
    threshold = overhead_elevation if opts.overhead_elevation is None else opts.overhead_elevation
    phi = ((azimuth.float() + 180.0) % 360.0 - 180.0).abs()
    front = phi < 90
    overhead = elevation.float() > threshold
    r = torch.where(front, 1 - phi / 90, 2 - phi / 90)
    w_first = torch.where(front, -opts.f_fs(r), -opts.f_sb(r))
    w_second = torch.where(front, -opts.f_sf(1 - r), -opts.f_fsb(r))
    weights = torch.stack([w_first, w_second], dim=1).masked_fill(overhead[:, None], 0.0)
    positive, negatives = [], []
    for is_front, is_overhead in zip(front.tolist(), overhead.tolist()):
        if is_overhead:
            positive.append(("overhead", "overhead"))
            negatives.append((None, None))
        elif is_front:
            positive.append(("front", "side"))
            negatives.append(("front", "side"))
        else:
            positive.append(("side", "back"))
            negatives.append(("side", "front"))
    return PerpNegViews(positive, torch.where(overhead, torch.ones_like(r), r), negatives, weights)
