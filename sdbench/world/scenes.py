"""Procedural toy scenes: one Lambert-shaded object at the origin on a white background.

Shapes are signed-distance functions (z up, each inside the unit sphere); ``render`` sphere-traces
them at any :class:`~sdbench.cameras.Cameras` batch with ``supersample``× anti-aliasing and returns
RGB and the coverage (alpha) used as ground-truth silhouette. The light is fixed in world space
(front-left-top), so the front, sides, back and top of an object really look different.

World v2 adds, on the same objects (defaults reproduce v1 exactly):

* **albedo** per camera (any sRGB triple; :mod:`sdbench.world.colour` gives each colour word a
  pastel-to-vivid range);
* **surface patterns** (:data:`PATTERNS`), two-tone (the albedo and the near-white
  :data:`PARTNER`), defined as solid textures of the object-coordinate hit point, so the truth
  exists at any camera: ``striped`` horizontal bands (period :data:`STRIPE_PERIOD`), ``checkered``
  3D checker cells (:data:`CHECKER_CELL`), ``dotted`` spheres on a body-centred cubic lattice
  (:data:`DOT_PERIOD`, :data:`DOT_RADIUS`). At the training camera (distance 3, fov 40°, 32 px) one
  world unit is ≈ 14.7 px at the origin, so a stripe period is ≈ 4.7 px, a checker period ≈ 5.6 px,
  a dot period ≈ 5.3 px there, and 1.2× that on a cube's front face (distance 2.5; measured in
  ``tests/world/test_scenes.py``);
* **a front marking** (:data:`MARKINGS`: ``face``: two eyes and a smile in :data:`MARKING_COLOUR`)
  on the object's +x side, which is the side seen from azimuth 0, the ``front`` view of
  :mod:`sdbench.cameras`; the back is plain. It is drawn on surface points with ``x > 0`` whose
  normal faces +x (``n_x > 0.25``), from their ``(y, z)`` coordinates.

:func:`render_scene` returns, besides RGB and alpha, the per-pixel truth the metrics need
(:class:`SceneRender`): base albedo, surface albedo, pattern and marking coverage, shading,
object-coordinate hit points and normals.
"""

from __future__ import annotations

from dataclasses import dataclass

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

PATTERNS = ("plain", "striped", "checkered", "dotted")
MARKINGS = ("face",)
PARTNER = (0.95, 0.95, 0.95)  # the second tone of every pattern
MARKING_COLOUR = (0.08, 0.08, 0.08)
STRIPE_PERIOD = 0.32  # world units: one light and one coloured band
CHECKER_CELL = 0.19  # world units: edge of one checker cell (period 2x)
DOT_PERIOD = 0.36  # world units: cubic cell of the body-centred dot lattice
DOT_RADIUS = 0.115  # world units: radius of each dot sphere
# The face, in the (y, z) coordinates of the front (+x) side.
EYES = ((-0.17, 0.08), (0.17, 0.08))
EYE_RADIUS = 0.085
MOUTH_CENTRE = (0.0, 0.05)
MOUTH_RADII = (0.17, 0.25)
MOUTH_BELOW = -0.06  # the smile: the part of the ring below z = this
FRONT_NORMAL = 0.25  # a surface point carries the marking only where n_x > this


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


def pattern_mask(pattern: str, p: Tensor) -> Tensor:
    """Where the surface at object-coordinate points ``p [N, 3]`` shows the partner tone, ``[N]`` bool."""
    if pattern == "plain":
        return torch.zeros(p.shape[:-1], dtype=torch.bool, device=p.device)
    if pattern == "striped":
        return torch.floor(2 * p[..., 2] / STRIPE_PERIOD).remainder(2) == 1
    if pattern == "checkered":
        return torch.floor(p / CHECKER_CELL).sum(-1).remainder(2) == 1
    if pattern == "dotted":  # body-centred cubic lattice: cell corners and cell centres
        corner = p - DOT_PERIOD * torch.round(p / DOT_PERIOD)
        centre = p - DOT_PERIOD * (torch.floor(p / DOT_PERIOD) + 0.5)
        return torch.minimum(corner.norm(dim=-1), centre.norm(dim=-1)) < DOT_RADIUS
    raise ValueError(f"unknown pattern {pattern!r}; expected one of {PATTERNS}")


def marking_mask(marking: str | None, p: Tensor, normals: Tensor) -> Tensor:
    """Where the front marking covers points ``p [N, 3]`` with unit normals ``[N, 3]``, ``[N]`` bool."""
    if marking is None:
        return torch.zeros(p.shape[:-1], dtype=torch.bool, device=p.device)
    if marking != "face":
        raise ValueError(f"unknown marking {marking!r}; expected one of {MARKINGS} or None")
    y, z = p[..., 1], p[..., 2]
    front = (p[..., 0] > 0) & (normals[..., 0] > FRONT_NORMAL)
    eyes = torch.zeros_like(front)
    for ey, ez in EYES:
        eyes |= torch.hypot(y - ey, z - ez) < EYE_RADIUS
    r = torch.hypot(y - MOUTH_CENTRE[0], z - MOUTH_CENTRE[1])
    mouth = (r > MOUTH_RADII[0]) & (r < MOUTH_RADII[1]) & (z < MOUTH_BELOW)
    return front & (eyes | mouth)


