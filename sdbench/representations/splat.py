"""Gaussian splat rasterisation: gsplat on CUDA, a pure-torch twin on CPU, and a dense reference.

:func:`rasterize` is the one entry point. On CUDA it calls ``gsplat.rasterization``; elsewhere
:func:`rasterize_torch` reproduces its conventions (gsplat 1.5, ``rasterize_mode="classic"``):

* projection and covariance follow gsplat's own torch reference functions
  (``gsplat.cuda._torch_impl``): EWA splatting with the Jacobian clamped to 1.3× the field of
  view, ``eps2d = 0.3`` added to the 2D covariance, radius ``ceil(3.33 σ)``; :func:`project` writes
  them out entry by entry, :func:`_project_gsplat` calls gsplat's functions (the reference);
* colours are ``max(SH(dirs) + 0.5, 0)`` with ``dirs = means − camera centre``;
* per pixel (centre at ``+0.5``), Gaussians front to back by camera depth:
  ``α = min(0.999, o · exp(−½ dᵀ Σ⁻¹ d))``, skipped when ``σ < 0`` or ``α < 1/255``; compositing
  stops before the Gaussian that would take the transmittance ``T`` to ``1e-4`` or below;
* ``rgb = Σ w c + (1 − Σ w) · background`` with ``w = α T``.

:func:`composite_sparse` (used by :func:`rasterize_torch`) only evaluates pixels that can pass the
``α ≥ 1/255`` test (each Gaussian's radius box cut to the bounding box of its ``σ ≤ ln(255 o)``
ellipse), in square blocks evaluated all at once, and differentiates the compositing with a
hand-written backward as gsplat's kernels do:
``∂L/∂α_i = T_i v_i − (Σ_{j>i} w_j v_j) / (1 − α_i)`` with ``v_i = ∂L/∂w_i``.
:func:`composite_dense` visits every pair with autograd through a cumulative product and is the
obviously-correct reference the tests compare it with.

``SDBENCH_LEGACY_PATH=1`` (:func:`sdbench.hardware.legacy_path`) renders with the implementation
this module had before the throughput work (:func:`_project_gsplat` and
:func:`_composite_sparse_legacy`, autograd over every step), for ``benchmarks/splat_cpu.py`` and
``benchmarks/throughput.py``; the results agree to float rounding (``tests/representations/test_splat.py``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from sdbench.hardware import legacy_path

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
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Projected:
    """Project Gaussians into ``C`` pinhole cameras: gsplat's ``_fully_fused_projection`` written out.

    The arithmetic of gsplat's torch reference (:func:`_project_gsplat`), regrouped so that no batched
    3×3 product is left: with ``M = R S`` (rotation times scales, ``Σ = M Mᵀ``), ``W`` the camera
    rotation and ``J`` the clamped perspective Jacobian, the 2D covariance ``J W Σ Wᵀ Jᵀ`` is ``B Bᵀ``
    with ``B = J (W M)`` (``2 × 3``); every step is an element-wise op over ``N``, and the backward is
    written by hand (:class:`_Projection`). Radii, visibility and culling as gsplat's; colours from
    the SH coefficients with autograd. Cameras that require grad go through :func:`_project_gsplat`.
    """
    assert (sh_degree + 1) ** 2 <= sh.shape[1], f"sh_degree {sh_degree} needs {(sh_degree + 1) ** 2} coefficients, got {sh.shape}"
    if viewmats.requires_grad or Ks.requires_grad:  # gradients for the cameras: autograd through the reference
        return _project_gsplat(means, quats, scales, sh, viewmats, Ks, width, height, sh_degree, eps2d)
    C, N = len(viewmats), len(means)
    means2d, depths, conics, radii = _Projection.apply(
        means, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane
    )
    if sh_degree == 0:
        colors = (0.2820947917738781 * sh[None, :, 0]).expand(C, N, 3)
    else:
        from gsplat.cuda._torch_impl import _eval_sh_bases_fast

        nb = (sh_degree + 1) ** 2
        campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
        bases = _eval_sh_bases_fast(nb, F.normalize(means[None] - campos[:, None], p=2, dim=-1))  # [C, N, nb]
        colors = (bases[..., None] * sh[None, :, :nb]).sum(dim=-2)
    return Projected(radii, means2d, depths, conics, torch.clamp_min(colors + 0.5, 0.0))


class _Projection(torch.autograd.Function):
    """gsplat's EWA projection (``_fully_fused_projection`` after ``_quat_scale_to_covar_preci``) with
    a hand-written backward, as gsplat's ``fully_fused_projection_bwd`` kernel has.

    Forward, per camera and Gaussian (every tensor ``[C, N]`` or component-first ``[C, 3, N]``):
    ``q̂ = q / |q|``, ``M = R(q̂) diag(s)``, camera-space mean ``t = W m + T``, the Jacobian
    ``J = [[fx/z, 0, −fx u/z], [0, fy/z, −fy v/z]]`` with ``u = clamp(x/z)``, ``v = clamp(y/z)`` (1.3× the
    field of view), ``B = J W M`` (``2 × 3``), 2D covariance ``Σ' = B Bᵀ + eps2d I`` (= ``J W Σ Wᵀ Jᵀ``),
    conic ``Σ'⁻¹``, pixel mean ``K t / z``. Backward: ``∂Σ'`` from the conic through the inverse
    (``∂det``), ``∂B = (∂Σ' + ∂Σ'ᵀ) B``, then through ``J`` (and ``z``, ``u``, ``v``), ``W``, ``M`` to the
    rotation entries, the scales and the quaternion's normalisation. Cameras get no gradient.
    """

    @staticmethod
    def forward(ctx, means, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane):
        N = len(means)
        norm = quats.norm(dim=-1).clamp_min(1e-12)  # F.normalize's
        qh = (quats / norm[:, None]).T.contiguous()  # [4, N]
        w, x, y, z = qh
        R = torch.stack(
            [
                1 - 2 * (y * y + z * z),
                2 * (x * y - w * z),
                2 * (x * z + w * y),
                2 * (x * y + w * z),
                1 - 2 * (x * x + z * z),
                2 * (y * z - w * x),
                2 * (x * z - w * y),
                2 * (y * z + w * x),
                1 - 2 * (x * x + y * y),
            ]
        ).view(3, 3, N)  # R[i, j]
        s = scales.T.contiguous()  # [3, N]
        M = R * s  # M[i, j] = R[i, j] s[j]
        W = viewmats[:, :3, :3]  # [C, 3, 3]
        WM = torch.stack([sum(W[:, r, i, None, None] * M[i] for i in range(3)) for r in range(3)], 1)  # [C, 3, 3, N]
        m = means.T  # [3, N]
        tx, ty, tz = (sum(W[:, r, i, None] * m[i] for i in range(3)) + viewmats[:, r, 3, None] for r in range(3))  # [C, N]
        fx, fy, cx, cy = Ks[:, 0, 0, None], Ks[:, 1, 1, None], Ks[:, 0, 2, None], Ks[:, 1, 2, None]  # [C, 1]
        tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
        ux, vy = tx / tz, ty / tz
        u = torch.clamp(ux, min=-(cx / fx + 0.3 * tan_fovx), max=(width - cx) / fx + 0.3 * tan_fovx)
        v = torch.clamp(vy, min=-(cy / fy + 0.3 * tan_fovy), max=(height - cy) / fy + 0.3 * tan_fovy)
        J00, J02, J11, J12 = fx / tz, -fx * u / tz, fy / tz, -fy * v / tz
        B0 = J00[:, None] * WM[:, 0] + J02[:, None] * WM[:, 2]  # [C, 3, N]
        B1 = J11[:, None] * WM[:, 1] + J12[:, None] * WM[:, 2]
        c00 = (B0 * B0).sum(1) + eps2d
        c01 = (B0 * B1).sum(1)
        c11 = (B1 * B1).sum(1) + eps2d
        det_raw = c00 * c11 - c01 * c01
        det = det_raw.clamp(min=1e-10)
        conics = torch.stack([c11 / det, -c01 / det, c00 / det], dim=-1)  # [C, N, 3]
        K = Ks[:, :2, :, None]  # [C, 2, 3, 1]
        px = (K[:, 0, 0] * tx + K[:, 0, 1] * ty + K[:, 0, 2] * tz) / tz
        py = (K[:, 1, 0] * tx + K[:, 1, 1] * ty + K[:, 1, 2] * tz) / tz
        means2d = torch.stack([px, py], dim=-1)  # [C, N, 2]
        radius = torch.stack([torch.ceil(3.33 * torch.sqrt(c00)), torch.ceil(3.33 * torch.sqrt(c11))], dim=-1)
        valid = (det > 0) & (tz > near_plane) & (tz < far_plane)
        inside = (
            (px + radius[..., 0] > 0) & (px - radius[..., 0] < width) & (py + radius[..., 1] > 0) & (py - radius[..., 1] < height)
        )
        radii = torch.where((valid & inside)[..., None], radius, torch.zeros_like(radius)).int()
        ctx.mark_non_differentiable(radii)
        free_u = (ux == u).to(ux.dtype)  # where the field-of-view clamp passes gradient
        free_v = (vy == v).to(vy.dtype)
        ctx.save_for_backward(
            norm,
            qh,
            R,
            s,
            WM,
            W,
            Ks,
            tx,
            ty,
            tz,
            u,
            v,
            free_u,
            free_v,
            B0,
            B1,
            c00,
            c01,
            c11,
            det,
            det_raw >= 1e-10,
            conics,
            px,
            py,
        )
        return means2d, tz, conics, radii

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_means2d, g_depths, g_conics, _):
        norm, qh, R, s, WM, W, Ks, tx, ty, tz, u, v, free_u, free_v, B0, B1, c00, c01, c11, det, det_ok, conics, px, py = (
            ctx.saved_tensors
        )
        # conic = (c11, −c01, c00) / det
        gp, gq, gr = g_conics.unbind(-1)
        g_det = -(gp * conics[..., 0] + gq * conics[..., 1] + gr * conics[..., 2]) / det * det_ok
        g00 = gr / det + g_det * c11
        g11 = gp / det + g_det * c00
        g01 = -gq / det - 2 * g_det * c01
        # Σ' = B Bᵀ
        gB0 = (2 * g00)[:, None] * B0 + g01[:, None] * B1  # [C, 3, N]
        gB1 = (2 * g11)[:, None] * B1 + g01[:, None] * B0
        # B = J (W M)
        fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
        J00, J02, J11, J12 = fx / tz, -fx * u / tz, fy / tz, -fy * v / tz
        gJ00, gJ02 = (gB0 * WM[:, 0]).sum(1), (gB0 * WM[:, 2]).sum(1)
        gJ11, gJ12 = (gB1 * WM[:, 1]).sum(1), (gB1 * WM[:, 2]).sum(1)
        gWM = (J00[:, None] * gB0, J11[:, None] * gB1, J02[:, None] * gB0 + J12[:, None] * gB1)  # rows r, [C, 3, N]
        gM = torch.stack([sum((W[:, r, i, None, None] * gWM[r]).sum(0) for r in range(3)) for i in range(3)])  # [3, 3, N]
        # M = R diag(s)
        g_scales = (gM * R).sum(0).T  # [N, 3]
        gR = (gM * s).reshape(9, -1)
        w, x, y, z = qh
        g00_, g01_, g02_, g10_, g11_, g12_, g20_, g21_, g22_ = gR
        g_qh = 2 * torch.stack(
            [
                -z * g01_ + y * g02_ + z * g10_ - x * g12_ - y * g20_ + x * g21_,
                y * g01_ + z * g02_ + y * g10_ - 2 * x * g11_ - w * g12_ + z * g20_ + w * g21_ - 2 * x * g22_,
                -2 * y * g00_ + x * g01_ + w * g02_ + x * g10_ + z * g12_ - w * g20_ + z * g21_ - 2 * y * g22_,
                -2 * z * g00_ - w * g01_ + x * g02_ + w * g10_ - 2 * z * g11_ + y * g12_ + x * g20_ + y * g21_,
            ]
        )  # [4, N]
        g_quats = ((g_qh - qh * (qh * g_qh).sum(0)) / norm).T  # through q / |q|
        # pixel means K t / z, depth z, and J's dependence on z, u = clamp(x / z), v = clamp(y / z)
        gu, gv = g_means2d.unbind(-1)
        K = Ks[:, :2, :, None]
        gtx = (gu * K[:, 0, 0] + gv * K[:, 1, 0]) / tz
        gty = (gu * K[:, 0, 1] + gv * K[:, 1, 1]) / tz
        gtz = (gu * (K[:, 0, 2] - px) + gv * (K[:, 1, 2] - py)) / tz + g_depths
        gtz = gtz - (gJ00 * J00 + gJ02 * J02 + gJ11 * J11 + gJ12 * J12) / tz
        g_ux = -gJ02 * fx / tz * free_u  # ∂L/∂(x / z)
        g_vy = -gJ12 * fy / tz * free_v
        gtx = gtx + g_ux / tz
        gty = gty + g_vy / tz
        gtz = gtz - (g_ux * tx + g_vy * ty) / (tz * tz)
        g_t = (gtx, gty, gtz)
        g_means = torch.stack([sum((W[:, r, i, None] * g_t[r]).sum(0) for r in range(3)) for i in range(3)], -1)  # [N, 3]
        return g_means, g_quats, g_scales, None, None, None, None, None, None, None


def _project_gsplat(
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
    """Project Gaussians with gsplat's torch reference functions: the reference :func:`project` mirrors
    (and the projection before the throughput work)."""
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


def _boxes(means2d: Tensor, radii: Tensor, width: int, height: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each Gaussian's radius box in pixels, clipped to the image: ``x0, x1, y0, y1`` (``x1``, ``y1``
    exclusive), int64, the shape of ``means2d[..., 0]``."""
    r = radii.to(means2d.dtype)
    x0 = (means2d[..., 0] - r[..., 0]).floor().long().clamp(0, width)
    x1 = (means2d[..., 0] + r[..., 0]).ceil().long().clamp(0, width)
    y0 = (means2d[..., 1] - r[..., 1]).floor().long().clamp(0, height)
    y1 = (means2d[..., 1] + r[..., 1]).ceil().long().clamp(0, height)
    return x0, x1, y0, y1


