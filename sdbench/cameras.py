"""Orbit cameras shared by every representation, the toy world and the trial loop.

Conventions (the same as gsplat's):

* World frame: right-handed, **z up**; objects sit at the origin.
* A camera at azimuth ``az`` and elevation ``el`` (degrees) and distance ``r`` sits at
  ``r * (cos el cos az, cos el sin az, sin el)`` and looks at the origin. ``az = 0`` is the
  *front* of an object (its +x side), ``az = ±180`` its back.
* Camera frame: OpenCV (x right, y down, z forward). ``c2w`` maps camera to world,
  ``viewmats = inverse(c2w)`` maps world to camera.
* Pinhole intrinsics for an ``H × W`` image: ``fx = fy = H / (2 tan(fovy / 2))``, principal
  point at the image centre; pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``.

The view-direction prompt suffix follows DreamFusion / threestudio: ``overhead`` above
``overhead_elevation``, else ``front`` within ``front_azimuth`` of 0°, ``back`` within
``back_azimuth`` of 180°, otherwise ``side``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

VIEWS = ("front", "side", "back", "overhead")


@dataclass(frozen=True)
class CameraConfig:
    """Ranges of the orbit camera sampler (degrees and world units), drawn uniformly."""

    azimuth: tuple[float, float] = (-180.0, 180.0)
    """Azimuth range in degrees; 0 is the front of the object."""
    elevation: tuple[float, float] = (-10.0, 60.0)
    """Elevation range in degrees above the horizon."""
    radius: tuple[float, float] = (3.0, 3.0)
    """Camera distance from the origin."""
    fovy: tuple[float, float] = (40.0, 40.0)
    """Vertical field of view in degrees."""
    front_azimuth: float = 45.0
    """|azimuth| below this is a front view."""
    back_azimuth: float = 45.0
    """|azimuth| above 180 minus this is a back view."""
    overhead_elevation: float = 60.0
    """Elevation above this is an overhead view."""


@dataclass
class Cameras:
    """A batch of ``B`` orbit cameras.

    Attributes:
        azimuth: ``[B]`` degrees.
        elevation: ``[B]`` degrees.
        radius: ``[B]`` world units.
        fovy: ``[B]`` degrees.
    """

    azimuth: Tensor  # [B]
    elevation: Tensor  # [B]
    radius: Tensor  # [B]
    fovy: Tensor  # [B]

    def __post_init__(self) -> None:
        shapes = {t.shape for t in (self.azimuth, self.elevation, self.radius, self.fovy)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"camera fields must share one shape [B], got {sorted(map(tuple, shapes))}")

    def __len__(self) -> int:
        return self.azimuth.shape[0]

    @property
    def device(self) -> torch.device:
        return self.azimuth.device

    def to(self, device: torch.device | str) -> Cameras:
        return Cameras(*(t.to(device) for t in (self.azimuth, self.elevation, self.radius, self.fovy)))

    def __getitem__(self, index: slice | int | Tensor) -> Cameras:
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Cameras(self.azimuth[index], self.elevation[index], self.radius[index], self.fovy[index])

    @staticmethod
    def cat(cams: list[Cameras]) -> Cameras:
        return Cameras(*(torch.cat([getattr(c, f) for c in cams]) for f in ("azimuth", "elevation", "radius", "fovy")))

    @classmethod
    def orbit(
        cls,
        n: int,
        elevation: float = 15.0,
        radius: float = 3.0,
        fovy: float = 40.0,
        start: float = 0.0,
    ) -> Cameras:
        """``n`` cameras evenly spaced in azimuth (a turntable), starting at ``start`` degrees."""
        az = start + torch.arange(n, dtype=torch.float32) * (360.0 / n)
        az = (az + 180.0) % 360.0 - 180.0
        full = lambda v: torch.full((n,), float(v))  # noqa: E731
        return cls(az, full(elevation), full(radius), full(fovy))

    @classmethod
    def sample(cls, n: int, cfg: CameraConfig = CameraConfig(), generator: torch.Generator | None = None) -> Cameras:
        """Draw ``n`` cameras uniformly from the ranges in ``cfg``."""

        def uniform(lo_hi: tuple[float, float]) -> Tensor:
            lo, hi = lo_hi
            return lo + (hi - lo) * torch.rand(n, generator=generator)

        return cls(uniform(cfg.azimuth), uniform(cfg.elevation), uniform(cfg.radius), uniform(cfg.fovy))

    # ----------------------------------------------------------------- geometry
    @property
    def positions(self) -> Tensor:
        """Camera centres in world coordinates, ``[B, 3]``."""
        az, el = torch.deg2rad(self.azimuth), torch.deg2rad(self.elevation)
        return self.radius[:, None] * torch.stack(
            [torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az), torch.sin(el)], dim=-1
        )

    @property
    def c2w(self) -> Tensor:
        """Camera-to-world matrices in the OpenCV camera convention, ``[B, 4, 4]``."""
        eye = self.positions
        forward = torch.nn.functional.normalize(-eye, dim=-1)
        up = torch.tensor([0.0, 0.0, 1.0], device=eye.device).expand_as(forward)
        right = torch.linalg.cross(forward, up, dim=-1)
        # Straight above or below the object the world "up" is degenerate: use +y as the up hint.
        degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
        alt = torch.linalg.cross(forward, torch.tensor([0.0, 1.0, 0.0], device=eye.device).expand_as(forward), dim=-1)
        right = torch.nn.functional.normalize(torch.where(degenerate, alt, right), dim=-1)
        down = torch.linalg.cross(forward, right, dim=-1)
        m = torch.eye(4, device=eye.device).repeat(len(self), 1, 1)
        m[:, :3, 0], m[:, :3, 1], m[:, :3, 2], m[:, :3, 3] = right, down, forward, eye
        return m

    @property
    def viewmats(self) -> Tensor:
        """World-to-camera matrices (gsplat's ``viewmats``), ``[B, 4, 4]``."""
        c2w = self.c2w
        rot_t = c2w[:, :3, :3].transpose(1, 2)
        w2c = torch.eye(4, device=c2w.device).repeat(len(self), 1, 1)
        w2c[:, :3, :3] = rot_t
        w2c[:, :3, 3] = -(rot_t @ c2w[:, :3, 3:4])[..., 0]
        return w2c

    def to_world(self, vectors: Tensor) -> Tensor:
        """Rotate per-pixel camera-frame (OpenCV) vectors ``[B, 3, H, W]`` into the world frame."""
        return torch.einsum("bij,bjhw->bihw", self.c2w[:, :3, :3].to(vectors.dtype), vectors)

    def intrinsics(self, height: int, width: int) -> Tensor:
        """Pinhole matrices ``K`` for an ``height × width`` image, ``[B, 3, 3]``."""
        focal = 0.5 * height / torch.tan(0.5 * torch.deg2rad(self.fovy))
        K = torch.zeros(len(self), 3, 3, device=self.device)
        K[:, 0, 0], K[:, 1, 1] = focal, focal
        K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = width / 2.0, height / 2.0, 1.0
        return K

    def rays(self, height: int, width: int) -> tuple[Tensor, Tensor]:
        """World-space ray origins and unit directions through pixel centres.

        Returns:
            origins ``[B, H, W, 3]`` and directions ``[B, H, W, 3]``.
        """
        K = self.intrinsics(height, width)
        i, j = torch.meshgrid(
            torch.arange(height, dtype=torch.float32, device=self.device) + 0.5,
            torch.arange(width, dtype=torch.float32, device=self.device) + 0.5,
            indexing="ij",
        )
        x = (j[None] - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None]
        y = (i[None] - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None]
        dirs_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # [B, H, W, 3]
        rot = self.c2w[:, :3, :3]
        dirs = torch.einsum("bij,bhwj->bhwi", rot, dirs_cam)
        dirs = torch.nn.functional.normalize(dirs, dim=-1)
        origins = self.positions[:, None, None, :].expand_as(dirs)
        return origins, dirs

    # ------------------------------------------------------------ view prompts
    def view_names(self, cfg: CameraConfig = CameraConfig()) -> list[str]:
        """The view word of each camera: ``front``, ``side``, ``back`` or ``overhead``."""
        names = []
        for az, el in zip(self.azimuth.tolist(), self.elevation.tolist()):
            az = (az + 180.0) % 360.0 - 180.0
            if el > cfg.overhead_elevation:
                names.append("overhead")
            elif abs(az) < cfg.front_azimuth:
                names.append("front")
            elif abs(az) > 180.0 - cfg.back_azimuth:
                names.append("back")
            else:
                names.append("side")
        return names


def view_prompt(prompt: str, view: str) -> str:
    """``"a red cube"`` + ``"front"`` → ``"a red cube, front view"``."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    return f"{prompt}, {view} view"


def depth_to_normals(
    depth: Tensor,  # [B, 1, H, W]
    K: Tensor,  # [B, 3, 3]
    valid: Tensor,  # [B, 1, H, W] bool
) -> Tensor:
    """Surface normals of a depth map by finite differences of its back-projected points.

    Each pixel centre ``(j + 0.5, i + 0.5)`` with camera-space depth ``z`` back-projects to
    ``P = z · K⁻¹ (j + 0.5, i + 0.5, 1)`` (OpenCV frame). Along each image axis the derivative of
    ``P`` is the forward or the backward difference, whichever has the smaller depth step among
    the valid neighbours (so silhouettes and occlusion edges do not bend the normals), and
    ``n = normalise(∂P/∂i × ∂P/∂j)`` faces the camera.

    Returns unit normals ``[B, 3, H, W]`` in the camera frame (OpenCV: x right, y down, z forward;
    a surface facing the camera has ``n_z < 0``), 0 where the pixel or both of its neighbours along
    an axis are not valid.
    """
    B, _, H, W = depth.shape
    if K.shape != (B, 3, 3) or valid.shape != depth.shape:
        raise ValueError(f"depth {tuple(depth.shape)}, K {tuple(K.shape)}, valid {tuple(valid.shape)} do not match")
    v, u = torch.meshgrid(
        torch.arange(H, dtype=depth.dtype, device=depth.device) + 0.5,
        torch.arange(W, dtype=depth.dtype, device=depth.device) + 0.5,
        indexing="ij",
    )
    x = (u[None] - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None]
    y = (v[None] - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None]
    points = depth * torch.stack([x, y, torch.ones_like(x)], dim=1)  # [B, 3, H, W]
    d_u, ok_u = _one_sided_difference(points, valid, dim=3)
    d_v, ok_v = _one_sided_difference(points, valid, dim=2)
    normals = torch.nn.functional.normalize(torch.linalg.cross(d_v, d_u, dim=1), dim=1)
    return torch.where(valid & ok_u & ok_v, normals, torch.zeros_like(normals))


def _one_sided_difference(points: Tensor, valid: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``points [B, 3, H, W]`` differenced along ``dim`` (forward or backward, the smaller depth step
    between valid pixels); returns the differences and where one existed ``[B, 1, H, W]``."""
    n = points.shape[dim]
    step = points.narrow(dim, 1, n - 1) - points.narrow(dim, 0, n - 1)
    pair = valid.narrow(dim, 1, n - 1) & valid.narrow(dim, 0, n - 1)
    fwd, bwd = torch.zeros_like(points), torch.zeros_like(points)
    fwd.narrow(dim, 0, n - 1).copy_(step)
    bwd.narrow(dim, 1, n - 1).copy_(step)
    ok_f, ok_b = torch.zeros_like(valid), torch.zeros_like(valid)
    ok_f.narrow(dim, 0, n - 1).copy_(pair)
    ok_b.narrow(dim, 1, n - 1).copy_(pair)
    inf = torch.full_like(points[:, 2:], float("inf"))
    use_fwd = torch.where(ok_f, fwd[:, 2:].abs(), inf) <= torch.where(ok_b, bwd[:, 2:].abs(), inf)
    return torch.where(use_fwd, fwd, bwd), ok_f | ok_b
