"""The CPU rasteriser against a brute-force per-pixel reference (and gsplat CUDA when present)."""

from __future__ import annotations

import pytest
import torch

from sdbench.cameras import Cameras
from sdbench.representations import splat


def scene(n: int = 200, seed: int = 0, sh_degree: int = 1):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * 0.7
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.randn(n, 3, generator=g) * 0.5 - 2.5)
    opacities = torch.sigmoid(torch.randn(n, generator=g) * 2)
    sh = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.4
    return [t.requires_grad_(True) for t in (means, quats, scales, opacities, sh)]


@pytest.mark.parametrize("n_cams,size,sh_degree", [(1, 16, 0), (3, 20, 1), (2, 24, 2)])
def test_sparse_matches_dense_reference_forward_and_backward(n_cams, size, sh_degree):
    params = scene(sh_degree=sh_degree)
    cams = Cameras(
        torch.linspace(-170, 170, n_cams), torch.linspace(-5, 50, n_cams), torch.full((n_cams,), 3.0), torch.full((n_cams,), 40.0)
    )
    args = (cams.viewmats, cams.intrinsics(size, size), size, size, sh_degree, torch.tensor([0.2, 0.5, 1.0]))
    cot = torch.randn(n_cams, size, size, 3, generator=torch.Generator().manual_seed(1))
    results = []
    for dense in (False, True):
        rgb, alpha, meta = splat.rasterize_torch(*params, *args, dense=dense)
        grads = torch.autograd.grad((rgb * cot).sum() + alpha.sum(), params)
        results.append((rgb.detach(), alpha.detach(), grads))
    (rgb_s, a_s, g_s), (rgb_d, a_d, g_d) = results
    # forward: same terms summed in a different order (float32 rounding, ~1e-7)
    torch.testing.assert_close(rgb_s, rgb_d, atol=1e-5, rtol=0)
    torch.testing.assert_close(a_s, a_d, atol=1e-5, rtol=0)
    # backward: the sparse path takes transmittance from a float64 log-sum, the dense one from a
    # cumulative product; gradients reach |g| ~ 50, so compare relative to each tensor's scale
    for name, gs, gd in zip(("means", "quats", "scales", "opacities", "sh"), g_s, g_d):
        torch.testing.assert_close(gs, gd, atol=1e-5 * max(1.0, gd.abs().max().item()), rtol=0, msg=name)


def test_empty_and_offscreen_scenes_render_the_background():
    params = [t.detach() for t in scene(5)]
    params[0] = params[0] + torch.tensor([0.0, 0.0, 100.0])  # far above every view
    cams = Cameras.orbit(2)
    bg = torch.tensor([0.1, 0.2, 0.3])
    rgb, alpha, _ = splat.rasterize_torch(*params, cams.viewmats, cams.intrinsics(8, 8), 8, 8, 1, bg)
    torch.testing.assert_close(rgb, bg.expand(2, 8, 8, 3))
    assert alpha.abs().max() == 0


def test_an_opaque_gaussian_stops_compositing():
    """A near-opaque Gaussian in front hides one behind it: gsplat's T < 1e-4 stop rule."""
    means = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, -0.5]])  # camera on +z... placed via orbit below
    cams = Cameras(torch.tensor([0.0]), torch.tensor([90.0]), torch.tensor([3.0]), torch.tensor([40.0]))  # looking down -z
    quats = torch.tensor([[1.0, 0, 0, 0]] * 2)
    scales = torch.full((2, 3), 0.5)
    sh = torch.stack([torch.full((1, 3), 2.0), torch.full((1, 3), -2.0)])  # front bright, back dark
    rgb, alpha, _ = splat.rasterize_torch(
        means, quats, scales, torch.tensor([0.9999, 0.9999]), sh, cams.viewmats, cams.intrinsics(9, 9), 9, 9, 0, torch.zeros(3)
    )
    centre = rgb[0, 4, 4]
    front_colour = 2.0 * 0.28209479177387814 + 0.5
    # α is clamped to 0.999, T after it is 0.001 > 1e-4, so the back one still adds 0.001·0.999·its colour
    expected = 0.999 * front_colour + 0.001 * 0.999 * max(0.0, -2.0 * 0.28209479177387814 + 0.5)
    torch.testing.assert_close(centre, torch.full((3,), expected), atol=1e-4, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for gsplat's kernels")
def test_torch_path_matches_gsplat_cuda():
    params = [t.detach().cuda() for t in scene(500, sh_degree=1)]
    cams = Cameras.orbit(3, elevation=20.0).to("cuda")
    args = (cams.viewmats, cams.intrinsics(64, 64), 64, 64, 1, torch.ones(3, device="cuda"))
    rgb_t, a_t, _ = splat.rasterize_torch(*params, *args)
    rgb_c, a_c, _ = splat.rasterize(*params, *args)
    # gsplat composites per 16×16 tile in float32 with its own sort; expect agreement to ~1e-3
    assert (rgb_t - rgb_c).abs().max() < 2e-3 and (a_t - a_c).abs().max() < 2e-3
