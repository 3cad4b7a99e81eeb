"""A compact NeRF for text-to-3D, rendered with nerfacc.

Field (pure torch, so it runs anywhere): multi-resolution dense feature grids (trilinear
``grid_sample``) and a small MLP giving density and colour, with Magic3D's density blob (as in
threestudio's ``blob_magic3d``): σ(x) = softplus(h(x) + bias + s·(1 − ‖x‖ / r)); colours sigmoid(·).
Background: a solid colour (default white, the toy prior's) or a small MLP of the view direction.

Sampling and compositing — which path runs where:

* **CUDA**: ``nerfacc.OccGridEstimator.sampling`` marches the rays with empty-space skipping over its
  occupancy grid; ``nerfacc.rendering`` composites the packed samples.
* **CPU** (nerfacc's packed kernels and its estimator's sampling need CUDA): a stratified sampler of
  ``samples_per_ray`` bins over each ray's chord through the scene sphere, jittered during training;
  samples in cells that the *same* nerfacc occupancy grid marks empty get zero density without
  evaluating the field; nerfacc's ``render_weight_from_density`` / ``accumulate_along_rays``
  composite them in their batched ``[rays, samples]`` mode.

The occupancy grid is updated every 16 steps on both paths (``update_every_n_steps``).

Either way the weights are w_i = T_i (1 − exp(−σ_i δ_i)), T_i = exp(−Σ_{j<i} σ_j δ_j) and
``rgb = Σ w_i c_i + (1 − Σ w_i) · background``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdbench.cameras import Cameras
from sdbench.representations.base import RenderOutput, Representation, SurfaceOutput


def ray_sphere(origins: Tensor, dirs: Tensor, radius: float) -> tuple[Tensor, Tensor, Tensor]:
    """Entry and exit distances of rays ``[R, 3]`` (unit directions) through the sphere of ``radius``
    at the origin. Returns ``near [R]`` (clamped at 0), ``far [R]`` and ``hit [R]`` (bool)."""
    b = (origins * dirs).sum(-1)
    c = (origins * origins).sum(-1) - radius**2
    disc = b * b - c
    root = disc.clamp(min=0).sqrt()
    near, far = (-b - root).clamp(min=0), -b + root
    return near, far, (disc > 0) & (far > near)


def stratified_bins(
    near: Tensor, far: Tensor, n: int, jitter: bool, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` equal bins per ray between ``near`` and ``far`` (``[R]``) and one sample in each.

    Returns ``t_starts [R, n]``, ``t_ends [R, n]`` and sample distances ``t [R, n]`` (bin centres,
    or uniformly jittered inside each bin, drawn from ``generator``, when ``jitter``).
    """
    u = torch.linspace(0, 1, n + 1, device=near.device)
    edges = near[:, None] + (far - near)[:, None] * u
    t_starts, t_ends = edges[:, :-1], edges[:, 1:]
    if jitter:
        gen_device = generator.device if generator is not None else t_starts.device
        frac = torch.rand(t_starts.shape, generator=generator, device=gen_device, dtype=t_starts.dtype).to(t_starts.device)
    else:
        frac = torch.full_like(t_starts, 0.5)
    return t_starts, t_ends, t_starts + frac * (t_ends - t_starts)


def composite(t_starts: Tensor, t_ends: Tensor, sigmas: Tensor, rgbs: Tensor, background: Tensor) -> tuple[Tensor, Tensor]:
    """Volume rendering of batched samples with nerfacc: ``[R, S]`` intervals and densities,
    ``[R, S, 3]`` colours, ``background [R, 3]`` or ``[3]`` → rgb ``[R, 3]``, opacity ``[R, 1]``."""
    from nerfacc import accumulate_along_rays, render_weight_from_density

    weights, _, _ = render_weight_from_density(t_starts, t_ends, sigmas)
    rgb = accumulate_along_rays(weights, rgbs)
    acc = accumulate_along_rays(weights, None)
    return rgb + (1 - acc) * background, acc