def _spans(counts: Tensor) -> tuple[Tensor, Tensor]:
    """For items with ``counts`` children each: every child's item and its index among its siblings."""
    item = torch.repeat_interleave(counts)
    first = torch.cumsum(counts, 0) - counts
    return item, torch.arange(len(item), device=counts.device) - first.index_select(0, item)


def _depth_order(depths: Tensor) -> Tensor:
    """``argsort(depths, dim=1, stable=True)`` for ``[C, N]`` depths, as one sort of unique int64 keys
    (a float32's bits order non-negative floats; negative and NaN depths are never visible)."""
    N = depths.shape[1]
    if depths.dtype != torch.float32 or N >= 2**31:
        return torch.argsort(depths, dim=1, stable=True)
    key = depths.contiguous().view(torch.int32).long() * 2**32 + torch.arange(N, device=depths.device)
    return torch.sort(key, dim=1).indices


BLOCK_SIDES = (4, 6, 8, 12, 16)
"""Candidate side lengths of the square pixel blocks :func:`_blocks` cuts footprints into."""


@dataclass
class _Blocks:
    """Square ``K × K`` pixel blocks covering every visible Gaussian's footprint, front to back.

    Attributes:
        gaussian: ``[V]`` flat Gaussian index ``c·N + n`` of each block.
        x, y: ``[V]`` int64 pixel of the block's top-left corner.
        width, height: ``[V]`` int64 extent of the block inside the footprint (at most ``side``).
        side: ``K``.
    """

    gaussian: Tensor
    x: Tensor
    y: Tensor
    width: Tensor
    height: Tensor
    side: int


