"""Depth and normal maps (``render_surface``): normals from depth on planes, and spheres of 3D
Gaussians and of NeRF density whose normals must point out of the sphere, towards the camera."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sdbench.cameras import Cameras, depth_to_normals
from sdbench.representations.gaussians import Gaussians
from sdbench.representations.image import Image
from sdbench.representations.nerf import NeRF
from sdbench.representations.splat import composite_dense, composite_sparse, project, rasterize_surface

SIZE = 25  # odd: the centre pixel's ray is the optical axis


def _K(size: int = SIZE, f: float = 30.0) -> torch.Tensor:
    return torch.tensor([[[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]]])


def _plane_depth(n: torch.Tensor, point: torch.Tensor, K: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """Camera-space depth ``[1, 1, H, W]`` of the plane n·P = n·point along each pixel's ray."""
    v, u = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    rays = torch.stack([(u - K[0, 0, 2]) / K[0, 0, 0], (v - K[0, 1, 2]) / K[0, 1, 1], torch.ones_like(u)], dim=0)
    return ((n @ point) / torch.einsum("k,khw->hw", n, rays))[None, None]


def test_normals_of_a_tilted_plane_are_its_normal():
    n = F.normalize(torch.tensor([0.3, -0.2, -1.0]), dim=0)  # faces the camera (n_z < 0)
    K = _K()
    depth = _plane_depth(n, torch.tensor([0.0, 0.0, 3.0]), K)
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[..., 0, 0] = False
    normals = depth_to_normals(depth, K, valid)
    expected = n.view(1, 3, 1, 1).expand(1, 3, SIZE, SIZE)
    mask = valid.expand_as(normals)
    torch.testing.assert_close(normals[mask], expected[mask], atol=1e-4, rtol=0)  # float32 differences of depths ~3
    assert normals[..., 0, 0].abs().sum() == 0  # an invalid pixel has no normal


def test_occlusion_edges_take_the_difference_on_their_own_side():
    """Left half: a tilted plane at depth ~3; right half: a wall at depth 5. A central difference
    across the step would bend the normals of both edge columns; the one-sided choice must not."""
    K = _K()
    n_left = F.normalize(torch.tensor([0.4, 0.1, -1.0]), dim=0)
    n_right = torch.tensor([0.0, 0.0, -1.0])
    left = _plane_depth(n_left, torch.tensor([0.0, 0.0, 3.0]), K)
    right = _plane_depth(n_right, torch.tensor([0.0, 0.0, 5.0]), K)
    depth = torch.cat([left[..., :12], right[..., 12:]], dim=-1)
    normals = depth_to_normals(depth, K, torch.ones_like(depth, dtype=torch.bool))
    torch.testing.assert_close(normals[0, :, :, 11], n_left[:, None].expand(3, SIZE), atol=1e-4, rtol=0)
    torch.testing.assert_close(normals[0, :, :, 12], n_right[:, None].expand(3, SIZE), atol=1e-4, rtol=0)


def _sphere_shell(n: int = 6000, radius: float = 0.5) -> Gaussians:
    """Opaque Gaussians on a sphere (a Fibonacci lattice), small against its radius."""
    rep = Gaussians(Gaussians.Config(num_points=n, densify=False, init_opacity=0.99, init_scale=0.025), SIZE)
    i = torch.arange(n, dtype=torch.float32) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    pts = torch.stack([(1 - z**2).sqrt() * phi.cos(), (1 - z**2).sqrt() * phi.sin(), z], dim=-1) * radius
    with torch.no_grad():
        rep.params["means"].copy_(pts)
    return rep