@dataclass
class SceneRender:
    """What :func:`render_scene` returns; every map is ``[B, C, H, W]`` at the output resolution,
    averaged over the ``supersample``² sub-pixels (so edges hold coverage-weighted values).

    Attributes:
        rgb: ``[B, 3, H, W]`` the image in [0, 1] over white.
        alpha: ``[B, 1, H, W]`` coverage of the object (ground-truth silhouette).
        albedo: ``[B, 3, H, W]`` base albedo (the colour, no pattern, no marking, unshaded) on the
            covered sub-pixels; white where nothing is covered.
        surface: ``[B, 3, H, W]`` surface albedo (pattern and marking included, unshaded), white
            where nothing is covered.
        pattern: ``[B, 1, H, W]`` coverage of the pattern's partner tone (0 for ``plain``).
        marking: ``[B, 1, H, W]`` coverage of the front marking (0 without one).
        shading: ``[B, 1, H, W]`` Lambert factor ``ambient + diffuse · max(n·l, 0)`` on covered
            sub-pixels (0 elsewhere, summed then divided by the sub-pixel count, like alpha).
        points: ``[B, 3, H, W]`` object-coordinate hit points, mean over covered sub-pixels (0 elsewhere).
        normals: ``[B, 3, H, W]`` unit surface normals, mean over covered sub-pixels, renormalised (0 elsewhere).
    """

    rgb: Tensor
    alpha: Tensor
    albedo: Tensor
    surface: Tensor
    pattern: Tensor
    marking: Tensor
    shading: Tensor
    points: Tensor
    normals: Tensor


def _albedo_per_camera(albedo: str | tuple[float, float, float] | Tensor, n: int, device: torch.device) -> Tensor:
    if isinstance(albedo, str):
        if albedo not in COLOURS:
            raise ValueError(f"unknown colour {albedo!r}; expected one of {tuple(COLOURS)}")
        albedo = COLOURS[albedo]
    a = torch.as_tensor(albedo, dtype=torch.float32, device=device)
    if a.shape == (3,):
        return a.expand(n, 3)
    if a.shape != (n, 3):
        raise ValueError(f"albedo must be [3] or [B, 3] with B = {n} cameras, got {tuple(a.shape)}")
    return a


@torch.no_grad()
def render_scene(
    shape: str,
    albedo: str | tuple[float, float, float] | Tensor,
    cameras: Cameras,
    height: int = 32,
    width: int | None = None,
    supersample: int = 2,
    pattern: str = "plain",
    marking: str | None = None,
) -> SceneRender:
    """Render one object for every camera with its per-pixel ground truth.

    Args:
        shape: one of :data:`SHAPES`.
        albedo: a colour word of :data:`COLOURS`, an sRGB triple, or ``[B, 3]`` (one per camera).
        cameras: ``B`` cameras.
        pattern: one of :data:`PATTERNS`.
        marking: ``None`` or one of :data:`MARKINGS` (drawn on the +x side, the front).
    """
    width = width or height
    B = len(cameras)
    albedo = _albedo_per_camera(albedo, B, cameras.device)
    H, W = height * supersample, width * supersample
    origins, dirs = cameras.rays(H, W)
    origins, dirs = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    hit, points = _trace(shape, origins, dirs)
    n_px = H * W
    camera_of = torch.arange(B, device=cameras.device).repeat_interleave(n_px)
    rgb = torch.ones_like(origins)
    base = torch.ones_like(origins)
    surface = torch.ones_like(origins)
    partner = torch.zeros_like(origins[:, 0])
    mark = torch.zeros_like(origins[:, 0])
    shading = torch.zeros_like(origins[:, 0])
    pts = torch.zeros_like(origins)
    nrm = torch.zeros_like(origins)
    if hit.any():
        p = points[hit]
        n = _normals(shape, p)
        a = albedo[camera_of[hit]]
        base[hit] = a
        in_pattern = pattern_mask(pattern, p)
        in_marking = marking_mask(marking, p, n)
        a = torch.where(in_pattern[:, None], a.new_tensor(PARTNER), a)
        a = torch.where(in_marking[:, None], a.new_tensor(MARKING_COLOUR), a)
        rgb[hit] = shade(n, a)
        surface[hit] = a
        partner[hit] = (in_pattern & ~in_marking).float()
        mark[hit] = in_marking.float()
        light = F.normalize(n.new_tensor(LIGHT_DIRECTION), dim=0)
        shading[hit] = AMBIENT + DIFFUSE * (n @ light).clamp(min=0)
        pts[hit], nrm[hit] = p, n

    def image(x: Tensor) -> Tensor:
        x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2)
        return F.avg_pool2d(x, supersample) if supersample > 1 else x

    alpha = image(hit.float()[:, None])
    covered = alpha.clamp(min=1e-12)
    hit_f = hit.float()[:, None]

    def on_object(x: Tensor) -> Tensor:  # mean over covered sub-pixels, white where none is covered
        return torch.where(alpha > 0, image(x * hit_f) / covered, torch.ones_like(alpha))

    return SceneRender(
        rgb=image(rgb).clamp(0, 1),
        alpha=alpha,
        albedo=on_object(base),
        surface=on_object(surface),
        pattern=image(partner[:, None]),
        marking=image(mark[:, None]),
        shading=image(shading[:, None]),
        points=torch.where(alpha > 0, image(pts) / covered, torch.zeros_like(alpha)),
        normals=F.normalize(image(nrm), dim=1),
    )


def render(
    shape: str,
    colour: str | tuple[float, float, float] | Tensor,
    cameras: Cameras,
    height: int = 32,
    width: int | None = None,
    supersample: int = 2,
    pattern: str = "plain",
    marking: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Render one object for every camera (v1's signature; v2's ``pattern`` and ``marking`` default to none).

    Returns:
        rgb ``[B, 3, H, W]`` in [0, 1] over a white background, and alpha ``[B, 1, H, W]``.
    """
    out = render_scene(shape, colour, cameras, height, width, supersample, pattern, marking)
    return out.rgb, out.alpha


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
