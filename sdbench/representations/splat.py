"""Gaussian splat rasterisation: gsplat on CUDA, a pure-torch twin on CPU, and a dense reference.

:func:`rasterize` is the one entry point. On CUDA it calls ``gsplat.rasterization``; elsewhere
:func:`rasterize_torch` reproduces its conventions (gsplat 1.5, ``rasterize_mode="classic"``):

* projection, covariance and SH evaluation are gsplat's own torch reference functions
  (``gsplat.cuda._torch_impl``): EWA splatting with the Jacobian clamped to 1.3× the field of
  view, ``eps2d = 0.3`` added to the 2D covariance, radius ``ceil(3.33 σ)``;
* colours are ``max(SH(dirs) + 0.5, 0)`` with ``dirs = means − camera centre``;
* per pixel (centre at ``+0.5``), Gaussians front to back by camera depth:
  ``α = min(0.999, o · exp(−½ dᵀ Σ⁻¹ d))``, skipped when ``σ < 0`` or ``α < 1/255``; compositing
  stops before the Gaussian that would take the transmittance ``T`` to ``1e-4`` or below;
* ``rgb = Σ w c + (1 − Σ w) · background`` with ``w = α T``.

:func:`composite_sparse` (used by :func:`rasterize_torch`) only visits pixel–Gaussian pairs inside
each Gaussian's radius; :func:`composite_dense` visits every pair and is the obviously-correct
reference the tests compare it with.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4


@dataclass
class Projected:
    """Gaussians projected into ``C`` cameras.

    Attributes:
        radii: ``[C, N, 2]`` int pixel radii (0: not visible).
        means2d: ``[C, N, 2]`` pixel coordinates.
        depths: ``[C, N]`` camera-space z.
        conics: ``[C, N, 3]`` inverse 2D covariance (a, b, c) of ``a x² + 2 b x y + c y²``.
        colors: ``[C, N, 3]`` view-dependent colours.
    """

    radii: Tensor
    means2d: Tensor
    depths: Tensor
    conics: Tensor
    colors: Tensor


def project(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4] (w, x, y, z), need not be normalised
    scales: Tensor,  # [N, 3]
    sh: Tensor,  # [N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    sh_degree: int,
    eps2d: float = 0.3,
) -> Projected:
    """Project Gaussians with gsplat's torch reference functions (no CUDA needed)."""
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics

    covars, _ = _quat_scale_to_covar_preci(
        F.normalize(quats, dim=-1), scales, compute_covar=True, compute_preci=False, triu=False
    )
    radii, means2d, depths, conics, _ = _fully_fused_projection(means, covars, viewmats, Ks, width, height, eps2d=eps2d)
    campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
    dirs = means[None] - campos[:, None]  # [C, N, 3]
    colors = _spherical_harmonics(sh_degree, dirs, sh[None].expand(len(viewmats), -1, -1, -1))
    return Projected(radii, means2d, depths, conics, torch.clamp_min(colors + 0.5, 0.0))


def _alphas(means2d: Tensor, conics: Tensor, opacities: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """α of Gaussians at pixel centres; all arguments broadcast. 0 where skipped by gsplat's rules."""
    dx, dy = px + 0.5 - means2d[..., 0], py + 0.5 - means2d[..., 1]
    sigma = 0.5 * (conics[..., 0] * dx * dx + conics[..., 2] * dy * dy) + conics[..., 1] * dx * dy
    alpha = torch.clamp_max(opacities * torch.exp(-sigma), ALPHA_MAX)
    return torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))