def init_linear(module: nn.Module, generator: torch.Generator | None) -> None:
    """Re-draw every ``nn.Linear`` in ``module`` as its ``reset_parameters`` does, from ``generator``."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                bound = 1 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class Field(nn.Module):
    """Density and colour at points ``[N, 3]`` inside [−bound, bound]³."""

    def __init__(
        self,
        resolutions: tuple[int, ...],
        channels: int,
        hidden: int,
        bound: float,
        bias: float,
        blob: float,
        blob_radius: float,
        generator: torch.Generator | None = None,
    ):
        """``bias``: constant added to the density logits; ``blob``, ``blob_radius``: Magic3D's blob;
        ``generator``: where the initial weights are drawn from."""
        super().__init__()
        self.bound, self.bias, self.blob, self.blob_radius = bound, bias, blob, blob_radius
        self.grids = nn.ParameterList(
            [nn.Parameter(torch.empty(1, channels, r, r, r).uniform_(-1e-4, 1e-4, generator=generator)) for r in resolutions]
        )
        self.mlp = nn.Sequential(
            nn.Linear(channels * len(resolutions), hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 4)
        )
        init_linear(self.mlp, generator)

    def features(self, x: Tensor) -> Tensor:
        coords = (x / self.bound).clamp(-1, 1).view(1, -1, 1, 1, 3)
        feats = [F.grid_sample(g, coords, mode="bilinear", align_corners=True).view(g.shape[1], -1) for g in self.grids]
        return torch.cat(feats, dim=0).T  # [N, C·L]

    def density_logits(self, x: Tensor, h: Tensor) -> Tensor:
        return h + self.bias + self.blob * (1 - x.norm(dim=-1) / self.blob_radius)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x [N, 3]`` → density ``[N]`` (≥ 0) and colour ``[N, 3]`` in [0, 1]."""
        h = self.mlp(self.features(x))
        return F.softplus(self.density_logits(x, h[:, 0])), torch.sigmoid(h[:, 1:])

    def density(self, x: Tensor) -> Tensor:
        return F.softplus(self.density_logits(x, self.mlp(self.features(x))[:, 0]))


