"""Procedural toy scenes: one Lambert-shaded object at the origin on a white background.

Shapes are signed-distance functions (z up, each inside the unit sphere); ``render`` sphere-traces
them at any :class:`~sdbench.cameras.Cameras` batch with ``supersample``× anti-aliasing and returns
RGB and the coverage (alpha) used as ground-truth silhouette. The light is fixed in world space
(front-left-top), so the front, sides, back and top of an object really look different.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sdbench.cameras import Cameras

SHAPES = ("sphere", "cube", "cone", "cylinder", "torus")
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.10, 0.10),
    "green": (0.12, 0.70, 0.16),
    "blue": (0.12, 0.26, 0.90),
    "yellow": (0.95, 0.84, 0.10),
    "purple": (0.56, 0.16, 0.76),
    "orange": (1.00, 0.50, 0.05),
}
LIGHT_DIRECTION = (0.75, 0.45, 0.85)  # towards the light, world space (front, left, top)
AMBIENT = 0.42
DIFFUSE = 0.58
BOUND = 1.0  # every shape fits in the sphere of this radius


def _sdf_box(p: Tensor, half: Tensor) -> Tensor:
    q = p.abs() - half
    return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)


def sdf(shape: str, p: Tensor) -> Tensor:
    """Signed distance (or a 1-Lipschitz bound of it) of ``shape`` at points ``p [..., 3]``."""
    x, y, z = p.unbind(-1)
    if shape == "sphere":
        return p.norm(dim=-1) - 0.72
    if shape == "cube":
        return _sdf_box(p, p.new_tensor([0.5, 0.5, 0.5]))
    if shape == "cylinder":
        d = torch.stack([torch.hypot(x, y) - 0.5, z.abs() - 0.6], dim=-1)
        return d.clamp(min=0).norm(dim=-1) + d.max(dim=-1).values.clamp(max=0)
    if shape == "cone":  # apex at z = 0.7, base radius 0.62 at z = -0.55
        h, r = 1.25, 0.62
        sin_a, cos_a = r / (h**2 + r**2) ** 0.5, h / (h**2 + r**2) ** 0.5
        side = torch.hypot(x, y) * cos_a - (0.7 - z) * sin_a
        return torch.maximum(side, -z - 0.55)
    if shape == "torus":  # lying flat, axis z
        q = torch.stack([torch.hypot(x, y) - 0.52, z], dim=-1)
        return q.norm(dim=-1) - 0.24
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _normals(shape: str, p: Tensor, eps: float = 1e-3) -> Tensor:
    offsets = torch.eye(3, device=p.device) * eps
    grad = torch.stack([sdf(shape, p + o) - sdf(shape, p - o) for o in offsets], dim=-1)
    return F.normalize(grad, dim=-1)


def _trace(shape: str, origins: Tensor, dirs: Tensor, iterations: int = 64) -> tuple[Tensor, Tensor]:
    """Sphere-trace rays ``[N, 3]``; returns hit mask ``[N]`` and hit points ``[N, 3]``."""
    # Start at the bounding sphere to save iterations; rays that miss it never hit.
    b = (origins * dirs).sum(-1)
    c = (origins * origins).sum(-1) - BOUND**2
    disc = b * b - c
    enters = disc > 0
    t = (-b - disc.clamp(min=0).sqrt()).clamp(min=0)
    for _ in range(iterations):
        d = sdf(shape, origins + t[:, None] * dirs)
        t = t + d
    p = origins + t[:, None] * dirs
    hit = enters & (sdf(shape, p).abs() < 2e-3) & (p.norm(dim=-1) < BOUND + 1e-2)
    return hit, p


def shade(normals: Tensor, albedo: Tensor) -> Tensor:
    """Lambert shading with the world-fixed light: ``albedo * (ambient + diffuse * max(n·l, 0))``."""
    light = F.normalize(normals.new_tensor(LIGHT_DIRECTION), dim=0)
    lambert = (normals @ light).clamp(min=0)
    return albedo * (AMBIENT + DIFFUSE * lambert)[..., None]


@torch.no_grad()
def render(
    shape: str,
    colour: str | tuple[float, float, float],
    cameras: Cameras,
    height: int = 32,
    width: int | None = None,
    supersample: int = 2,
) -> tuple[Tensor, Tensor]:
    """Render one object for every camera.

    Returns:
        rgb ``[B, 3, H, W]`` in [0, 1] over a white background, and alpha ``[B, 1, H, W]``.
    """
    width = width or height
    albedo = torch.tensor(COLOURS[colour] if isinstance(colour, str) else colour, device=cameras.device)
    H, W = height * supersample, width * supersample
    origins, dirs = cameras.rays(H, W)
    origins, dirs = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    hit, points = _trace(shape, origins, dirs)
    rgb = torch.ones_like(origins)
    if hit.any():
        rgb[hit] = shade(_normals(shape, points[hit]), albedo)
    rgb = rgb.reshape(len(cameras), H, W, 3).permute(0, 3, 1, 2)
    alpha = hit.float().reshape(len(cameras), 1, H, W)
    if supersample > 1:
        rgb, alpha = F.avg_pool2d(rgb, supersample), F.avg_pool2d(alpha, supersample)
    return rgb.clamp(0, 1), alpha


@torch.no_grad()
def render_many(
    shapes: list[str], colours: list[str], cameras: Cameras, height: int = 32, supersample: int = 2
) -> tuple[Tensor, Tensor]:
    """Render a different (shape, colour) for each camera; returns ``[B, 3, H, W]``, ``[B, 1, H, W]``."""
    rgb = torch.empty(len(cameras), 3, height, height)
    alpha = torch.empty(len(cameras), 1, height, height)
    for shape in set(shapes):
        for colour in set(colours):
            idx = [i for i, (s, c) in enumerate(zip(shapes, colours)) if s == shape and c == colour]
            if idx:
                sel = torch.tensor(idx)
                rgb[sel], alpha[sel] = render(shape, colour, cameras[sel], height, supersample=supersample)
    return rgb, alpha