def _pairs(proj: Projected, width: int, height: int) -> tuple[Tensor, Tensor, Tensor]:
    """Every (camera-Gaussian, pixel) pair inside each Gaussian's radius box (no gradient).

    Returns the flat Gaussian index ``c·N + g`` and the pixel coordinates ``px``, ``py`` of each pair.
    """
    C, N = proj.depths.shape
    device = proj.means2d.device
    with torch.no_grad():
        flat = torch.nonzero((proj.radii > 0).all(-1).reshape(-1), as_tuple=True)[0]
        centre = proj.means2d.reshape(-1, 2).index_select(0, flat)
        r = proj.radii.reshape(-1, 2).index_select(0, flat).to(centre.dtype)
        x0 = (centre[:, 0] - r[:, 0]).floor().long().clamp(0, width)
        x1 = (centre[:, 0] + r[:, 0]).ceil().long().clamp(0, width)  # exclusive
        y0 = (centre[:, 1] - r[:, 1]).floor().long().clamp(0, height)
        y1 = (centre[:, 1] + r[:, 1]).ceil().long().clamp(0, height)
        w, h = (x1 - x0).clamp(min=0), (y1 - y0).clamp(min=0)
        counts = w * h
        pair = torch.repeat_interleave(torch.arange(len(flat), device=device), counts)
        local = torch.arange(len(pair), device=device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        wp = w.index_select(0, pair)
        px = x0.index_select(0, pair) + local % wp
        py = y0.index_select(0, pair) + torch.div(local, wp, rounding_mode="floor")
        return flat.index_select(0, pair), px, py


def composite_sparse(
    proj: Projected,
    opacities: Tensor,  # [N] in (0, 1)
    width: int,
    height: int,
    background: Tensor,  # [3]
) -> tuple[Tensor, Tensor]:
    """Composite over pixel–Gaussian pairs inside each radius; returns rgb ``[C, H, W, 3]``, alpha ``[C, H, W, 1]``.

    Pairs whose α is skipped (``α < 1/255`` or ``σ < 0``) or that lie behind the transmittance
    cut-off are dropped before anything with a gradient is computed on them.
    """
    C, N = proj.depths.shape
    device = proj.means2d.device
    pixels = C * height * width
    means2d, conics = proj.means2d.reshape(-1, 2), proj.conics.reshape(-1, 3)
    op = opacities.repeat(C)
    g, px, py = _pairs(proj, width, height)
    with torch.no_grad():
        a = _alphas(
            means2d.index_select(0, g),
            conics.index_select(0, g),
            op.index_select(0, g),
            px.to(means2d.dtype),
            py.to(means2d.dtype),
        )
        active = torch.nonzero(a > 0, as_tuple=True)[0]
        g, px, py = g.index_select(0, active), px.index_select(0, active), py.index_select(0, active)
        # sort by pixel, then front to back (ties by Gaussian index, as a stable sort does)
        rank = torch.empty(C, N, dtype=torch.long, device=device)
        rank.scatter_(1, torch.argsort(proj.depths.detach(), dim=1, stable=True), torch.arange(N, device=device).expand(C, N))
        pix = (torch.div(g, N, rounding_mode="floor") * height + py) * width + px
        perm = torch.argsort(pix * N + rank.reshape(-1).index_select(0, g))
        g, px, py, pix = g[perm], px[perm], py[perm], pix[perm]
        # transmittance before each pair: exclusive cumulative product of (1 − α) within its pixel,
        # as a segmented sum of logs (float64: the running sum spans every pixel of every camera)
        log1m = torch.log1p(-a.index_select(0, active)[perm].double())
        csum = torch.cumsum(log1m, 0)
        first = torch.ones_like(pix, dtype=torch.bool)
        first[1:] = pix[1:] != pix[:-1]
        start = torch.cummax(torch.where(first, torch.arange(len(pix), device=device), torch.zeros_like(pix)), 0).values
        before = (csum - log1m) - (csum - log1m).index_select(0, start)
        keep = torch.nonzero(before + log1m > math.log(T_MIN), as_tuple=True)[0]  # stop before T reaches 1e-4
        g, px, py, pix = g[keep], px[keep], py[keep], pix[keep]
    # the same α and transmittance again, now with gradient, on the pairs that contribute
    alpha = _alphas(
        means2d.index_select(0, g), conics.index_select(0, g), op.index_select(0, g), px.to(means2d.dtype), py.to(means2d.dtype)
    )
    log1m = torch.log1p(-alpha)
    csum = torch.cumsum(log1m.double(), 0)
    # within a pixel the kept pairs are a prefix of its sorted pairs, so the segments keep their starts
    first = torch.ones_like(pix, dtype=torch.bool)
    first[1:] = pix[1:] != pix[:-1]
    start = torch.cummax(torch.where(first, torch.arange(len(pix), device=device), torch.zeros_like(pix)), 0).values
    excl = csum - log1m.double()
    T = torch.exp(excl - excl.index_select(0, start)).to(alpha.dtype)
    weights = alpha * T
    k = proj.colors.shape[-1]  # 3 for RGB; any channel count composites the same way (RGB + depth: 4)
    colors = proj.colors.reshape(-1, k).index_select(0, g)
    rgb = torch.zeros(pixels, k, device=device, dtype=weights.dtype).index_add(0, pix, weights[:, None] * colors)
    acc = torch.zeros(pixels, device=device, dtype=weights.dtype).index_add(0, pix, weights)
    rgb = rgb + (1 - acc)[:, None] * background
    return rgb.view(C, height, width, k), acc.view(C, height, width, 1)


def composite_dense(
    proj: Projected,
    opacities: Tensor,  # [N]
    width: int,
    height: int,
    background: Tensor,  # [3]
) -> tuple[Tensor, Tensor]:
    """Reference compositor: every Gaussian at every pixel (slow, memory ``C·H·W·N``)."""
    C, N = proj.depths.shape
    device = proj.means2d.device
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    order = torch.argsort(proj.depths, dim=1, stable=True)  # [C, N]
    take = lambda t: torch.gather(t, 1, order.view(C, N, *([1] * (t.dim() - 2))).expand_as(t))  # noqa: E731
    m2d, con, col = take(proj.means2d), take(proj.conics), take(proj.colors)
    vis = take((proj.radii > 0).all(-1))
    op = take(opacities[None].expand(C, N))
    px, py = xs.reshape(1, -1, 1).float(), ys.reshape(1, -1, 1).float()  # [1, P, 1]
    alpha = _alphas(m2d[:, None], con[:, None], op[:, None], px, py) * vis[:, None]  # [C, P, N]
    T_after = torch.cumprod(1 - alpha.double(), dim=-1)
    T = torch.cat([torch.ones_like(T_after[..., :1]), T_after[..., :-1]], dim=-1)
    weights = alpha * T.to(alpha.dtype) * (T_after > T_MIN)
    rgb = torch.einsum("cpn,cnk->cpk", weights, col)
    acc = weights.sum(-1, keepdim=True)
    rgb = rgb + (1 - acc) * background
    return rgb.view(C, height, width, 3), acc.view(C, height, width, 1)


def rasterize_torch(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    sh: Tensor,  # [N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    sh_degree: int,
    background: Tensor,  # [3]
    dense: bool = False,
) -> tuple[Tensor, Tensor, dict]:
    """Pure-torch twin of ``gsplat.rasterization`` (CPU or GPU); see the module docstring.

    Returns rgb ``[C, H, W, 3]``, alpha ``[C, H, W, 1]`` and ``meta`` with ``means2d``
    ``[C, N, 2]`` (retain its grad for densification), ``radii`` ``[C, N, 2]``, ``width``,
    ``height``, ``n_cameras`` and ``gaussian_ids`` (None: unpacked), as gsplat's strategies expect.
    """
    proj = project(means, quats, scales, sh, viewmats, Ks, width, height, sh_degree)
    fn = composite_dense if dense else composite_sparse
    rgb, alpha = fn(proj, opacities, width, height, background)
    meta = {
        "means2d": proj.means2d,
        "radii": proj.radii,
        "width": width,
        "height": height,
        "n_cameras": len(viewmats),
        "gaussian_ids": None,
    }
    return rgb, alpha, meta


def rasterize(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    sh: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int,
    background: Tensor,
) -> tuple[Tensor, Tensor, dict]:
    """Render Gaussians: ``gsplat.rasterization`` on CUDA, :func:`rasterize_torch` elsewhere.

    Shapes as in :func:`rasterize_torch`; ``scales`` are linear (not log), ``opacities`` in (0, 1).
    """
    if means.is_cuda:
        import gsplat

        rgb, alpha, meta = gsplat.rasterization(
            means,
            quats,
            scales,
            opacities,
            sh,
            viewmats,
            Ks,
            width,
            height,
            sh_degree=sh_degree,
            backgrounds=background.expand(len(viewmats), 3),
            packed=False,
        )
        return rgb, alpha, meta
    return rasterize_torch(means, quats, scales, opacities, sh, viewmats, Ks, width, height, sh_degree, background)


def rasterize_surface(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    sh: Tensor,  # [N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    sh_degree: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Colour over black, opacity and accumulated depth of Gaussians (for depth and normal maps).

    Returns ``rgb [C, H, W, 3] = Σ w c``, ``alpha [C, H, W, 1] = Σ w`` and ``depth [C, H, W, 1] = Σ w z``
    with ``z`` the camera-space depth of each Gaussian's centre (divide by ``alpha`` for the
    expected depth): gsplat's ``render_mode="RGB+D"`` on CUDA; elsewhere one :func:`composite_sparse`
    pass over the projection with ``z`` appended to the colours as a fourth channel.
    """
    if means.is_cuda:
        import gsplat

        out, alpha, _ = gsplat.rasterization(
            means,
            quats,
            scales,
            opacities,
            sh,
            viewmats,
            Ks,
            width,
            height,
            sh_degree=sh_degree,
            packed=False,
            render_mode="RGB+D",
        )
        return out[..., :3], alpha, out[..., 3:4]
    proj = project(means, quats, scales, sh, viewmats, Ks, width, height, sh_degree)
    rgbd = dataclasses.replace(proj, colors=torch.cat([proj.colors, proj.depths[..., None]], dim=-1))
    out, alpha = composite_sparse(rgbd, opacities, width, height, torch.zeros(4, device=means.device, dtype=means.dtype))
    return out[..., :3], alpha, out[..., 3:4]