class NeRF(Representation):
    """Compact NeRF (multi-resolution grids + MLP) rendered with nerfacc."""

    @dataclass(frozen=True)
    class Config:
        grid_resolutions: tuple[int, ...] = (16, 32, 64)
        grid_channels: int = 4
        hidden: int = 32
        bound: float = 1.0
        """Half-size of the scene box (toy objects fit in the unit ball)."""
        density_bias: float = 0.0
        """Constant added to the density logits."""
        blob_density: float = 10.0
        """Magic3D blob: s in s·(1 − ‖x‖/r) added to the density logits (threestudio: 10)."""
        blob_radius: float = 0.5
        """r of the blob (threestudio: 0.5)."""
        background: Literal["solid", "learned"] = "solid"
        background_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
        samples_per_ray: int = 48
        """CPU stratified sampler: samples per ray (over the chord through the scene sphere)."""
        skip_empty: bool = True
        """CPU: give zero density, without evaluating the field, to samples in empty occupancy cells."""
        render_step_size: float = 0.01
        """CUDA occupancy-grid sampler: marching step."""
        occupancy_resolution: int = 32
        """Occupancy grid cells per axis (32 suits the toy scene on a CPU; 128 for SD-scale scenes on CUDA)."""
        occupancy_threshold: float = 0.01
        lr_grid: float = 0.01
        lr_mlp: float = 0.001
        lr_background: float = 0.001

    def __init__(self, cfg: NeRF.Config, resolution: int, prompt: str = "", generator: torch.Generator | None = None):
        super().__init__(cfg, resolution, prompt, generator)
        self.field = Field(
            cfg.grid_resolutions,
            cfg.grid_channels,
            cfg.hidden,
            cfg.bound,
            cfg.density_bias,
            cfg.blob_density,
            cfg.blob_radius,
            generator,
        )
        self.register_buffer("background_color", torch.tensor(cfg.background_color, dtype=torch.float32))
        self.background_mlp = (
            nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 3)) if cfg.background == "learned" else None
        )
        if self.background_mlp is not None:
            init_linear(self.background_mlp, generator)
        import nerfacc

        b = cfg.bound
        # nerfacc's occupancy grid: the CUDA sampler's skip structure, and the CPU path's empty-cell mask
        self.occupancy = nerfacc.OccGridEstimator(roi_aabb=[-b, -b, -b, b, b, b], resolution=cfg.occupancy_resolution, levels=1)

    # ------------------------------------------------------------ rendering
    def background(self, dirs: Tensor) -> Tensor:
        if self.background_mlp is None:
            return self.background_color.expand(dirs.shape[0], 3)
        return torch.sigmoid(self.background_mlp(dirs))

    def render_rays(self, origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        """rgb ``[R, 3]`` and opacity ``[R, 1]`` of rays ``[R, 3]`` (unit directions)."""
        if origins.is_cuda:
            return self._render_rays_occupancy(origins, dirs)
        near, far, hit = ray_sphere(origins, dirs, self.cfg.bound)
        far = torch.where(hit, far, near)  # a missed ray gets empty bins
        t_starts, t_ends, t = stratified_bins(near, far, self.cfg.samples_per_ray, self.training, self.generator)
        points = (origins[:, None, :] + dirs[:, None, :] * t[..., None]).reshape(-1, 3)
        live = hit[:, None].expand_as(t).reshape(-1)
        if self.cfg.skip_empty and self._occupancy_ready:
            live = live & self.occupied(points)
        idx = torch.nonzero(live, as_tuple=True)[0]
        sigma_live, rgb_live = self.field(points.index_select(0, idx))
        sigma = torch.zeros(points.shape[0], device=points.device, dtype=sigma_live.dtype).index_copy(0, idx, sigma_live)
        rgb = torch.zeros(points.shape[0], 3, device=points.device, dtype=rgb_live.dtype).index_copy(0, idx, rgb_live)
        return composite(t_starts, t_ends, sigma.view_as(t), rgb.view(*t.shape, 3), self.background(dirs))

    def occupied(self, points: Tensor) -> Tensor:
        """Whether each point ``[N, 3]`` lies in a cell the occupancy grid marks occupied, ``[N]``."""
        est = self.estimator()
        res = est.binaries.shape[-1]
        b = self.cfg.bound
        cell = ((points + b) / (2 * b) * res).long().clamp(0, res - 1)
        return est.binaries[0, cell[:, 0], cell[:, 1], cell[:, 2]]

    def _render_rays_occupancy(self, origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        import nerfacc

        est = self.estimator()

        def sigma_fn(t_starts, t_ends, ray_indices):
            x = origins[ray_indices] + dirs[ray_indices] * ((t_starts + t_ends) / 2)[:, None]
            return self.field.density(x)

        def rgb_sigma_fn(t_starts, t_ends, ray_indices):
            x = origins[ray_indices] + dirs[ray_indices] * ((t_starts + t_ends) / 2)[:, None]
            sigma, rgb = self.field(x)
            return rgb, sigma

        with torch.no_grad():
            ray_indices, t_starts, t_ends = est.sampling(
                origins, dirs, sigma_fn=sigma_fn, render_step_size=self.cfg.render_step_size, stratified=self.training
            )
        rgb, acc, _, _ = nerfacc.rendering(t_starts, t_ends, ray_indices, n_rays=len(origins), rgb_sigma_fn=rgb_sigma_fn)
        return rgb + (1 - acc) * self.background(dirs), acc

    def estimator(self):
        """nerfacc's occupancy grid over the scene box."""
        return self.occupancy

    @property
    def _occupancy_ready(self) -> bool:
        """The grid has been updated at least once (before that it marks every cell empty)."""
        return bool((self.occupancy.occs != 0).any())

    def render(self, cameras: Cameras, height: int, width: int) -> RenderOutput:
        cams = cameras.to(self.background_color.device)
        origins, dirs = cams.rays(height, width)
        rgb, acc = self.render_rays(origins.reshape(-1, 3), dirs.reshape(-1, 3))
        B = len(cams)
        return RenderOutput(rgb.view(B, height, width, 3).permute(0, 3, 1, 2), acc.view(B, height, width, 1).permute(0, 3, 1, 2))

    def render_surface(self, cameras: Cameras, height: int, width: int, chunk: int = 8192) -> SurfaceOutput:
        """Colour, opacity, depth and normals with the stratified sampler (bin centres, on every
        device), ``chunk`` rays at a time. The normal of a sample is n = −∇σ / ‖∇σ‖ (density falls
        outwards), by autograd w.r.t. the sample point; a pixel's normal is normalise(Σ w_i n_i)
        with the render weights; its depth is Σ w_i t_i cos θ / Σ w_i (θ: the ray's angle to the
        optical axis)."""
        cams = cameras.to(self.background_color.device)
        origins, dirs = cams.rays(height, width)
        cos = (dirs * cams.c2w[:, None, None, :3, 2]).sum(-1, keepdim=True)  # [B, H, W, 1]
        parts = [self._surface_rays(o, d) for o, d in zip(origins.reshape(-1, 3).split(chunk), dirs.reshape(-1, 3).split(chunk))]
        color, acc, dist, normal = (torch.cat(p).view(len(cams), height, width, -1) for p in zip(*parts))
        depth = torch.where(acc > 0, dist / acc.clamp_min(1e-12) * cos, torch.zeros_like(acc))
        to_bchw = lambda t: t.permute(0, 3, 1, 2).contiguous()  # noqa: E731
        return SurfaceOutput(to_bchw(color), to_bchw(acc), to_bchw(depth), to_bchw(F.normalize(normal, dim=-1)))

    def _surface_rays(self, origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Σ w c ``[R, 3]``, Σ w ``[R, 1]``, Σ w t ``[R, 1]`` and Σ w n ``[R, 3]`` of rays ``[R, 3]``."""
        from nerfacc import accumulate_along_rays, render_weight_from_density

        near, far, hit = ray_sphere(origins, dirs, self.cfg.bound)
        far = torch.where(hit, far, near)
        t_starts, t_ends, t = stratified_bins(near, far, self.cfg.samples_per_ray, jitter=False)
        points = (origins[:, None, :] + dirs[:, None, :] * t[..., None]).reshape(-1, 3)
        live = hit[:, None].expand_as(t).reshape(-1)
        if self.cfg.skip_empty and self._occupancy_ready:
            live = live & self.occupied(points)
        idx = torch.nonzero(live, as_tuple=True)[0]
        with torch.enable_grad():
            x = points.index_select(0, idx).detach().requires_grad_(True)
            sigma_live, rgb_live = self.field(x)
            (grad,) = torch.autograd.grad(sigma_live.sum(), x)
        n = points.shape[0]
        scatter = lambda v: torch.zeros(n, *v.shape[1:], device=v.device, dtype=v.dtype).index_copy(0, idx, v.detach())  # noqa: E731
        sigma, rgb, normal = scatter(sigma_live), scatter(rgb_live), scatter(-F.normalize(grad, dim=-1))
        weights, _, _ = render_weight_from_density(t_starts, t_ends, sigma.view_as(t))
        return (
            accumulate_along_rays(weights, rgb.view(*t.shape, 3)),
            accumulate_along_rays(weights, None),
            accumulate_along_rays(weights, t[..., None]),
            accumulate_along_rays(weights, normal.view(*t.shape, 3)),
        )

    # ------------------------------------------------------------- training
    def parameter_groups(self) -> list[dict[str, Any]]:
        groups = [
            {"name": "grid", "params": list(self.field.grids.parameters()), "lr": self.cfg.lr_grid},
            {"name": "mlp", "params": list(self.field.mlp.parameters()), "lr": self.cfg.lr_mlp},
        ]
        if self.background_mlp is not None:
            groups.append({"name": "background", "params": list(self.background_mlp.parameters()), "lr": self.cfg.lr_background})
        return groups

    def post_step(self, step: int, optimizers, render: RenderOutput) -> None:
        est = self.estimator()
        est.train()
        if self.background_color.is_cuda:
            delta = self.cfg.render_step_size
        else:  # the stratified sampler's bin length over a diameter
            delta = 2 * self.cfg.bound / self.cfg.samples_per_ray
        # occupancy = the opacity of one step through the cell, as nerfacc's examples use
        est.update_every_n_steps(step, occ_eval_fn=lambda x: self.field.density(x) * delta, occ_thre=self.cfg.occupancy_threshold)

    def density_grid(self, resolution: int = 64) -> Tensor:
        """Densities on a ``resolution³`` lattice over the scene box (for mesh export or inspection)."""
        b = self.cfg.bound
        axis = torch.linspace(-b, b, resolution, device=self.background_color.device)
        pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        with torch.no_grad():
            return torch.cat([self.field.density(p) for p in pts.split(65536)]).view(resolution, resolution, resolution)