def _camera_axes(cams: Cameras) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit vectors towards the camera, to its right and up, ``[B, 3]`` each."""
    c2w = cams.c2w
    return F.normalize(cams.positions, dim=-1), c2w[:, :3, 0], -c2w[:, :3, 1]


def _check_sphere(surface, cams: Cameras, depth: float, min_cos: float, depth_atol: float) -> None:
    c = SIZE // 2
    to_cam, right, up = _camera_axes(cams)
    centre = surface.normal[:, :, c, c]
    assert ((centre * to_cam).sum(-1) > min_cos).all(), (centre, to_cam)
    torch.testing.assert_close(surface.depth[:, 0, c, c], torch.full_like(cams.radius, depth), atol=depth_atol, rtol=0)
    # off-centre pixels lean their way: right of centre towards the camera's right, above towards up
    assert ((surface.normal[:, :, c, c + 5] * right).sum(-1) > 0.3).all()
    assert ((surface.normal[:, :, c - 5, c] * up).sum(-1) > 0.3).all()
    # outside the silhouette: no surface, no normal
    assert surface.alpha[:, 0, 0, 0].max() < 1e-3 and surface.normal[:, :, 0, 0].abs().max() == 0


def test_gaussian_sphere_normals_point_outwards_and_depth_hits_the_shell():
    torch.manual_seed(0)
    rep = _sphere_shell()
    cams = Cameras.orbit(3, elevation=20.0, start=10.0)
    with torch.no_grad():
        surface = rep.render_surface(cams, SIZE, SIZE)
        rendered = rep.render(cams, SIZE, SIZE)
    # depth: α-weighted centres of splats 0.025 wide on the near side of the shell
    _check_sphere(surface, cams, 3.0 - 0.5, min_cos=0.97, depth_atol=0.03)
    # the same compositing as render(): colour over black plus (1 − α) · background
    torch.testing.assert_close(surface.color + (1 - surface.alpha) * rep.background.view(1, 3, 1, 1), rendered.rgb)
    torch.testing.assert_close(surface.alpha, rendered.alpha)


def test_rasterize_surface_depth_matches_the_dense_reference():
    torch.manual_seed(1)
    n, size = 40, 12
    means = torch.randn(n, 3) * 0.4
    quats, scales = torch.randn(n, 4), torch.rand(n, 3) * 0.2 + 0.05
    opacities, sh = torch.rand(n) * 0.9 + 0.05, torch.randn(n, 1, 3) * 0.5
    cams = Cameras.orbit(2, elevation=10.0)
    K = cams.intrinsics(size, size)
    rgb, alpha, depth = rasterize_surface(means, quats, scales, opacities, sh, cams.viewmats, K, size, size, 0)
    proj = project(means, quats, scales, sh, cams.viewmats, K, size, size, 0)
    proj.colors = proj.depths[..., None].expand(-1, -1, 3)
    ref_depth, ref_alpha = composite_dense(proj, opacities, size, size, torch.zeros(3))
    torch.testing.assert_close(depth, ref_depth[..., :1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alpha, ref_alpha, atol=1e-6, rtol=0)
    sparse, _ = composite_sparse(
        project(means, quats, scales, sh, cams.viewmats, K, size, size, 0), opacities, size, size, torch.zeros(3)
    )
    torch.testing.assert_close(rgb, sparse)
    expected = depth[alpha > 0.5] / alpha[alpha > 0.5]  # between the nearest and the farthest centre
    reach = means.norm(dim=-1).max()
    assert expected.min() > 3 - reach and expected.max() < 3 + reach


def test_nerf_ball_normals_are_the_density_gradient_pointing_outwards():
    """A sharp density ball of radius 0.5 (Magic3D's blob with a steep slope): the gradient normals
    at the front surface face the camera; depth is where the density rises."""
    torch.manual_seed(0)
    rep = NeRF(NeRF.Config(blob_density=400.0, blob_radius=0.5, samples_per_ray=160), SIZE).eval()
    cams = Cameras.orbit(3, elevation=-15.0, start=40.0)
    with torch.no_grad():
        surface = rep.render_surface(cams, SIZE, SIZE, chunk=500)  # several chunks
        rendered = rep.render(cams, SIZE, SIZE)
    # Inside the ball σ ≈ k d at depth d below its surface, k = 400 / 0.5: the transmittance is
    # exp(−k d² / 2), so the expected depth is 2.5 + ∫ exp(−k d² / 2) dd = 2.5 + √(π / 2k) = 2.544
    # (bins of 2/160 = 0.0125 and the MLP's offset h move it by less than 0.01)
    _check_sphere(surface, cams, 2.5 + math.sqrt(math.pi / (2 * 800)), min_cos=0.995, depth_atol=0.01)
    # on the CPU, render() uses the same sampler: the same colour and opacity
    torch.testing.assert_close(surface.color + (1 - surface.alpha) * rep.background_color.view(1, 3, 1, 1), rendered.rgb)
    torch.testing.assert_close(surface.alpha, rendered.alpha)


def test_surface_gradients_stay_out_of_the_parameters():
    rep = NeRF(NeRF.Config(), 8)
    rep.render_surface(Cameras.orbit(1), 8, 8)
    assert all(p.grad is None for p in rep.parameters())


def test_a_2d_image_has_no_surface():
    with pytest.raises(NotImplementedError, match="Image renders no depth"):
        Image(Image.Config(), 8).render_surface(Cameras.orbit(1), 8, 8)