def _blocks(proj: Projected, opacities: Tensor, width: int, height: int) -> _Blocks:
    """Cut each visible Gaussian's footprint into ``K × K`` blocks, ordered by camera, then depth (ties
    by Gaussian index, as a stable sort), then block (no gradient).

    The footprint is the radius box (where gsplat looks) cut to the bounding box of the ellipse
    ``σ ≤ ln(255 o) + 10⁻³`` (outside it ``o e^{−σ} < 1/255``; the margin is far above float32
    rounding of ``σ``): half-widths ``√(2 s Σ_xx)``, ``√(2 s Σ_yy)`` with ``Σ`` the inverse conic.
    ``K`` is the side from :data:`BLOCK_SIDES` that evaluates the fewest pixels.
    """
    C, N = proj.depths.shape
    device = proj.means2d.device
    with torch.no_grad():
        order = _depth_order(proj.depths) + torch.arange(C, device=device)[:, None] * N
        order = order.reshape(-1)
        ids = order[(proj.radii > 0).all(-1).reshape(-1).index_select(0, order)]  # visible, front to back
        m2 = proj.means2d.reshape(-1, 2).index_select(0, ids)
        x0, x1, y0, y1 = _boxes(m2, proj.radii.reshape(-1, 2).index_select(0, ids), width, height)
        a, b, c = proj.conics.reshape(-1, 3).index_select(0, ids).double().unbind(-1)
        mx, my = m2.double().unbind(-1)
        s = torch.log(255.0 * opacities.double().index_select(0, ids % N)) + 1e-3
        det = a * c - b * b
        hx = torch.sqrt(2 * s.clamp(min=0) * c / det)  # Σ_xx = c / det
        hy = torch.sqrt(2 * s.clamp(min=0) * a / det)  # Σ_yy = a / det
        left = torch.maximum(torch.ceil(mx - 0.5 - hx), x0.double())  # pixel centres x + ½ within mx ± hx
        right = torch.minimum(torch.floor(mx - 0.5 + hx) + 1, x1.double())
        top = torch.maximum(torch.ceil(my - 0.5 - hy), y0.double())
        bottom = torch.minimum(torch.floor(my - 0.5 + hy) + 1, y1.double())
        ok = torch.isfinite(hx) & torch.isfinite(hy) & (s >= 0) & (det > 0) & (a > 0)
        zero = torch.zeros_like(left)
        w = torch.where(ok, (right - left).clamp(min=0), zero).long()
        h = torch.where(ok, (bottom - top).clamp(min=0), zero).long()
        left, top = torch.where(ok, left, zero).long(), torch.where(ok, top, zero).long()
        sides = torch.tensor(BLOCK_SIDES, device=device)[:, None]  # [S, 1]
        per = torch.div(w + sides - 1, sides, rounding_mode="floor") * torch.div(h + sides - 1, sides, rounding_mode="floor")
        K = BLOCK_SIDES[int((per.sum(1) * sides[:, 0] ** 2).argmin())]  # the fewest pixels evaluated
        nx = (w + K - 1) // K
        item, j = _spans(nx * ((h + K - 1) // K))
        nx = nx.index_select(0, item)
        by = torch.div(j, nx, rounding_mode="floor")
        x = left.index_select(0, item) + (j - by * nx) * K
        y = top.index_select(0, item) + by * K
        bw = (left.index_select(0, item) + w.index_select(0, item) - x).clamp(max=K)
        bh = (top.index_select(0, item) + h.index_select(0, item) - y).clamp(max=K)
        return _Blocks(ids.index_select(0, item), x, y, bw, bh, K)


class _Composite(torch.autograd.Function):
    """Front-to-back compositing with gsplat's hand-written backward.

    Forward (no autograd graph): gsplat's ``α`` on every pixel of every block (:func:`_blocks`;
    pixels outside a footprint are NaN), the hits (``σ ≥ 0``, ``α ≥ 1/255``) sorted by pixel and
    then block (= front to back within a pixel), the transmittance ``T_i = exp(Σ_{j<i} ln(1 − α_j))``
    from a float64 segmented cumulative sum, and the pairs before the ``T ≤ 1e-4`` stop kept:
    ``rgb = Σ w c + (1 − Σ w) bg``, ``acc = Σ w``, ``w = α T``.

    Backward, per kept pair in pixel ``p`` with ``v_i = g_rgb[p]·(c_i − bg) + g_acc[p]`` (``= ∂L/∂w_i``):
    ``∂L/∂c_i = w_i g_rgb[p]``, ``∂L/∂α_i = T_i v_i − S_i / (1 − α_i)``, ``S_i = Σ_{j>i} w_j v_j``
    (a float64 suffix sum), then through ``α = min(0.999, o e^{−σ})`` to ``o``, the conic and the
    mean: per Gaussian, ``index_add`` sums of ``−∂L/∂σ`` times ``(dx, dy, dx², dx dy, dy², 1)``.

    Per-pair tensors are laid out channels first (``[6, P]``, ``[K, P]``) so that gathers, sums and
    ``index_add`` run along contiguous rows.
    """

    @staticmethod
    def forward(ctx, means2d, conics, opacities, colors, background, radii, depths, width, height):
        C, N = depths.shape
        k = colors.shape[-1]
        pixels = C * height * width
        blocks = _blocks(Projected(radii, means2d, depths, conics, colors), opacities, width, height)
        K, V = blocks.side, len(blocks.gaussian)
        packed = torch.cat([means2d.reshape(-1, 2).T, conics.reshape(-1, 3).T, opacities.repeat(C)[None]])  # [6, CN]
        mx, my, a, b, c, o = packed.index_select(1, blocks.gaussian)  # [V] each
        # gsplat's α (the float32 expression of _alphas) on each block's K × K pixels, laid out
        # [row, column, block] so that every op runs along the blocks; NaN outside the footprint
        step = torch.arange(K, device=mx.device)[:, None]  # [K, 1]
        nan = torch.tensor(math.nan, device=mx.device, dtype=mx.dtype)
        dx = torch.where(step < blocks.width, (blocks.x + step).to(mx.dtype) + 0.5 - mx, nan)  # [K, V]
        dy = torch.where(step < blocks.height, (blocks.y + step).to(mx.dtype) + 0.5 - my, nan)
        # σ = ½ (a dx² + c dy²) + b dx dy, [K, K, V] (in place: these are the largest tensors here)
        sigma = ((a * dx * dx)[None] + (c * dy * dy)[:, None]).mul_(0.5).add_((b * dx)[None] * dy[:, None])
        # α = min(0.999, o e^{−σ}); NaN and σ > 80 (α < 1e-34) would take exp's slow path on the CPU
        alpha = torch.nan_to_num(sigma, nan=80.0).clamp_max_(80.0).neg_().exp_().mul_(o).clamp_max_(ALPHA_MAX)
        f = torch.nonzero((alpha >= ALPHA_MIN).logical_and_(sigma >= 0).view(-1), as_tuple=True)[0]
        alpha = alpha.view(-1).index_select(0, f)
        # sort by pixel, then block (= front to back): one stable sort of the key pixel · V + block
        base = torch.div(blocks.gaussian, N, rounding_mode="floor") * (height * width) + blocks.y * width + blocks.x
        key_type = torch.int32 if pixels * max(V, 1) < 2**31 else torch.int64
        cell = (step * width + step.T).to(key_type) * V  # [K, K]: (row · W + column) · V
        key = (cell[:, :, None] + (base * V + torch.arange(V, device=base.device)).to(key_type)).view(-1).index_select(0, f)
        key, perm = torch.sort(key, stable=True)
        key = key.long()
        pix = torch.div(key, V, rounding_mode="floor")
        alpha = alpha.index_select(0, perm)
        # T before each pair: exclusive segmented sum of ln(1 − α), float64 (it runs over every pixel)
        csum = torch.cat([alpha.new_zeros(1, dtype=torch.float64), torch.cumsum(torch.log1p(-alpha.double()), 0)])
        counts = torch.bincount(pix, minlength=pixels)
        start = csum.index_select(0, (torch.cumsum(counts, 0) - counts).index_select(0, pix))
        keep = torch.nonzero(csum[1:] - start > math.log(T_MIN), as_tuple=True)[0]  # stop before T reaches 1e-4
        pix, alpha = pix.index_select(0, keep), alpha.index_select(0, keep)
        g = blocks.gaussian.index_select(0, key.index_select(0, keep) - pix * V)
        T = torch.exp(csum.index_select(0, keep) - start.index_select(0, keep)).to(alpha.dtype)
        w = alpha * T
        cols = colors.reshape(-1, k).T.contiguous().index_select(1, g)  # [k, P]
        terms = torch.empty(k + 1, len(w), dtype=w.dtype, device=w.device)  # [w c; w]
        torch.mul(cols, w, out=terms[:k])
        terms[k] = w
        out = torch.zeros(k + 1, pixels, dtype=w.dtype, device=w.device).index_add_(1, pix, terms)
        acc = out[k]
        rgb = out[:k].T + (1 - acc)[:, None] * background
        ctx.save_for_backward(packed, cols, background, g, pix, alpha, T, acc)
        ctx.shape = (C, N, height, width)
        return rgb.view(C, height, width, k), acc.view(C, height, width, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_rgb, grad_alpha):
        packed, cols, background, g, pix, alpha, T, acc = ctx.saved_tensors
        C, N, height, width = ctx.shape
        k = len(cols)
        pixels = C * height * width
        g_rgb = grad_rgb.reshape(pixels, k).T.contiguous()  # [k, pixels]
        gr = g_rgb.index_select(1, pix)  # [k, P]
        v = ((cols - background[:, None]) * gr).sum(0) + grad_alpha.reshape(pixels).contiguous().index_select(0, pix)  # ∂L/∂w
        w = alpha * T
        # S_i = Σ_{j>i, same pixel} w_j v_j: the pixel's total minus the inclusive running sum
        csum = torch.cumsum((w * v).double(), 0)
        last = torch.cumsum(torch.bincount(pix, minlength=pixels), 0) - 1
        S = (csum.index_select(0, last.index_select(0, pix)) - csum).to(w.dtype)
        d_alpha = T * v - S / (1 - alpha)
        # through α = min(0.999, o e^{−σ}): ∂α/∂σ = −α and ∂α/∂o = α / o below the clamp, nothing at it
        # (autograd through clamp_max would pass it where o e^{−σ} rounds to exactly 0.999; this does not)
        d_sigma = d_alpha.masked_fill_(alpha >= ALPHA_MAX, 0.0).mul_(alpha)  # −∂L/∂σ
        # σ = ½ (a dx² + c dy²) + b dx dy with dx = px + ½ − x̄: per pair the sums of −∂L/∂σ times
        # (dx, dy, dx², dx dy, dy², 1); a, b, c, o are per Gaussian and multiply after the index_add
        mx, my = packed[:2].index_select(1, g)
        py = torch.div(pix, width, rounding_mode="floor")
        dx = (pix - py * width).to(mx.dtype) + 0.5 - mx
        dy = (py % height).to(mx.dtype) + 0.5 - my
        terms = torch.empty(6, len(g), dtype=dx.dtype, device=dx.device)
        torch.mul(d_sigma, dx, out=terms[0])
        torch.mul(d_sigma, dy, out=terms[1])
        torch.mul(terms[0], dx, out=terms[2])
        torch.mul(terms[0], dy, out=terms[3])
        torch.mul(terms[1], dy, out=terms[4])
        terms[5] = d_sigma
        sums = torch.zeros(6, C * N, dtype=dx.dtype, device=dx.device).index_add_(1, g, terms)
        a, b, c, o = packed[2:]
        grad_means2d = torch.stack([a * sums[0] + b * sums[1], b * sums[0] + c * sums[1]], -1)  # ∂σ/∂x̄ = −(a dx + b dy)
        grad_conics = torch.stack([-0.5 * sums[2], -sums[3], -0.5 * sums[4]], -1)
        grad_opacities = torch.where(o > 0, sums[5] / o, torch.zeros_like(o))
        grad_cols = torch.zeros(k, C * N, dtype=dx.dtype, device=dx.device).index_add_(1, g, gr.mul_(w))
        grad_bg = ((1 - acc) * g_rgb).sum(1) if ctx.needs_input_grad[4] else None
        return (
            grad_means2d.view(C, N, 2),
            grad_conics.view(C, N, 3),
            grad_opacities.view(C, N).sum(0),
            grad_cols.T.reshape(C, N, k).contiguous(),
            grad_bg,
            None,
            None,
            None,
            None,
        )


def composite_sparse(
    proj: Projected,
    opacities: Tensor,  # [N] in (0, 1)
    width: int,
    height: int,
    background: Tensor,  # [k]
) -> tuple[Tensor, Tensor]:
    """Composite over the pixel–Gaussian pairs that can pass the ``α`` test; returns rgb ``[C, H, W, k]``,
    alpha ``[C, H, W, 1]`` (``k`` colour channels in ``proj.colors``: 3 for RGB, RGB + depth: 4).

    Pairs are built per Gaussian from its radius box and ``σ ≤ ln(255 o)`` ellipse (:func:`_blocks`);
    skipped pairs (``α < 1/255`` or ``σ < 0``) and those behind the transmittance cut-off are dropped
    in the forward pass, and the backward runs over the kept pairs only (:class:`_Composite`).
    """
    return _Composite.apply(
        proj.means2d, proj.conics, opacities, proj.colors, background, proj.radii, proj.depths.detach(), width, height
    )


def _pairs(proj: Projected, width: int, height: int) -> tuple[Tensor, Tensor, Tensor]:
    """Every (camera-Gaussian, pixel) pair inside each Gaussian's radius box (no gradient; the legacy path).

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


def _composite_sparse_legacy(
    proj: Projected,
    opacities: Tensor,  # [N] in (0, 1)
    width: int,
    height: int,
    background: Tensor,  # [3]
) -> tuple[Tensor, Tensor]:
    """:func:`composite_sparse` before the throughput work, autograd through every step (``SDBENCH_LEGACY_PATH=1``).

    Composites over pixel–Gaussian pairs inside each radius; returns rgb ``[C, H, W, 3]``, alpha
    ``[C, H, W, 1]``. Pairs whose α is skipped (``α < 1/255`` or ``σ < 0``) or that lie behind the transmittance
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

    ``dense=True``: the reference (:func:`_project_gsplat` and :func:`composite_dense`); otherwise
    :func:`project` and :func:`composite_sparse` (the legacy pair under ``SDBENCH_LEGACY_PATH=1``).

    Returns rgb ``[C, H, W, 3]``, alpha ``[C, H, W, 1]`` and ``meta`` with ``means2d``
    ``[C, N, 2]`` (retain its grad for densification), ``radii`` ``[C, N, 2]``, ``width``,
    ``height``, ``n_cameras`` and ``gaussian_ids`` (None: unpacked), as gsplat's strategies expect.
    """
    legacy = legacy_path()
    proj = (_project_gsplat if dense or legacy else project)(means, quats, scales, sh, viewmats, Ks, width, height, sh_degree)
    fn = composite_dense if dense else _composite_sparse_legacy if legacy else composite_sparse
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
    legacy = legacy_path()
    proj = (_project_gsplat if legacy else project)(means, quats, scales, sh, viewmats, Ks, width, height, sh_degree)
    rgbd = dataclasses.replace(proj, colors=torch.cat([proj.colors, proj.depths[..., None]], dim=-1))
    out, alpha = (_composite_sparse_legacy if legacy else composite_sparse)(
        rgbd, opacities, width, height, torch.zeros(4, device=means.device, dtype=means.dtype)
    )
    return out[..., :3], alpha, out[..., 3:4]
